"""The store contract's restore side, on every backend: `restore_many` keeps ids and times added and never
lets an id be handed out twice, `vectors` and `export` read back what was stored, and restored clips take
their windows and peaks back."""

import numpy as np
import pytest

from index.store.records import ClipRecord, Timeline, Windows
from index.stores import StoreConfig, open_store
from retrieval.errors import RetrievalError
from tests.index.store_fixtures import DIM, SPEC, clip, logits, unit_vectors


def record(i: int, id_: int) -> ClipRecord:
    c = clip(i)
    return ClipRecord(**{**c.__dict__, "id": id_, "added_at": 1_000_000.0 + i})


@pytest.fixture(params=["faiss", "qdrant"])
def store(request, tmp_path):
    s = open_store(StoreConfig(data_dir=tmp_path / "data", backend=request.param), SPEC)
    yield s
    s.close()


def test_restore_keeps_ids_and_times_and_new_ids_never_collide(store):
    xb = unit_vectors(6)
    lg = np.stack([logits(i) for i in range(6)])
    ids = [3, 4, 9, 10, 11, 40]
    store.restore_many([record(i, id_) for i, id_ in enumerate(ids[:3])], xb[:3], lg[:3])
    store.restore_many([record(i + 3, id_) for i, id_ in enumerate(ids[3:])], xb[3:], lg[3:], next_id=57)
    assert store.ids().tolist() == ids
    assert store.next_id() == 57  # what the source had handed out, though its last clips were removed
    got = store.get(9)
    assert got is not None and got.added_at == 1_000_002.0 and got.name == "clip2.wav"
    assert got.tags == clip(2).tags
    np.testing.assert_allclose(store.vectors([40, 3]), xb[[5, 0]], atol=1e-6)
    np.testing.assert_allclose(store.logits([10]), lg[[3]], atol=1e-6)
    hits = store.search(xb[[4]], 1)[0]
    assert hits[0].record.id == 11 and hits[0].score == pytest.approx(1.0, abs=1e-5)

    added = store.add(clip(100), xb[0], lg[0])
    assert added.id == 57

    exported = list(store.export(chunk=4))
    assert [len(r) for r, _, _ in exported] == [4, 3]
    assert [r.id for rs, _, _ in exported for r in rs] == [*ids, 57]
    vectors = np.concatenate([v for _, v, _ in exported])
    np.testing.assert_allclose(vectors, xb[[0, 1, 2, 3, 4, 5, 0]], atol=1e-6)
    np.testing.assert_allclose(np.concatenate([g for _, _, g in exported])[:6], lg, atol=1e-6)


def test_restore_refuses_ids_already_handed_out_and_bad_rows(store):
    xb = unit_vectors(3)
    lg = np.stack([logits(i) for i in range(3)])
    store.add(clip(0), xb[0], lg[0])  # id 1
    with pytest.raises(RetrievalError, match="handed out ids up to 1"):
        store.restore_many([record(1, 1)], xb[1:2], lg[1:2])
    with pytest.raises(ValueError, match="ascending"):
        store.restore_many([record(1, 5), record(2, 4)], xb[1:], lg[1:])
    with pytest.raises(ValueError):
        store.restore_many([record(1, 5)], np.ones((1, DIM + 1), np.float32), lg[:1])
    with pytest.raises(KeyError):
        store.vectors([1, 99])
    assert store.ids().tolist() == [1]


@pytest.mark.parametrize("how", ["with the clips", "set after"])
def test_restored_clips_take_their_windows_and_peaks_back_as_stored(store, how):
    """What a restore of a backup with windows does on every backend: the clips with their ids and their
    windows and peaks in one write (`restore_many`'s timelines; or each set after, `set_timeline`, as a
    backfill does); float16 vectors and logits read back exactly, and a clip given none still has none."""
    rng = np.random.default_rng(4)
    xb = unit_vectors(3)
    lg = np.stack([logits(i) for i in range(3)])
    starts = np.array([0.0, 2.5, 5.0])
    given = Timeline(Windows(starts, starts + 10.0, unit_vectors(3, seed=9).astype(np.float16),
                             rng.standard_normal((3, 527)).astype(np.float16).astype(np.float32)),
                     rng.integers(0, 256, 77).astype(np.uint8))
    records = [record(i, id_) for i, id_ in enumerate((5, 8, 13))]
    if how == "with the clips":
        store.restore_many(records, xb, lg, timelines=[None, given, None], next_id=20)
        with pytest.raises(ValueError, match="2 timelines for 1 clips"):
            store.restore_many([record(3, 21)], xb[:1], lg[:1], timelines=[None, given])
    else:
        store.restore_many(records, xb, lg, next_id=20)
        assert store.set_timeline(8, given) and not store.set_timeline(6, given)
    got = store.timelines([5, 8, 13], logits=True)
    assert list(got) == [8] and store.without_windows().tolist() == [5, 13]
    w = got[8].windows
    np.testing.assert_array_equal(w.starts, starts)
    np.testing.assert_array_equal(w.ends, starts + 10.0)
    np.testing.assert_array_equal(w.vectors, given.windows.vectors)
    np.testing.assert_array_equal(w.logits, given.windows.logits)
    np.testing.assert_array_equal(store.peaks(8), given.peaks)
    hit = store.search_moments(given.windows.vectors[1].astype(np.float32), 1)[0]
    assert (hit.record.id, hit.segment.start, hit.segment.end) == (8, 2.5, 12.5)
    assert store.next_id() == 20
