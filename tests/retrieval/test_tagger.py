"""The tagger against hear21passt's own loop (the oracle), on a random-weight PaSST."""

import numpy as np
import pytest
import torch
from hear21passt.base import get_scene_embeddings
from hear21passt.wrapper import PasstBasicWrapper

from retrieval.config import Windowing
from retrieval.tagger import MIN_SAMPLES, PasstTagger
from tests.audio_fixtures import clicks, noise, sine

# hear21passt's scheme scaled down (1 s windows every 0.25 s) so that a clip needing many windows stays cheap
SMALL = Windowing(window_s=1.0, hop_s=0.25)


def small_pair(random_tagger, batch_windows=1):
    net, mel = random_tagger.model.net, random_tagger.model.mel
    oracle = PasstBasicWrapper(mel=mel, net=net, mode="logits", max_model_window=1000, scene_hop=250).eval()
    ours = PasstTagger(oracle, windowing=SMALL, device="cpu", batch_windows=batch_windows)
    return oracle, ours


def reference(model, wave: np.ndarray) -> np.ndarray:
    return get_scene_embeddings(torch.from_numpy(wave)[None], model)[0].numpy()


def test_window_count_is_hear21passt_formula():
    w = Windowing()
    assert w.window == 320_000 and w.hop == 80_000 and w.pad == 160_000
    assert w.n_windows(30 * 32_000) == 13
    assert w.n_windows(10 * 32_000) == 1
    for n in (320_001, 400_000, 1_234_567):
        assert w.n_windows(n) == n // 80_000 + 1


def test_single_window_clip_matches_hear21passt(random_tagger):
    wave = sine(440.0, seconds=1.0) + noise(seconds=1.0)
    np.testing.assert_allclose(random_tagger.logits(wave), reference(random_tagger.model, wave), atol=1e-5)


@pytest.mark.parametrize("batch_windows", [1, 5])
def test_windowed_clip_matches_hear21passt_loop(random_tagger, batch_windows):
    oracle, ours = small_pair(random_tagger, batch_windows)
    wave = np.concatenate([sine(330.0, seconds=1.5), clicks(seconds=1.5)])  # 3 s -> 13 windows of 1 s
    assert ours.windows(wave).shape == (SMALL.n_windows(len(wave)), SMALL.window) == (13, 32_000)
    np.testing.assert_allclose(ours.logits(wave), reference(oracle, wave), atol=1e-5)


def test_too_short_clip_is_padded_not_refused(random_tagger):
    out = random_tagger.logits(sine(seconds=0.05))
    assert out.shape == (527,) and np.isfinite(out).all()
    assert random_tagger.windows(sine(seconds=0.05)).shape == (1, MIN_SAMPLES)


def test_different_audio_gives_different_logits(random_tagger):
    a, b = random_tagger.logits(sine(200.0)), random_tagger.logits(noise())
    assert np.abs(a - b).max() > 1e-3


def test_weights_load_from_a_local_checkpoint(tmp_path, random_tagger):
    path = tmp_path / "passt.pt"
    torch.save(random_tagger.model.net.state_dict(), path)
    loaded = PasstTagger.load(path, device="cpu")
    wave = noise(seconds=0.5, seed=3)
    np.testing.assert_allclose(loaded.logits(wave), random_tagger.logits(wave), atol=1e-6)


def test_wrong_or_missing_weights_are_named_errors(tmp_path):
    from retrieval.errors import CheckpointMismatch, ModelNotFound

    with pytest.raises(ModelNotFound, match="retrieval models fetch"):
        PasstTagger.load(tmp_path / "absent.pt", device="cpu")
    torch.save({"something": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointMismatch, match="not a passt_s_swa_p16_128_ap476 checkpoint"):
        PasstTagger.load(tmp_path / "other.pt", device="cpu")


def test_random_weights_are_the_same_in_every_build(random_tagger):
    torch.manual_seed(1234)  # the global generator does not matter, and is left as it was
    state = torch.random.get_rng_state()
    again = PasstTagger.load("random", device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    wave = noise(seconds=0.3, seed=5)
    np.testing.assert_array_equal(again.logits(wave), random_tagger.logits(wave))
