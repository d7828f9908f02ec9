"""The whole model end to end: issue 2's two acceptance tests."""

import numpy as np
import pytest
import torch

from app.compose import build_retriever
from retrieval.audio import DecodedAudio, decode_audio
from retrieval.checkpoint import zero_shot
from retrieval.errors import CheckpointMismatch, ModelNotFound
from retrieval.labels import audioset_labels
from retrieval.model_spec import ModelSpec
from retrieval.pipeline import Retriever, tag_text_embeddings, text_spec
from tests.audio_fixtures import sine, write


@torch.no_grad()
def test_clip_and_caption_meet_in_one_cosine(tmp_path, settings, random_tagger, text_encoder, passt_oracle):
    r = build_retriever(settings, tagger=random_tagger, text=text_encoder)
    assert r.ckpt.spec.head == "zero-shot" and r.head.dim == 384
    wave = decode_audio(write(tmp_path / "tone.flac", sine(660.0, seconds=1.0, rate=44_100), 44_100)).wave
    vec, logits = r.encode_audio(wave)
    q = r.encode_text(["a high pitched tone"])[0]
    score = float(vec @ q)

    # the same score by hand: hear21passt logits -> head -> fusion; MiniLM embedding -> LayerNorm -> L2
    ref_logits = passt_oracle.get_scene_embeddings(torch.from_numpy(wave)[None])[0].detach()
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-5)
    a = r.head.encode_audio(ref_logits[None])[0]
    t = torch.from_numpy(text_encoder.encode(["a high pitched tone"]))
    want = float(a @ torch.nn.functional.normalize(torch.nn.functional.layer_norm(t, (384,)), dim=-1)[0])
    assert -1.0 <= score <= 1.0 and abs(score - want) < 1e-5
    assert np.isclose(np.linalg.norm(vec), 1.0, atol=1e-5)


def planted_logits(*names: str) -> np.ndarray:
    labels = audioset_labels()
    logits = np.full(527, -8.0, dtype=np.float32)
    for name in names:
        logits[labels.index(name)] = 4.0
    return logits


def test_zero_shot_ranks_planted_clips(settings, random_tagger, text_encoder):
    r = build_retriever(settings, tagger=random_tagger, text=text_encoder)
    dog, rain = r.project(np.stack([planted_logits("Dog", "Bark"), planted_logits("Rain", "Raindrop")]))
    q = r.encode_text(["a dog is barking"])[0]
    assert q @ dog > q @ rain
    q = r.encode_text(["heavy rain falling on a roof"])[0]
    assert q @ rain > q @ dog


def zero_shot_retriever(random_tagger, text_encoder, tagger="same") -> Retriever:
    E = tag_text_embeddings(text_encoder)
    return Retriever(text_encoder, zero_shot(E, text_spec(random_tagger.spec, text_encoder)),
                     passt=random_tagger.spec, tagger=random_tagger if tagger == "same" else tagger)


def test_top_tags_and_spec(random_tagger, text_encoder):
    r = zero_shot_retriever(random_tagger, text_encoder)
    tied = planted_logits("Dog", "Bark")  # equal probabilities: class-index order
    assert [t for t, _ in r.top_tags(tied, 2)] == ["Dog", "Bark"]
    assert r.spec.head == "zero-shot" and r.spec.dim == 384 and r.spec.lam == 0.0
    assert r.spec.text_model == "all-MiniLM-L6-v2" and r.spec.passt_weights == "random"
    assert len(r.spec.id) == 16


def test_a_text_only_retriever_encodes_text_and_refuses_audio(random_tagger, text_encoder):
    full = zero_shot_retriever(random_tagger, text_encoder)
    text_only = zero_shot_retriever(random_tagger, text_encoder, tagger=None)
    assert text_only.tagger is None and text_only.spec == full.spec  # the same model, its vectors the same
    np.testing.assert_array_equal(text_only.encode_text(["a dog barks"]), full.encode_text(["a dog barks"]))
    logits = planted_logits("Dog")
    np.testing.assert_array_equal(text_only.project(logits[None]), full.project(logits[None]))
    wave = sine(seconds=0.3)
    for encode in (text_only.encode_audio, text_only.logits):
        with pytest.raises(ModelNotFound, match="without its PaSST tagger"):
            encode(wave)
    with pytest.raises(ModelNotFound, match="without its PaSST tagger"):
        text_only.extract_many([DecodedAudio(wave, 32_000, 1, "WAV")])


