"""Where in a recording the query sounds, with known content: a tone stand-in for PaSST (440 Hz -> "Dog",
880 Hz -> "Rain", 1760 Hz -> "Music") and the real MiniLM, through the collection and its ingest loop."""

import numpy as np
import pytest
import torch

from app.compose import open_collection
from index.collection import Collection
from index.ingest.builder import index_paths
from index.store.contract import MOMENT_MARGIN
from index.store.records import MomentQuery
from index.stores import StoreConfig, open_store
from retrieval.checkpoint import Checkpoint, save_checkpoint
from retrieval.config import Windowing
from retrieval.head import RetrievalHead
from retrieval.moments import best_window, iou, merge_windows
from retrieval.pipeline import Retriever
from retrieval.waveform import peaks
from retrieval.windows import window_spans
from tests.audio_fixtures import write
from tests.index.ingesting import add, file
from tests.retrieval.test_windows import Recorder
from tests.tone_tagger import ToneTagger, sections

RATE = 32_000
DOG = (20.0, 40.0)  # where the 440 Hz section of LONG is
LONG = ((880.0, 20.0), (440.0, 20.0), (1760.0, 20.0))  # rain, dog, music: 60 s


@pytest.fixture
def files(tmp_path):
    return {"long": write(tmp_path / "long.wav", sections(*LONG)),
            "rain": write(tmp_path / "rain.wav", sections((880.0, 10.0)))}


@pytest.fixture
def collection(settings, tone_retriever, files):
    with open_collection(settings, tone_retriever) as c:
        report = index_paths(c, files.values(), progress=False, batch_clips=2)  # the ingest loop
        assert report.added == 2
        yield c


def oracle_scores(retriever: Retriever, wave: np.ndarray, query: str, windowing=None):
    """Independently: the stand-in's windows -> the head -> inner product with the query vector."""
    w = ToneTagger().window_logits_many([wave], windowing=windowing)[0]
    q = retriever.encode_text([query])[0]
    return w.starts, w.ends, retriever.project(w.logits) @ q


def test_a_dog_barking_is_found_where_the_440_hz_section_is(collection, tone_retriever):
    hits = collection.search_text("a dog barking", 2)
    assert [h.record.name for h in hits] == ["long.wav", "rain.wav"]
    seg = hits[0].segment
    assert DOG[0] <= seg.start < seg.end <= DOG[1]
    starts, ends, scores = oracle_scores(tone_retriever, sections(*LONG), "a dog barking")
    want = best_window(starts, ends, scores)
    assert (seg.start, seg.end, seg.window) == (want.start, want.end, want.window)
    assert seg.score == pytest.approx(want.score, abs=1e-3)  # the stored vectors are float16
    rain = collection.search_text("rain falling", 2)
    long = next(h for h in rain if h.record.name == "long.wav")
    assert 0.0 <= long.segment.start < long.segment.end <= 20.0
    short = next(h for h in rain if h.record.name == "rain.wav")
    assert (short.segment.start, short.segment.end) == (0.0, 10.0)  # a clip of one window: all of it


def test_moments_of_a_dog_barking_cover_the_440_hz_section(collection, tone_retriever):
    got = collection.search_text("a dog barking", 3, moments=MomentQuery(per_clip=2))
    assert got[0].record.name == "long.wav" and iou((got[0].segment.start, got[0].segment.end), DOG) >= 0.7
    starts, ends, scores = oracle_scores(tone_retriever, sections(*LONG), "a dog barking")
    want = merge_windows(starts, ends, scores, threshold=scores.max() - MOMENT_MARGIN, per_clip=2)
    long = [h.segment for h in got if h.record.name == "long.wav"]
    assert [(m.start, m.end, m.window) for m in long] == [(m.start, m.end, m.window) for m in want]
    assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
    # a threshold no window reaches: no moments at all; one every window reaches: each clip is one moment
    assert collection.search_text("a dog barking", 3, moments=MomentQuery(threshold=1.01)) == []
    whole = collection.search_text("a dog barking", 5, moments=MomentQuery(threshold=-1.0))
    assert sorted((h.record.name, h.segment.start, h.segment.end) for h in whole) == [
        ("long.wav", 0.0, 60.0), ("rain.wav", 0.0, 10.0)]


