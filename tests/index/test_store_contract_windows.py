"""The VectorStore contract for windows, held on every backend: window search, best windows and moments
equal numpy brute force over the stored (float16) window vectors, filters included; windows and peaks
round-trip, survive a reopen, go with their clip, are re-projected with it, and are backfilled."""

from dataclasses import replace

import numpy as np
import pytest

from index.store.contract import MOMENT_MARGIN
from index.store.metadata import Metadata
from index.store.records import MomentQuery, SearchFilter, Timeline, Windows
from retrieval.moments import merge_windows
from tests.index.reference_store import open_backend
from tests.index.test_store_contract import (
    SPEC,
    D,
    backend_settings,  # noqa: F401  (a fixture)
    clip,
    unit,
)

N = 24


def timeline(i: int, *, dim: int = D) -> Timeline | None:
    """Clip i: 1 + i % 5 windows of 5 s every 2.5 s (neighbours overlap), random unit vectors; every 7th
    clip has none (stored before windows)."""
    if i % 7 == 6:
        return None
    w = 1 + i % 5
    rng = np.random.default_rng(100 + i)
    starts = 2.5 * np.arange(w)
    return Timeline(Windows(starts, starts + 5.0, unit(rng.standard_normal((w, dim))).astype(np.float16),
                           rng.standard_normal((w, 527)).astype(np.float32)),
                    rng.integers(0, 256, 50 + i).astype(np.uint8))


@pytest.fixture
def store(backend_settings):  # noqa: F811
    rng = np.random.default_rng(0)
    s = open_backend(backend_settings, SPEC)
    s.add_many([clip(i) for i in range(N)], unit(rng.standard_normal((N, D))),
               rng.standard_normal((N, 527)).astype(np.float32), [timeline(i) for i in range(N)])
    yield s
    s.close()


def all_windows(keep=lambda i: True):
    """The oracle's view: (clip ids, window numbers, starts, ends, (M, D) float32 of the float16 vectors)."""
    rows = [(i + 1, n, t.windows.starts[n], t.windows.ends[n], t.windows.vectors[n])
            for i in range(N) if (t := timeline(i)) is not None and keep(i)
            for n in range(len(t.windows.starts))]
    ids, ns, s, e, v = zip(*rows, strict=True)
    return np.array(ids), np.array(ns), np.array(s), np.array(e), np.array(v, dtype=np.float32)


def oracle_moments(q, k, per_clip, threshold=None, keep=lambda i: True):
    ids, _, starts, ends, xb = all_windows(keep)
    scores = xb @ q
    found = []
    for c in np.unique(ids):
        m = ids == c
        t = scores[m].max() - MOMENT_MARGIN if threshold is None else threshold
        found += [(c, x.start, x.end, x.score) for x in merge_windows(starts[m], ends[m], scores[m],
                                                                       threshold=t, per_clip=per_clip)]
    found.sort(key=lambda f: (-f[3], f[0], f[1]))
    return found[:k]


def as_tuples(hits):
    return [(h.record.id, h.segment.start, h.segment.end, h.score) for h in hits]


def check_moments(got, want):
    assert [g[:3] for g in got] == [w[:3] for w in want]
    np.testing.assert_allclose([g[3] for g in got], [w[3] for w in want], atol=1e-5)


def test_windows_and_peaks_round_trip(store):
    got = store.windows([1, 2, 7, 99])  # clip 7 (index 6) has none, 99 does not exist
    assert sorted(got) == [1, 2]
    for cid, w in got.items():
        want = timeline(cid - 1).windows
        np.testing.assert_array_equal(w.starts, want.starts)
        np.testing.assert_array_equal(w.ends, want.ends)
        assert w.vectors.dtype == np.float16
        np.testing.assert_array_equal(w.vectors, want.vectors)
    np.testing.assert_array_equal(store.peaks(3), timeline(2).peaks)
    assert store.peaks(7) is None and store.peaks(99) is None
    assert store.without_windows().tolist() == [7, 14, 21]
    assert store.window_count() == len(all_windows()[0])
    stats = store.stats()
    assert (stats["clips"], stats["windows"], stats["clips_without_windows"]) == (N, store.window_count(), 3)


