"""The FAISS store scores given clips' windows in its windows index (flat16 or ivf16), not by reading them
back: its answers are the base's (every window read from SQLite and scored with numpy), on planted
collections of short and of long clips; the in-memory places follow reopening, other processes' writes,
removals and backfills; "auto" turns into ivf16 past its size; window logits are kept as float16."""

import sqlite3
from functools import partial

import numpy as np
import pytest

from index.faiss import cache
from index.faiss import store as faiss_store
from index.faiss.store import FaissStore
from index.layout import CLIP_DB
from index.store.contract import VectorStore
from index.store.records import MomentQuery, NewClip, Tag, Timeline, Windows
from retrieval.model_spec import ModelSpec

D = 32
SPEC = ModelSpec(passt_weights="random", text_model="test", dim=D, head="zero-shot", lam=0.0)


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clip(i: int, duration: float) -> NewClip:
    return NewClip(name=f"rec{i}.wav", location=f"/a/rec{i}.wav", sha256=f"{i:064x}", duration=duration,
                   sample_rate=32000, tags=(Tag("Speech", 0.5),))


def recording(rng, n_windows: int, planted: dict[int, np.ndarray]) -> Timeline:
    """n windows of 10 s every 2.5 s along a slow random walk (neighbours alike, as in a long take), with
    the planted vectors at their windows."""
    walk = np.cumsum(rng.standard_normal((n_windows, D)) * 0.3, axis=0) + 3 * rng.standard_normal(D)
    xb = unit(walk)
    for n, v in planted.items():
        xb[n] = v
    starts = 2.5 * np.arange(n_windows)
    return Timeline(Windows(starts, starts + 10.0, xb.astype(np.float16),
                            rng.standard_normal((n_windows, 527)).astype(np.float32)),
                    np.zeros(10, np.uint8))


def collection(store, *, long: bool, seed: int = 0):
    """Six recordings (600 windows each, or 1-5 when short); the query's vector is planted in clips 2 and 5
    over two stretches each. -> the query."""
    rng = np.random.default_rng(seed)
    q = unit(rng.standard_normal(D))
    near = [unit(q + 0.2 * rng.standard_normal(D)) for _ in range(12)]
    clips, timelines = [], []
    for i in range(6):
        w = 600 if long else 1 + i % 5
        planted = {}
        if i in (2, 5):
            places = [100, 101, 102, 400, 401] if long else [0]
            planted = {n: near[(j + i) % 12] for j, n in enumerate(places) if n < w}
        timelines.append(recording(rng, w, planted))
        clips.append(clip(i, 2.5 * w + 7.5))
    store.add_many(clips, unit(rng.standard_normal((6, D))), rng.standard_normal((6, 527)).astype(np.float32),
                   timelines)
    return q


def base(store, name):
    """The base class's method, reading every window back (the reference answer)."""
    return partial(getattr(VectorStore, name), store)


def same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for c in want:
        np.testing.assert_array_equal(got[c].n, want[c].n)
        np.testing.assert_array_equal(got[c].starts, want[c].starts)
        np.testing.assert_array_equal(got[c].ends, want[c].ends)
        np.testing.assert_allclose(got[c].scores, want[c].scores, atol=1e-5)


def same_moments(got: dict, want: dict) -> None:
    assert {c: (m.start, m.end, m.window) for c, m in got.items()} == \
        {c: (m.start, m.end, m.window) for c, m in want.items()}
    np.testing.assert_allclose([got[c].score for c in want], [want[c].score for c in want], atol=1e-5)


def moments_of(store, q, moments, *, reference=False):
    if reference:
        store.scored_windows = base(store, "scored_windows")
    try:
        return [(h.record.id, h.segment.start, h.segment.end, round(h.score, 4))
                for h in store.search_moments(q, 5, moments=moments)]
    finally:
        store.__dict__.pop("scored_windows", None)


@pytest.mark.parametrize("kind", ["flat16", "ivf16", "ivf8"])
@pytest.mark.parametrize("long", [False, True])
def test_scored_windows_are_the_base_answers(tmp_path, monkeypatch, kind, long):
    monkeypatch.setattr(faiss_store, "CLIP_LISTS", 10_000)  # an IVF scanning every list is exact (ivf8 once
    # what its 8-bit scores find near each cut is rescored with the stored vectors)
    with FaissStore(tmp_path, SPEC, kind="flat16", window_kind=kind, nprobe=64) as store:
        q = collection(store, long=long)  # an index is rebuilt as the kind its size calls for when written
    with FaissStore(tmp_path, SPEC, kind="flat16", window_kind=kind, nprobe=64) as store:
        assert store.stats()["window_index_kind"] == (kind if long else "flat16")  # IVF needs 1,024
        ids = [1, 2, 3, 4, 5, 6, 99]
        for margin, floor in ((0.0, None), (0.05, None), (0.3, None), (None, 0.5), (None, 2.0)):
            same(store.scored_windows(q, ids, margin=margin, floor=floor),
                 base(store, "scored_windows")(q, ids, margin=margin, floor=floor))
        same_moments(store.best_windows(q, ids), base(store, "best_windows")(q, ids))
        for mq in (MomentQuery(), MomentQuery(per_clip=1), MomentQuery(threshold=0.6, per_clip=5)):
            assert moments_of(store, q, mq) == moments_of(store, q, mq, reference=True)
        if long:
            top = store.search_moments(q, 4)
            assert {h.record.id for h in top[:2]} <= {3, 6}  # the planted stretches, found first
            assert {(h.segment.start, h.segment.end) for h in top} & {(250.0, 265.0), (1000.0, 1012.5)}


