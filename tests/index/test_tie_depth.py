"""A tie group larger than MAX_TIE_DEPTH at the cut: the index is asked for at most that many hits (a group
of 200,000 copies made every query ask for all of them), and the answer is still k hits, best first, the
tie ranked by id among the hits the index returned."""

import random
from dataclasses import dataclass

import numpy as np
import pytest

import index.faiss.store as faiss_store
from index.faiss.store import FaissStore
from index.qdrant import layout
from index.store.metadata import Metadata
from index.store.records import NewClip
from index.stores import StoreConfig
from tests.index.reference_store import open_backend
from tests.index.store_fixtures import SPEC, unit_vectors
from tests.index.test_search_ties import clip


@dataclass
class Point:
    id: int
    score: float


def test_best_first_asks_no_deeper_than_max_tie_depth():
    """10,000 points of one score, in no order: asked k + 1, then deeper up to the cap, no further."""
    points = [Point(i, 0.5) for i in range(10_000)]
    random.Random(0).shuffle(points)
    asked: list[int] = []

    def ask(qs, limit, floors):
        asked.append(limit)
        return [points[:limit] for _ in qs]

    found = layout.best_first(ask, 1, 5, key=lambda p: (p.id,))[0]
    assert max(asked) == layout.MAX_TIE_DEPTH and asked[0] == 6
    returned = sorted(p.id for p in points[:layout.MAX_TIE_DEPTH])
    assert [p.id for p in found] == returned[:5] and {p.score for p in found} == {0.5}
    asked.clear()
    assert [p.id for p in layout.best_first(ask, 1, 5000, key=lambda p: (p.id,))[0]] == \
        sorted(p.id for p in points[:5001])[:5000]
    assert asked == [5001]  # k + 1 past the cap: asked once


def tied_clips(n: int) -> tuple[np.ndarray, list[int]]:
    """(n, D) vectors of which 40 (row 0 and 39 more) are one vector, and those rows."""
    xb = unit_vectors(n)
    shared = [r for r in range(1, n) if r % 3 != 1][:39]
    xb[shared] = xb[0]
    return xb, [0, *shared]


@pytest.mark.parametrize("kind", ["flat", "flat16", "hnsw"])
def test_faiss_asks_a_tie_no_deeper_than_the_cap(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(faiss_store, "MAX_TIE_DEPTH", 8)
    xb, rows = tied_clips(60)
    with FaissStore(tmp_path / "data", SPEC, kind=kind) as store:
        ids = [a.record.id for a in store.add_many([clip(i) for i in range(60)], xb,
                                                   np.zeros((60, 527), np.float32))]
        index, asked = store._clips.index, []
        search = index.search

        def counting(xq, k, allowed=None):
            asked.append(k)
            return search(xq, k, allowed)

        monkeypatch.setattr(index, "search", counting)
        group = {ids[r] for r in rows}
        for k in (1, 3, 7):
            asked.clear()
            hits = store.search(xb[:1], k)[0]
            assert len(hits) == k and max(asked) <= 8
            got = [h.record.id for h in hits]
            assert got == sorted(got) and set(got) <= group and len({h.score for h in hits}) == 1


def test_qdrant_asks_a_tie_no_deeper_than_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "MAX_TIE_DEPTH", 8)
    xb, rows = tied_clips(60)
    clips = [clip(i) for i in range(40)] + [
        NewClip(name="take.wav", location=f"/t/{i}.wav", sha256=f"{i + 1000:064x}", duration=1.0,
                sample_rate=32_000, tags=(), meta=Metadata()) for i in range(20)]  # 20 tied keyword hits
    with open_backend(StoreConfig(data_dir=tmp_path / "data", backend="qdrant"), SPEC) as store:
        ids = [a.record.id for a in store.add_many(clips, xb, np.zeros((60, 527), np.float32))]
        asked: list[int] = []
        batch, single = store.client.query_batch_points, store.client.query_points

        def counting_batch(name, requests, **kw):
            asked.extend(r.limit for r in requests)
            return batch(name, requests, **kw)

        def counting_single(name, *a, limit, **kw):
            asked.append(limit)
            return single(name, *a, limit=limit, **kw)

        monkeypatch.setattr(store.client, "query_batch_points", counting_batch)
        monkeypatch.setattr(store.client, "query_points", counting_single)
        group = {ids[r] for r in rows}
        for k in (1, 3, 7):
            asked.clear()
            hits = store.search(xb[:1], k)[0]
            got = [h.record.id for h in hits]
            assert len(hits) == k and max(asked) <= 8 and len({h.score for h in hits}) == 1
            assert got == sorted(got) and set(got) <= group
            asked.clear()
            words = store.search_keywords("take", k)
            got = [h.record.id for h in words]
            assert len(words) == k and max(asked) <= 8 and len({h.score for h in words}) == 1
            assert got == sorted(got) and set(got) <= set(ids[40:])