def test_timelines_give_the_windows_logits_as_stored_when_asked(store):
    """Without `logits` none (a search never needs them); with, float32 of the stored float16 values."""
    assert all(t.windows.logits is None for t in store.timelines([1, 2]).values())
    got = store.timelines([1, 2, 7, 99], logits=True)
    assert sorted(got) == [1, 2]
    for cid, t in got.items():
        want = timeline(cid - 1)
        stored = want.windows.logits.astype(np.float16).astype(np.float32)  # (W, 527)
        assert t.windows.logits.dtype == np.float32 and t.windows.logits.shape == stored.shape
        np.testing.assert_array_equal(t.windows.logits, stored)
        np.testing.assert_array_equal(t.windows.vectors, want.windows.vectors)
        np.testing.assert_array_equal(t.peaks, want.peaks)


def test_best_windows_equal_the_argmax(store):
    q = unit(np.random.default_rng(1).standard_normal(D))
    got = store.best_windows(q, list(range(1, N + 1)))
    ids, ns, starts, ends, xb = all_windows()
    assert sorted(got) == sorted(set(ids.tolist()))
    for cid, m in got.items():
        rows = np.flatnonzero(ids == cid)
        best = rows[np.argmax(xb[rows] @ q)]
        assert (m.window, m.start, m.end) == (ns[best], starts[best], ends[best])
        assert m.score == pytest.approx(float(xb[best] @ q), abs=1e-6)


@pytest.mark.parametrize("flt", [None, SearchFilter(min_duration=3.0), SearchFilter(tag="rain")],
                         ids=["all", "min", "tag"])
def test_search_windows_equals_brute_force(store, flt):
    keep = (lambda i: True) if flt is None else (
        (lambda i: clip(i).duration >= 3.0) if flt.min_duration else
        (lambda i: "rain" in {t.label.lower() for t in clip(i).tags}))
    ids, ns, _, _, xb = all_windows(keep)
    xq = unit(np.random.default_rng(2).standard_normal((3, D)))
    got = store.search_windows(xq, 6, flt)
    for q, hits in zip(xq, got, strict=True):
        order = np.argsort(-(xb @ q), kind="stable")[:6]
        assert [(h.clip_id, h.window) for h in hits] == list(zip(ids[order], ns[order], strict=True))
        np.testing.assert_allclose([h.score for h in hits], (xb @ q)[order], atol=1e-5)
    assert store.search_windows(xq, 0) == [[], [], []]


@pytest.mark.parametrize(("k", "moments"), [(5, MomentQuery()), (8, MomentQuery(per_clip=1)),
                                            (60, MomentQuery(per_clip=2, threshold=0.0)),
                                            (4, MomentQuery(threshold=0.3))],
                         ids=["default", "one-per-clip", "all-above-0", "above-0.3"])
def test_search_moments_equals_the_oracle(store, k, moments):
    for seed in range(3):
        q = unit(np.random.default_rng(10 + seed).standard_normal(D))
        got = store.search_moments(q, k, moments=moments)
        check_moments(as_tuples(got), oracle_moments(q, k, moments.per_clip, moments.threshold))
        assert all(h.record == store.get(h.record.id) for h in got)


def test_filtered_moments_equal_the_filtered_oracle(store):
    q = unit(np.random.default_rng(20).standard_normal(D))
    flt = SearchFilter(max_duration=4.0)
    got = as_tuples(store.search_moments(q, 6, flt))
    check_moments(got, oracle_moments(q, 6, 3, keep=lambda i: clip(i).duration <= 4.0))
    assert store.search_moments(q, 0) == []
    with pytest.raises(ValueError):
        store.search_moments(q, 3, moments=MomentQuery(per_clip=0))


def test_window_and_moment_filters_read_the_clips_metadata_as_edited(store):
    """An edit of a clip's user tags or fields reaches its windows' filters at once (Qdrant keeps a copy
    of the clip's payload on each window point): a tag given finds it, a tag taken off no longer does."""
    q = unit(np.random.default_rng(21).standard_normal((1, D)))
    edited = 3  # clip(2): 2 windows, user tag USER_TAGS[2], field pack=p2
    old = store.get(edited)
    store.set_metadata(edited, Metadata.of(tags=["favourite"], fields={"pack": "special"}), read=old)
    for flt in (SearchFilter(tags_any=("favourite",)), SearchFilter(fields={"pack": "special"}),
                SearchFilter(tags_all=("favourite",), fields={"pack": "special"})):
        assert {h.clip_id for h in store.search_windows(q, 50, flt)[0]} == {edited}, flt
        assert {h.record.id for h in store.search_moments(q[0], 10, flt)} == {edited}, flt
    was = old.meta.tags[0]
    assert edited not in {h.clip_id for h in store.search_windows(q, 200, SearchFilter(tags_any=(was,)))[0]}
    assert edited in {h.clip_id for h in store.search_windows(q, 200, SearchFilter(tags_none=(was,)))[0]}
    before = SearchFilter(fields={"pack": "p2"})
    assert edited not in {h.record.id for h in store.search_moments(q[0], 50, before)}


