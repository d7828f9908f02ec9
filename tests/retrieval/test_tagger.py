"""The tagger against hear21passt's own loop (the oracle), on a random-weight PaSST.

The oracle is always a separately built, unpatched hear21passt model (the `passt_oracle` fixture): the
tagger runs its model's attention through SDPA, so its own `model` is not hear21passt's any more.
"""

import numpy as np
import pytest
import torch
from hear21passt.base import get_scene_embeddings
from hear21passt.wrapper import PasstBasicWrapper

from retrieval.config import Windowing
from retrieval.model_spec import ModelSpec
from retrieval.tagger import MIN_SAMPLES, PasstTagger
from retrieval.windows import window_spans
from tests.audio_fixtures import clicks, noise, sine
from tests.retrieval.conftest import uses_sdpa

# hear21passt's scheme scaled down (1 s windows every 0.25 s) so that a clip needing many windows stays cheap
SMALL_SPEC = ModelSpec(window_s=1.0, hop_s=0.25, passt_weights="random")
SMALL = SMALL_SPEC.windowing


def small_wrapper(model) -> PasstBasicWrapper:
    return PasstBasicWrapper(mel=model.mel, net=model.net, mode="logits", max_model_window=1000,
                             scene_hop=250).eval()


@pytest.fixture(scope="module")
def small_oracle(passt_oracle):
    return small_wrapper(passt_oracle)


def small_tagger(random_tagger, batch_windows=1) -> PasstTagger:
    return PasstTagger(small_wrapper(random_tagger.model), spec=SMALL_SPEC, device="cpu",
                       batch_windows=batch_windows)


def reference(model, wave: np.ndarray) -> np.ndarray:
    return get_scene_embeddings(torch.from_numpy(wave)[None], model)[0].numpy()


def reference_windows(model, wave: np.ndarray) -> np.ndarray:
    """(W, 527): hear21passt's per-window logits, from its own loop (its scene windowing)."""
    x = torch.from_numpy(wave)[None]
    if x.shape[1] <= model.max_model_window:
        with torch.no_grad():
            return model(x).numpy()
    with torch.no_grad():
        emb, _ = model.get_timestamp_embeddings(x, window_size=model.max_model_window, hop=model.scene_hop)
    return emb[0].numpy()


def test_the_oracle_is_hear21passt_and_the_tagger_is_not(passt_oracle, random_tagger):
    assert not uses_sdpa(passt_oracle)
    assert uses_sdpa(random_tagger.model)


def test_window_count_is_hear21passt_formula():
    w = Windowing()
    assert w.window == 320_000 and w.hop == 80_000 and w.pad == 160_000
    assert w.n_windows(30 * 32_000) == 13
    assert w.n_windows(10 * 32_000) == 1
    for n in (320_001, 400_000, 1_234_567):
        assert w.n_windows(n) == n // 80_000 + 1


def test_single_window_clip_matches_hear21passt(random_tagger, passt_oracle):
    wave = sine(440.0, seconds=1.0) + noise(seconds=1.0)
    np.testing.assert_allclose(random_tagger.logits(wave), reference(passt_oracle, wave), atol=1e-5)


@pytest.mark.parametrize("batch_windows", [1, 5])
def test_windowed_clip_matches_hear21passt_loop(random_tagger, small_oracle, batch_windows):
    ours = small_tagger(random_tagger, batch_windows)
    wave = np.concatenate([sine(330.0, seconds=1.5), clicks(seconds=1.5)])  # 3 s -> 13 windows of 1 s
    assert ours.windows(wave).shape == (SMALL.n_windows(len(wave)), SMALL.window) == (13, 32_000)
    np.testing.assert_allclose(ours.logits(wave), reference(small_oracle, wave), atol=1e-5)


def test_another_windowing_cuts_as_hear21passt_would_at_that_length(random_tagger, small_oracle):
    """The finer second pass for moments: the tagger's own model with SMALL's windows, against hear21passt's
    loop at SMALL's window and hop."""
    wave = np.concatenate([sine(330.0, seconds=1.0), noise(seconds=1.2, seed=4)])  # 2.2 s -> 9 windows of 1 s
    got = random_tagger.window_logits_many([wave], windowing=SMALL)[0]
    np.testing.assert_allclose(got.logits, reference_windows(small_oracle, wave), atol=1e-5)
    starts, ends = window_spans(len(wave), SMALL)
    assert len(got) == 9 and (got.starts.tolist(), got.ends.tolist()) == (starts.tolist(), ends.tolist())
    assert random_tagger.windowing == Windowing()  # the tagger's own windowing is unchanged


