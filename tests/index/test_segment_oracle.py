"""A hit's segment against an independent recomputation: hear21passt's own windowing loop on its own
(random-weight) PaSST -> the head -> cosine with the query vector. Windows of 2 s every 0.5 s keep the
PaSST passes short (the method's 10 s / 2.5 s windows are held to hear21passt in tests/retrieval)."""

import numpy as np
import pytest
import torch

from app.compose import open_collection
from retrieval.checkpoint import Checkpoint
from retrieval.head import RetrievalHead
from retrieval.model_spec import ModelSpec
from retrieval.pipeline import Retriever, text_spec
from retrieval.tagger import PasstTagger, build_passt
from tests.audio_fixtures import noise, sine, write
from tests.index.ingesting import add, file

SPEC = ModelSpec(window_s=2.0, hop_s=0.5, passt_weights="random")
RATE = 32_000


@pytest.fixture(scope="module")
def retriever(text_encoder, tag_embeddings) -> Retriever:
    torch.manual_seed(7)
    head = RetrievalHead(tag_embeddings, lam=0.8)  # both branches: the projection and the tag names
    tagger = PasstTagger(build_passt("random", spec=SPEC), spec=SPEC, device="cpu")
    return Retriever(text_encoder, Checkpoint(head, text_spec(SPEC, text_encoder).with_head("h", 0.8)),
                     passt=SPEC, tagger=tagger)


def hear21passt_windows(wave: np.ndarray):
    """hear21passt's loop on a PaSST built on its own: (W, 527) logits and each window's clamped span."""
    oracle = build_passt("random", spec=SPEC)  # hear21passt's own attention, the same seeded weights
    with torch.inference_mode():
        logits, stamps_ms = oracle.get_timestamp_embeddings(torch.as_tensor(wave)[None], window_size=2 * RATE,
                                                            hop=RATE // 2)
    centres = stamps_ms[0].numpy() / 1000
    duration = len(wave) / RATE
    return logits[0].numpy(), np.clip(centres - 1.0, 0, duration), np.clip(centres + 1.0, 0, duration)


def test_a_hits_segment_equals_hear21passt_windows_through_the_head(settings, retriever, tmp_path):
    wave = np.concatenate([noise(seconds=1.5, amplitude=0.1), sine(660.0, seconds=1.5),
                           noise(seconds=1.0, seed=3, amplitude=0.2)])  # 4 s, 9 windows, in [-1, 1]
    with open_collection(settings, retriever) as c:
        [(record, _)] = add(c, file(write(tmp_path / "mixed.wav", wave, subtype="FLOAT")))  # samples exact
        query = "a pure high tone"
        hit = c.search_text(query, 1)[0]
        stored = c.store.windows([record.id])[record.id]
    logits, starts, ends = hear21passt_windows(wave)
    assert len(logits) == 9
    q = retriever.encode_text([query])[0]
    with torch.inference_mode():
        scores = retriever.head.encode_audio(torch.as_tensor(logits)).numpy() @ q  # (W,)
    best = int(np.argmax(scores))
    assert hit.record.id == record.id
    assert (hit.segment.start, hit.segment.end) == pytest.approx((starts[best], ends[best]), abs=1e-9)
    assert hit.segment.score == pytest.approx(float(scores[best]), abs=1e-4)
    np.testing.assert_allclose(stored.scores(q), scores, atol=1e-4)  # every window, not only the best
    assert np.sort(scores)[-1] - np.sort(scores)[-2] > 1e-4  # the best window is not a near tie