def test_remove_takes_the_windows_along(store):
    before = store.window_count()
    assert store.remove([2, 7]) == 2  # clip 2 has 2 windows, clip 7 none
    assert store.window_count() == before - 2 and store.windows([2]) == {} and store.peaks(2) is None
    q = unit(np.random.default_rng(3).standard_normal((1, D)))
    hits = store.search_windows(q, 200)[0]
    assert len(hits) == before - 2 and 2 not in {h.clip_id for h in hits}


def test_windows_survive_a_reopen(store, backend_settings):  # noqa: F811
    store.remove([3])
    xq = unit(np.random.default_rng(4).standard_normal((2, D)))
    before = store.search_windows(xq, 10)
    store.close()
    with open_backend(backend_settings, SPEC) as s:
        assert s.search_windows(xq, 10) == before
        np.testing.assert_array_equal(s.peaks(1), timeline(0).peaks)


def test_replace_vectors_reprojects_the_windows(store, backend_settings):  # noqa: F811
    rng = np.random.default_rng(5)
    W = rng.standard_normal((527, 8)).astype(np.float32)

    def project(logits):
        return unit(logits @ W)  # (n, 8)

    new_spec = replace(SPEC, head="head-b", dim=8)
    ids = store.ids().tolist()
    with pytest.raises(ValueError, match="windows"):
        store.replace_vectors(ids, unit(rng.standard_normal((N, 8))), new_spec)
    assert store.spec == SPEC and store.window_count() == len(all_windows()[0])
    store.replace_vectors(ids, unit(rng.standard_normal((N, 8))), new_spec, project=project)
    got = store.windows(ids)
    for cid, w in got.items():
        np.testing.assert_allclose(w.vectors.astype(np.float32),
                                   project(timeline(cid - 1).windows.logits), atol=1e-3)
    q = unit(rng.standard_normal((1, 8)))
    hits = store.search_windows(q, 5)[0]
    scores = {(c, n): float(x) for c in got for n, x in enumerate(got[c].scores(q[0]))}
    want = sorted(scores, key=lambda key: -scores[key])[:5]
    assert [(h.clip_id, h.window) for h in hits] == want
    store.close()
    with open_backend(backend_settings, new_spec) as s:
        assert [(h.clip_id, h.window) for h in s.search_windows(q, 5)[0]] == want
        np.testing.assert_array_equal(s.peaks(1), timeline(0).peaks)


def test_set_timeline_backfills_a_clip_stored_without_windows(store):
    t = timeline(0)
    assert store.set_timeline(7, t)
    assert store.without_windows().tolist() == [14, 21]
    np.testing.assert_array_equal(store.windows([7])[7].vectors, t.windows.vectors)
    np.testing.assert_array_equal(store.peaks(7), t.peaks)
    q = t.windows.vectors[:1].astype(np.float32)
    assert (7, 0) in {(h.clip_id, h.window) for h in store.search_windows(q, 3)[0]}
    assert store.set_timeline(7, timeline(3))  # again: replaced, not added to
    assert len(store.windows([7])[7].starts) == 4
    assert not store.set_timeline(99, t)
    assert store.windows([99]) == {}


@pytest.mark.parametrize("bad", [
    lambda t: replace(t, windows=replace(t.windows, ends=t.windows.starts - 1)),  # end before start
    lambda t: replace(t, windows=replace(t.windows, vectors=t.windows.vectors[:, :3])),  # wrong width
    lambda t: replace(t, windows=replace(t.windows, logits=None)),
    lambda t: replace(t, windows=replace(t.windows, starts=t.windows.starts[:1])),  # one start for two
    lambda t: replace(t, peaks=t.peaks.astype(np.float32)),
    lambda t: replace(t, peaks=np.zeros(0, np.uint8)),
], ids=["end<start", "width", "no-logits", "starts", "peaks-dtype", "no-peaks"])
def test_a_bad_timeline_changes_nothing(store, bad):
    broken = bad(timeline(1))
    count, windows = store.count(), store.window_count()
    with pytest.raises(ValueError):
        store.add(clip(N), unit(np.ones(D)), np.zeros(527, np.float32), broken)
    with pytest.raises(ValueError):
        store.set_timeline(7, broken)
    assert (store.count(), store.window_count()) == (count, windows)
    assert store.get_by_sha256(clip(N).sha256) is None and store.windows([7]) == {}