# several clips of different lengths: padded up to MIN_SAMPLES, shorter than a window, exactly one window,
# and two windowed ones (6 and 7 windows of 1 s)
def mixed_clips() -> list[np.ndarray]:
    return [sine(880.0, seconds=0.05), noise(seconds=0.7, seed=1), sine(220.0, seconds=1.0) + clicks(),
            noise(seconds=1.6, seed=2), np.concatenate([clicks(seconds=0.6), sine(550.0, seconds=0.7)])]


@pytest.fixture(scope="module")
def mixed_reference(small_oracle):
    """hear21passt's per-window logits of each clip (the too-short one zero-padded as the tagger pads it)."""
    out = []
    for wave in mixed_clips():
        padded = np.pad(wave, (0, max(0, MIN_SAMPLES - len(wave))))
        out.append(reference_windows(small_oracle, padded))
    return out


@pytest.fixture(scope="module")
def one_at_a_time(random_tagger):
    tagger = small_tagger(random_tagger, 1)
    return [tagger.window_logits(w) for w in mixed_clips()]


@pytest.mark.parametrize("batch_windows", [1, 3, 8])
def test_many_clips_at_once_match_one_at_a_time_and_hear21passt(random_tagger, mixed_reference, one_at_a_time,
                                                                batch_windows):
    clips = mixed_clips()
    many = small_tagger(random_tagger, batch_windows).window_logits_many(clips)
    assert len(many) == len(clips)
    assert [len(w) for w in many] == [1, 1, 1, 7, 6] == [len(r) for r in mixed_reference]
    for wave, got, alone, want in zip(clips, many, one_at_a_time, mixed_reference, strict=True):
        np.testing.assert_allclose(got.logits, alone.logits, atol=1e-5)
        np.testing.assert_allclose(got.logits, want, atol=1e-5)
        assert got.logits.dtype == np.float32
        np.testing.assert_allclose(got.mean(), want.mean(axis=0), atol=1e-5)
        starts, ends = window_spans(len(wave), SMALL)
        assert starts[0] == 0.0 and ends[-1] == pytest.approx(len(wave) / SMALL.sample_rate)
        np.testing.assert_array_equal(got.starts, starts)
        np.testing.assert_array_equal(got.ends, ends)


def test_no_clips_no_logits(random_tagger):
    assert random_tagger.window_logits_many([]) == []


def test_too_short_clip_is_padded_not_refused(random_tagger):
    out = random_tagger.logits(sine(seconds=0.05))
    assert out.shape == (527,) and np.isfinite(out).all()
    assert random_tagger.windows(sine(seconds=0.05)).shape == (1, MIN_SAMPLES)
    w = random_tagger.window_logits(sine(seconds=0.05))
    np.testing.assert_array_equal(w.mean(), out)  # the clip's logits are the mean of its windows
    assert w.starts.tolist() == [0.0] and w.ends.tolist() == [pytest.approx(0.05)]  # the clip's own time


def test_different_audio_gives_different_logits(random_tagger):
    a, b = random_tagger.logits(sine(200.0)), random_tagger.logits(noise())
    assert np.abs(a - b).max() > 1e-3


def test_spec_names_the_passt_part_only(random_tagger):
    assert random_tagger.spec == ModelSpec(passt_weights="random")
    assert random_tagger.windowing == Windowing()
    small = small_tagger(random_tagger)
    assert small.spec.windowing == SMALL and small.spec.head is None and small.spec.text_model is None


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


def test_unknown_precision_is_refused_at_construction(random_tagger):
    with pytest.raises(ValueError, match="precision"):
        PasstTagger(random_tagger.model, device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="CUDA"):
        PasstTagger(random_tagger.model, device="cpu", precision="fp16")


def test_random_weights_are_the_same_in_every_build(random_tagger):
    torch.manual_seed(1234)  # the global generator does not matter, and is left as it was
    state = torch.random.get_rng_state()
    again = PasstTagger.load("random", device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    wave = noise(seconds=0.3, seed=5)
    np.testing.assert_array_equal(again.logits(wave), random_tagger.logits(wave))
