"""The whole model end to end: issue 2's two acceptance tests."""

import numpy as np
import torch

from retrieval.audio import decode_audio
from retrieval.labels import audioset_labels
from retrieval.pipeline import Retriever, build_retriever, tag_text_embeddings
from tests.audio_fixtures import sine, write


@torch.no_grad()
def test_clip_and_caption_meet_in_one_cosine(tmp_path, settings, random_tagger, text_encoder):
    r = build_retriever(settings, tagger=random_tagger, text=text_encoder)
    assert r.ckpt.fingerprint == "zero-shot" and r.head.dim == 384
    wave = decode_audio(write(tmp_path / "tone.flac", sine(660.0, seconds=1.0, rate=44_100), 44_100)).wave
    vec, logits = r.encode_audio(wave)
    q = r.encode_text(["a high pitched tone"])[0]
    score = float(vec @ q)

    # the same score by hand: hear21passt logits -> head -> fusion; MiniLM embedding -> LayerNorm -> L2
    ref_logits = random_tagger.model.get_scene_embeddings(torch.from_numpy(wave)[None])[0].detach()
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


def test_top_tags_and_fingerprint(settings, random_tagger, text_encoder):
    r = Retriever(random_tagger, text_encoder, build_retriever(settings, tagger=random_tagger,
                                                               text=text_encoder).ckpt)
    tied = planted_logits("Dog", "Bark")  # equal probabilities: class-index order
    assert [t for t, _ in r.top_tags(tied, 2)] == ["Dog", "Bark"]
    assert r.fingerprint["head"] == "zero-shot" and r.fingerprint["dim"] == 384
    assert len(r.fingerprint_id) == 16


def test_tag_embeddings_are_the_names_as_is(text_encoder):
    E = tag_text_embeddings(text_encoder)
    assert E.shape == (527, 384)
    want = text_encoder.encode(["Male speech, man speaking"], clean=False)[0]
    np.testing.assert_allclose(E[1].numpy(), want, atol=1e-5)


def test_tag_embeddings_are_cached_in_the_data_dir(settings, text_encoder, monkeypatch):
    from retrieval import pipeline

    first = pipeline.cached_tag_text_embeddings(text_encoder, settings)
    np.testing.assert_allclose(first.numpy(), tag_text_embeddings(text_encoder).numpy(), atol=1e-6)
    (cached,) = (settings.data_dir / "cache").glob("tag-text-*.safetensors")
    monkeypatch.setattr(pipeline, "tag_text_embeddings", lambda text: (_ for _ in ()).throw(AssertionError))
    torch.testing.assert_close(pipeline.cached_tag_text_embeddings(text_encoder, settings), first)
    cached.write_bytes(b"damaged")
    monkeypatch.undo()
    torch.testing.assert_close(pipeline.cached_tag_text_embeddings(text_encoder, settings), first)