def test_stored_windows_are_hear21passt_windows_with_the_clip_peaks(collection, files):
    wave = sections(*LONG)
    record = collection.store.get_by_sha256(collection.store.list(limit=2)[0].sha256)
    assert record.name == "long.wav"
    rec = Recorder(Windowing())
    _, stamps_ms = rec.get_timestamp_embeddings(torch.as_tensor(wave, dtype=torch.float64)[None],
                                                window_size=rec.max_model_window, hop=rec.scene_hop)
    centres = stamps_ms[0].numpy() / 1000  # hear21passt's timestamps: the middle of each window
    stored = collection.store.windows([record.id])[record.id]
    assert len(stored.starts) == len(centres) == 25
    np.testing.assert_allclose(stored.starts, np.clip(centres - 5.0, 0, 60), atol=1e-9)
    np.testing.assert_allclose(stored.ends, np.clip(centres + 5.0, 0, 60), atol=1e-9)
    np.testing.assert_array_equal(collection.store.peaks(record.id), peaks(wave))
    assert collection.store.without_windows().size == 0


def test_reproject_reprojects_the_windows(collection, tone_retriever, tag_embeddings, tmp_path):
    torch.manual_seed(3)
    path = tmp_path / "head.safetensors"
    save_checkpoint(path, Checkpoint(RetrievalHead(tag_embeddings, lam=0.8), tone_retriever.spec.encoders()))
    assert collection.reproject(path) == 2
    new = collection.retriever
    assert new.spec.head != tone_retriever.spec.head
    windows = ToneTagger().window_logits(sections(*LONG))
    stored = collection.store.windows([1])[1]
    np.testing.assert_allclose(stored.vectors.astype(np.float32), new.project(windows.logits), atol=2e-3)
    hit = collection.search_text("a dog barking", 1)[0]
    starts, ends, scores = oracle_scores(new, sections(*LONG), "a dog barking")
    assert hit.segment.window == best_window(starts, ends, scores).window


def test_remove_takes_the_windows_and_peaks_along(collection):
    long = next(r for r in collection.list() if r.name == "long.wav")
    assert collection.store.window_count() == 26  # 25 + 1
    assert collection.remove([long.id]) == 1
    assert collection.store.window_count() == 1 and collection.store.peaks(long.id) is None
    assert [h.record.name for h in collection.search_text("a dog barking", 3, moments=MomentQuery())] == [
        "rain.wav"]


def test_a_finer_moment_windowing_runs_a_second_pass(settings, tone_retriever, files):
    fine = Windowing(window_s=2.0, hop_s=1.0)
    tagger = tone_retriever.tagger
    store = open_store(StoreConfig(data_dir=settings.data_dir), tone_retriever.spec)
    with Collection.open(store, tone_retriever, data_dir=settings.data_dir, moment_windowing=fine) as c:
        before = tagger.calls
        [(record, _)] = add(c, file(files["long"]))
        starts, ends = window_spans(60 * RATE, fine)
        assert tagger.calls - before == 25 + len(starts)  # the clip's windows, then the finer ones
        stored = c.store.windows([record.id])[record.id]
        np.testing.assert_array_equal(stored.starts, starts)
        np.testing.assert_array_equal(stored.ends, ends)
        # the clip vector is still the paper's: the head on the mean of the 10 s windows
        clip_logits = ToneTagger().window_logits(sections(*LONG)).mean()
        np.testing.assert_allclose(c.store.vectors([record.id])[0],
                                   tone_retriever.project(clip_logits[None])[0], atol=1e-6)
        seg = c.search_text("a dog barking", 1)[0].segment
        assert seg.end - seg.start == 2.0 and DOG[0] <= seg.start < seg.end <= DOG[1]
        moment = c.search_text("a dog barking", 1, moments=MomentQuery())[0].segment
        assert iou((moment.start, moment.end), DOG) >= 0.8