@pytest.mark.parametrize("kind", ["ivf16", "ivf8"])
def test_ivf_with_few_lists_scanned_still_finds_the_planted_moments(tmp_path, kind):
    with FaissStore(tmp_path, SPEC, kind="flat16", window_kind=kind, nprobe=1) as store:
        q = collection(store, long=True)
        got = moments_of(store, q, MomentQuery(per_clip=2))
        assert [g[:3] for g in got[:4]] == [g[:3] for g in moments_of(store, q, MomentQuery(per_clip=2),
                                                                       reference=True)][:4]


def test_places_follow_reopening_other_writers_removal_and_backfill(tmp_path):
    with FaissStore(tmp_path, SPEC, window_kind="flat16") as store:
        q = collection(store, long=True)
        want = base(store, "scored_windows")(q, [1, 3, 6], margin=0.1)
    with FaissStore(tmp_path, SPEC, window_kind="flat16") as a, \
            FaissStore(tmp_path, SPEC, window_kind="flat16") as b:
        same(a.scored_windows(q, [1, 3, 6], margin=0.1), want)  # read back from SQLite's places
        rng = np.random.default_rng(9)
        b.add(clip(50, 100.0), unit(rng.standard_normal(D)), np.zeros(527, np.float32),
              recording(rng, 37, {5: q}))
        new_id = b.get_by_sha256(f"{50:064x}").id
        got = a.scored_windows(q, [new_id], margin=0.0)  # another process's clip
        assert got[new_id].n.tolist() == [5]
        b.set_timeline(new_id, recording(rng, 12, {7: q}))  # backfilled again elsewhere
        assert a.scored_windows(q, [new_id], margin=0.0)[new_id].n.tolist() == [7]
        b.remove([new_id, 3])
        assert a.scored_windows(q, [new_id, 3, 6], margin=0.0).keys() == {6}
        a.remove([6])
        assert a.scored_windows(q, [6], margin=0.0) == {}


def test_auto_is_flat16_while_small_and_ivf16_once_large(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "AUTO_IVF_AT", 2000)
    with FaissStore(tmp_path, SPEC, window_kind="auto") as store:
        rng = np.random.default_rng(1)
        store.add(clip(1, 3000.0), unit(rng.standard_normal(D)), np.zeros(527, np.float32),
                  recording(rng, 1200, {}))
        assert store.stats()["window_index_kind"] == "flat16"
        store.add(clip(2, 3000.0), unit(rng.standard_normal(D)), np.zeros(527, np.float32),
                  recording(rng, 1200, {}))
    files = sorted(p.name for p in (tmp_path / "faiss" / "windows").glob("*.faiss"))
    assert len(files) == 1 and files[0].startswith("ivf16-")  # rebuilt when written; the flat16 one pruned
    with FaissStore(tmp_path, SPEC, window_kind="auto") as store:
        stats = store.stats()
        assert (stats["window_index_kind"], stats["window_index_lists"]) == ("ivf16", 49)  # sqrt(2,400)
        assert store.window_count() == 2400


def test_another_window_kind_replaces_the_file_of_the_same_state(tmp_path):
    with FaissStore(tmp_path, SPEC, window_kind="ivf16") as store:
        collection(store, long=True)
    folder = tmp_path / "faiss" / "windows"
    assert [p.name.split("-")[0] for p in folder.glob("*.faiss")] == ["ivf16"]
    with FaissStore(tmp_path, SPEC, window_kind="ivf8") as store:  # rebuilt at open, at the same state
        assert store.stats()["window_index_kind"] == "ivf8"
    assert [p.name.split("-")[0] for p in folder.glob("*.faiss")] == ["ivf8"]