def test_build_retriever_without_audio_builds_no_tagger(settings, text_encoder, monkeypatch):
    from app import compose

    monkeypatch.setattr(compose, "load_tagger", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    r = build_retriever(settings, with_audio=False, text=text_encoder)
    assert r.tagger is None and r.spec.passt_weights == "random"
    assert r.encode_text(["rain"]).shape == (1, 384)


def test_a_tagger_of_another_windowing_is_refused(random_tagger, text_encoder):
    E = tag_text_embeddings(text_encoder)
    other = ModelSpec(window_s=5.0, passt_weights="random")
    ckpt = zero_shot(E, text_spec(other, text_encoder))
    with pytest.raises(CheckpointMismatch, match="the PaSST tagger .*window_s"):
        Retriever(text_encoder, ckpt, passt=other, tagger=random_tagger)
    with pytest.raises(CheckpointMismatch, match="the head checkpoint .*window_s"):
        Retriever(text_encoder, ckpt, passt=random_tagger.spec)


def test_with_checkpoint_keeps_the_encoders(random_tagger, text_encoder):
    r = zero_shot_retriever(random_tagger, text_encoder)
    again = r.with_checkpoint(r.ckpt)
    assert again.spec == r.spec and again.tagger is r.tagger and again.text is r.text


def test_tag_embeddings_are_the_names_as_is(text_encoder):
    E = tag_text_embeddings(text_encoder)
    assert E.shape == (527, 384)
    want = text_encoder.encode(["Male speech, man speaking"], clean=False)[0]
    np.testing.assert_allclose(E[1].numpy(), want, atol=1e-5)


def test_tag_embeddings_are_cached_in_the_data_dir(settings, text_encoder, monkeypatch):
    from retrieval import pipeline

    cache = settings.data_dir / "cache"

    def cached():
        return pipeline.cached_tag_text_embeddings(text_encoder, cache_dir=cache, stamp={"size": 1})

    first = cached()
    np.testing.assert_allclose(first.numpy(), tag_text_embeddings(text_encoder).numpy(), atol=1e-6)
    (path,) = cache.glob("tag-text-*.safetensors")
    monkeypatch.setattr(pipeline, "tag_text_embeddings", lambda text: (_ for _ in ()).throw(AssertionError))
    torch.testing.assert_close(cached(), first)
    path.write_bytes(b"damaged")
    monkeypatch.undo()
    torch.testing.assert_close(cached(), first)
    other = pipeline.cached_tag_text_embeddings(text_encoder, cache_dir=cache, stamp={"size": 2})
    torch.testing.assert_close(other, first)
    assert len(list(cache.glob("tag-text-*.safetensors"))) == 2  # another stamp, another file
    blocked = settings.data_dir / "a file"  # a cache that cannot be written (a read-only data directory)
    blocked.write_bytes(b"")
    unkept = pipeline.cached_tag_text_embeddings(text_encoder, cache_dir=blocked / "cache", stamp={"size": 3})
    torch.testing.assert_close(unkept, first)


def test_what_is_not_text_or_samples_is_refused_before_any_model_runs(random_tagger, text_encoder):
    r = zero_shot_retriever(random_tagger, text_encoder)
    with pytest.raises(TypeError, match="not one string"):
        r.encode_text("a dog barking")  # its letters would be 13 queries
    with pytest.raises(TypeError, match="a query is a string"):
        r.encode_text([b"bytes"])
    with pytest.raises(ValueError, match="lone surrogate"):
        r.encode_text(["tone\udcff"])  # what argv holds for bytes that are not UTF-8
    assert r.encode_text(()).shape == (0, r.spec.dim)
    wave = sine(seconds=0.3)
    for bad, error, words in ((wave.tolist(), TypeError, "numpy array"),
                              ((wave * 32767).astype(np.int16), TypeError, "divide by 32768"),
                              (np.stack([wave, wave], axis=1), ValueError, "one channel"),
                              (np.zeros(0, np.float32), ValueError, "no samples"),
                              (np.full(100, np.nan, np.float32), ValueError, "NaN")):
        for encode in (r.encode_audio, r.logits):
            with pytest.raises(error, match=words):
                encode(bad)
    with pytest.raises(ValueError, match="k must be >= 0"):
        r.top_tags(planted_logits("Dog"), -1)
