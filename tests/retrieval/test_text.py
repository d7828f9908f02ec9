import numpy as np
import pytest

from retrieval.errors import ModelNotFound
from retrieval.text import TextEncoder, clean_caption


@pytest.mark.parametrize("raw,clean", [
    ("A  dog\tbarks   loudly.", "A dog barks loudly"),
    ("It's raining; the car won't start!", "It is raining the car will not start"),
    ("A high-pitched -- whistle", "A high pitched whistle"),
    ("The dog's bark isn't loud", "The dogs bark is not loud"),
    ("Birds chirp, (briefly) and \"sing\"?", "Birds chirp briefly and sing"),
    ("They're here and we've gone", "They are here and we have gone"),
])
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def test_encoder_gives_unit_vectors_and_cleans(text_encoder):
    X = text_encoder.encode(["A dog barks.", "A dog barks", "rain on a tin roof"])
    assert X.shape == (3, 384) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(X[0], X[1], atol=1e-6)  # punctuation is cleaned away
    assert X[0] @ X[2] < 0.9


def test_missing_model_folder_names_the_fix(tmp_path):
    with pytest.raises(ModelNotFound, match="retrieval models fetch"):
        TextEncoder.load(tmp_path / "nope")


def test_a_local_model_loads_without_a_progress_bar_and_leaves_the_bars_as_they_were(minilm_path, capfd):
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    TextEncoder.load(minilm_path, device="cpu")
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # a download later still shows its bars