def test_window_logits_are_float16_and_older_float32_rows_still_reproject(tmp_path):
    with FaissStore(tmp_path, SPEC, window_kind="flat16") as store:
        collection(store, long=False)
        con = sqlite3.connect(tmp_path / CLIP_DB)
        assert {len(r[0]) for r in con.execute("SELECT logits FROM windows")} == {527 * 2}
        old = np.random.default_rng(3).standard_normal(527).astype(np.float32)
        with con:  # a row as written before version 3
            con.execute("UPDATE windows SET logits = ? WHERE clip_id = 1 AND n = 0", (old.tobytes(),))
        con.close()
        weights = unit(np.random.default_rng(4).standard_normal((527, D)).T).T
        store.replace_vectors(store.ids(), store.vectors(store.ids()), SPEC,
                              project=lambda logits: unit(logits @ weights))
        got = store.windows([1])[1].vectors[0].astype(np.float32)
        np.testing.assert_allclose(got, unit(old @ weights), atol=1e-3)


def test_ivf16_scores_given_groups_in_their_lists_nearest_the_query():
    from index.faiss.vector_index import VectorIndex

    rng = np.random.default_rng(5)
    xb = unit(rng.standard_normal((3000, D))).astype(np.float16).astype(np.float32)
    ids = np.arange(10, 3010)
    vi = VectorIndex(D, "ivf16", n=len(ids))
    vi.train(xb)
    vi.add(ids, xb)
    q = unit(rng.standard_normal(D))
    groups = [ids[:700], ids[700:701], ids[1500:2900]]
    members = np.concatenate(groups)
    scores, found = vi.scan_groups(q, groups, lists=vi.nlist)  # every list: every member, exactly scored
    assert sorted(found.tolist()) == sorted(members.tolist())
    np.testing.assert_allclose(scores, xb[found - 10] @ q, atol=1e-5)
    # one list each: each group's list nearest q among those holding its members is scanned, and every
    # member of any group in a scanned list is scored
    _, assigned = vi.index.quantizer.search(xb, 1)
    centres = vi.index.quantizer.reconstruct_n(0, vi.nlist) @ q
    scanned = {int(lists[np.argmax(centres[lists])]) for lists in (assigned[g - 10, 0] for g in groups)}
    want = [int(i) for i in members if assigned[i - 10, 0] in scanned]
    scores, found = vi.scan_groups(q, groups, lists=1)
    assert 0 < len(found) < len(members) and sorted(found.tolist()) == sorted(want)
    np.testing.assert_allclose(scores, xb[found - 10] @ q, atol=1e-5)
    vi.remove(ids[:5])
    scores, found = vi.scan_groups(q, [ids[:700]], lists=vi.nlist)
    assert sorted(found.tolist()) == list(range(15, 710))
    assert [len(a) for a in vi.scan_groups(q, [], lists=3)] == [0, 0]


def test_an_ivf_index_is_trained_again_once_it_has_grown_fourfold(tmp_path):
    rng = np.random.default_rng(2)

    def add(store, i, n):
        store.add(clip(i, 2.5 * n), unit(rng.standard_normal(D)), np.zeros(527, np.float32),
                  recording(rng, n, {}))

    with FaissStore(tmp_path, SPEC, window_kind="ivf16") as store:
        add(store, 1, 1100)
    with FaissStore(tmp_path, SPEC, window_kind="ivf16") as store:
        assert store.stats()["window_index_lists"] == 33  # sqrt(1,100)
        add(store, 2, 3000)  # 4,100 windows: sqrt is under twice the lists, kept
    with FaissStore(tmp_path, SPEC, window_kind="ivf16") as store:
        assert store.stats()["window_index_lists"] == 33
        add(store, 3, 500)  # 4,600: trained again when written
    with FaissStore(tmp_path, SPEC, window_kind="ivf16") as store:
        assert store.stats()["window_index_lists"] == 68 and store.window_count() == 4600


def test_places_locate_window_ids_in_their_clips_windows():
    from index.faiss.window_places import WindowPlaces

    places = WindowPlaces()
    span = np.arange(3.0)
    places.put(7, np.array([4, 5, 6]), span, span + 10)
    places.put(2, np.array([20, 21]), span[:2], span[:2] + 10)
    clips, n = places.locate(np.array([6, 20, 4, 3, 99, -1]))
    assert clips.tolist() == [7, 2, 7, -1, -1, -1] and n.tolist()[:3] == [2, 0, 0]
    places.put(7, np.array([30, 31]), span[:2], span[:2] + 10)  # backfilled again: new ids, old ones gone
    assert places.locate(np.array([4, 5, 31]))[0].tolist() == [-1, -1, 7]
    places.drop([2])
    assert places.locate(np.array([20, 21, 30]))[0].tolist() == [-1, -1, 7]
    places.load([(1, 3, 0, 0.0, 10.0)])  # (window id, clip id, n, start, end): everything else forgotten
    assert places.locate(np.array([1, 30]))[0].tolist() == [3, -1]
