"""The FAISS + SQLite store against numpy brute force, across removes, reopens, lost or stale cache files."""

import logging
import threading
from dataclasses import replace

import faiss
import numpy as np
import pytest

from index.faiss.store import FaissStore
from index.faiss.vector_index import VectorIndex
from index.layout import FAISS_DIR
from index.store.records import SearchFilter
from retrieval.errors import CheckpointMismatch, RetrievalError
from tests.index.store_fixtures import DIM, SPEC, brute_force, clip, fill, logits, unit_vectors

log = logging.getLogger(__name__)


def hits_as_arrays(hits) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([[h.score for h in row] for row in hits]),
            np.array([[h.record.id for h in row] for row in hits]))


TOLERANCE = {"flat": (1e-5, 1e-4), "hnsw": (1e-5, 1e-4), "flat16": (2e-3, 1e-3)}  # (score atol, tie gap)


def assert_matches_brute_force(store, id_to_vec: dict[int, np.ndarray], xq: np.ndarray, k: int, flt=None):
    """Exact to float32 for flat and HNSW (searched exhaustively here); to float16 rounding for flat16."""
    atol, gap = TOLERANCE[store.kind]
    ids = np.array(sorted(id_to_vec), dtype=np.int64)
    if flt is not None:
        ids = np.array([i for i in ids if passes(store.get(int(i)), flt)], dtype=np.int64)
    xb = np.stack([id_to_vec[int(i)] for i in ids])
    d_ref, i_ref = brute_force(xq, xb, ids, min(k, len(ids)))
    d, i = hits_as_arrays(store.search(xq, k, flt))
    # the same ranked scores as the oracle, each the true score of a distinct allowed clip: an exact top-k
    # (ids may differ from the oracle's only between clips whose scores tie to the index's precision)
    np.testing.assert_allclose(d, d_ref, atol=atol)
    true = np.array([[q @ id_to_vec[int(j)] for j in row] for q, row in zip(xq, i, strict=True)])
    np.testing.assert_allclose(d, true, atol=atol)
    assert all(len(set(row)) == len(row) and set(row) <= set(ids) for row in i)
    untied = np.abs(d_ref - np.roll(d_ref, 1, axis=1)) > gap
    untied &= np.abs(d_ref - np.roll(d_ref, -1, axis=1)) > gap
    np.testing.assert_array_equal(i[untied], i_ref[untied])


def passes(record, flt: SearchFilter) -> bool:
    return ((flt.min_duration is None or record.duration >= flt.min_duration)
            and (flt.max_duration is None or record.duration <= flt.max_duration)
            and (flt.tag is None or flt.tag.lower() in {t.label.lower() for t in record.tags}))


@pytest.fixture
def flat(tmp_path):
    with FaissStore(tmp_path / "data", SPEC, kind="flat") as store:
        yield store


@pytest.fixture(params=["flat", "flat16"])
def exact(tmp_path, request):
    with FaissStore(tmp_path / "data", SPEC, kind=request.param) as store:
        yield store


def test_exact_kinds_search_equals_numpy_brute_force(exact):
    flat = exact
    xb, xq = unit_vectors(400), unit_vectors(25, seed=1)
    rows = fill(flat, xb)
    vecs = {i: xb[r] for i, r in rows.items()}
    assert_matches_brute_force(flat, vecs, xq, 10)
    assert_matches_brute_force(flat, vecs, xq, 1000)  # k beyond the collection: all of it, ranked
    for flt in (SearchFilter(min_duration=2, max_duration=4), SearchFilter(tag="rain"),
                SearchFilter(tag="Speech", max_duration=3)):
        assert_matches_brute_force(flat, vecs, xq, 10, flt)
    assert flat.search(xq, 5, SearchFilter(tag="no such tag")) == [[] for _ in xq]
    assert flat.search(xq, 0) == [[] for _ in xq]


def test_hnsw_recall_against_brute_force():
    """Recall is the in-memory index's business; the store around it is checked for both kinds below."""
    dim, k = 128, 10
    xb, xq = unit_vectors(3000, dim), unit_vectors(200, dim, seed=1)  # uniform: HNSW's hardest data
    ids = np.arange(1, len(xb) + 1)
    vi = VectorIndex(dim, "hnsw")
    vi.add(ids, xb)
    _, i_ref = brute_force(xq, xb, ids, k)
    _, i = vi.search(xq, k)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(i, i_ref, strict=True)])
    log.info("HNSW recall@%d on %d random %d-d vectors: %.3f", k, len(xb), dim, recall)
    assert recall >= 0.95


@pytest.mark.parametrize("kind", ["flat", "flat16", "hnsw"])
def test_add_remove_search_reopen_stay_consistent(tmp_path, kind):
    xb, xq = unit_vectors(120), unit_vectors(10, seed=1)
    with FaissStore(tmp_path / "data", SPEC, kind=kind) as store:
        rows = fill(store, xb)
        gone = sorted(rows)[::4]
        assert store.remove(gone + [10_000]) == len(gone)
        assert store.remove(gone) == 0
        live = {i: xb[r] for i, r in rows.items() if i not in gone}
        for i in gone:
            assert store.get(i) is None
        assert store.count() == len(live) == len(store.list(limit=1000))
        assert_matches_brute_force(store, live, xq, 10)
        more = fill(store, unit_vectors(5, seed=2), start=500)
        live.update({i: unit_vectors(5, seed=2)[r] for i, r in more.items()})
        assert not set(more) & set(rows)  # ids are never reused
    with FaissStore(tmp_path / "data", SPEC, kind=kind) as store:
        assert store.count() == len(live)
        assert_matches_brute_force(store, live, xq, 10)  # HNSW with efSearch > N searches exhaustively
    for path in (tmp_path / "data" / FAISS_DIR).glob("*.faiss"):
        path.write_bytes(b"not an index")  # a damaged cache is rebuilt from SQLite
    with FaissStore(tmp_path / "data", SPEC, kind=kind) as store:
        assert_matches_brute_force(store, live, xq, 10)


def test_a_store_made_with_flat_opens_with_flat16_the_default_and_back(tmp_path):
    """The FAISS file is a cache of SQLite: another kind rebuilds its own from the clips, nothing is lost."""
    xb, xq = unit_vectors(80), unit_vectors(8, seed=1)
    with FaissStore(tmp_path / "data", SPEC, kind="flat") as store:
        rows = fill(store, xb)
        store.remove([1, 2])
    live = {i: xb[r] for i, r in rows.items() if i not in (1, 2)}
    folder = tmp_path / "data" / FAISS_DIR
    assert [p.name.split("-")[0] for p in folder.glob("*.faiss")] == ["flat"]
    with FaissStore(tmp_path / "data", SPEC, kind="flat16") as store:
        assert store.count() == len(live) and store.stats()["index_kind"] == "flat16"
        assert_matches_brute_force(store, live, xq, 10)
        more = fill(store, unit_vectors(4, seed=2), start=100)
        live.update({i: unit_vectors(4, seed=2)[r] for i, r in more.items()})
    assert any(p.name.startswith("flat16-") for p in folder.glob("*.faiss"))
    with FaissStore(tmp_path / "data", SPEC, kind="flat") as store:  # and back: caught up from SQLite
        assert_matches_brute_force(store, live, xq, 10)


def test_flat16_stores_half_the_bytes_and_rounds_scores_only_to_float16():
    xb, xq = unit_vectors(300), unit_vectors(20, seed=1)
    ids = np.arange(1, len(xb) + 1)
    flat, flat16 = VectorIndex(DIM, "flat"), VectorIndex(DIM, "flat16")
    for vi in (flat, flat16):
        vi.add(ids, xb)
    d32, _ = flat.search(xq, 300)
    d16, i16 = flat16.search(xq, 300)
    # the oracle: scores against the stored vectors rounded to float16, exactly what flat16 scans
    xb16 = xb.astype(np.float16).astype(np.float32)
    want = np.take_along_axis(xq @ xb16.T, i16 - 1, axis=1)  # (Q, 300)
    np.testing.assert_allclose(d16, want, atol=1e-5)
    np.testing.assert_allclose(np.sort(d16, axis=1), np.sort(d32, axis=1), atol=2e-3)
    assert faiss.downcast_index(flat16.index.index).code_size == 2 * DIM  # 2 bytes per dimension, not 4


def test_opening_the_store_sets_the_search_threads_and_searches_leave_openmp_as_it_was(settings, monkeypatch):
    from app.compose import store_config
    from index.stores import open_store

    xb = unit_vectors(50)
    set_threads = faiss.omp_set_num_threads
    calls: list[int] = []
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n: (calls.append(n), set_threads(n))[1])
    for n in (3, 1):
        one = settings.model_copy(update={"search_threads": n, "data_dir": settings.data_dir / str(n)})
        with open_store(store_config(one), SPEC) as store:
            assert store.search_threads == n
            vecs = {i: xb[r] for i, r in fill(store, xb).items()}
            own = faiss.omp_get_max_threads()
            for threads_before in (own, own + 2):  # another thread count set by torch, say
                set_threads(threads_before)
                calls.clear()
                assert_matches_brute_force(store, vecs, xb[:3], 5)
                # each search ran with the store's thread count, then put the caller's back
                assert calls == ([] if threads_before == n else [n, threads_before])
                assert faiss.omp_get_max_threads() == threads_before
            set_threads(own)
    with pytest.raises(ValueError, match="at least 1"):
        VectorIndex(DIM, "flat", search_threads=0)


def test_unknown_index_kind_is_refused():
    with pytest.raises(ValueError, match="flat16"):
        VectorIndex(DIM, "ivf")


def test_stale_cache_file_is_caught_up_after_a_crash(tmp_path):
    xb, xq = unit_vectors(60), unit_vectors(8, seed=1)
    with FaissStore(tmp_path / "data", SPEC) as store:
        rows = fill(store, xb[:40])
    crashed = FaissStore(tmp_path / "data", SPEC, persist_every=10**9)
    rows.update({i: 40 + r for i, r in fill(crashed, xb[40:], start=40).items()})
    gone = sorted(rows)[:7]
    crashed.remove(gone)
    crashed.db.close()  # dies without writing its FAISS file: the file on disk is from before
    files = list((tmp_path / "data" / FAISS_DIR).glob("*.faiss"))
    assert len(files) == 1 and files[0].name.endswith("-g40.faiss")
    with FaissStore(tmp_path / "data", SPEC) as store:
        assert_matches_brute_force(store, {i: xb[r] for i, r in rows.items() if i not in gone}, xq, 60)


def test_a_second_store_on_the_same_folder_sees_the_other_s_writes(tmp_path):
    xb = unit_vectors(30)
    with FaissStore(tmp_path / "data", SPEC) as a, FaissStore(tmp_path / "data", SPEC) as b:
        rows = fill(a, xb[:20])
        assert_matches_brute_force(b, {i: xb[r] for i, r in rows.items()}, xb[:3], 5)
        rows.update({i: 20 + r for i, r in fill(b, xb[20:], start=20).items()})  # b catches up with a first
        a.remove([1, 2])
        live = {i: xb[r] for i, r in rows.items() if i not in (1, 2)}
        assert_matches_brute_force(a, live, xb[:5], 30)
        assert_matches_brute_force(b, live, xb[:5], 30)


def test_duplicate_content_returns_the_stored_record(flat):
    first = flat.add(clip(1), unit_vectors(1)[0], logits(1))
    again = flat.add(clip(1), unit_vectors(1, seed=5)[0], logits(2))
    assert again == first and flat.count() == 1
    np.testing.assert_array_equal(flat.logits([first.id])[0], logits(1))


def test_bad_input_changes_nothing(flat):
    fill(flat, unit_vectors(3))
    with pytest.raises(ValueError):
        flat.add(clip(9), np.ones(DIM + 1, np.float32), logits(9))
    with pytest.raises(ValueError):
        flat.add(clip(9), np.full(DIM, np.nan, np.float32), logits(9))
    with pytest.raises(ValueError):
        flat.search(np.ones((1, DIM - 1), np.float32), 3)
    with pytest.raises(RetrievalError, match="changed during re-projection"):
        flat.replace_vectors([1, 2], unit_vectors(2), SPEC)  # not the whole collection
    assert flat.count() == 3 and flat.db.state()[0] == 0


def test_model_mismatch_is_refused_with_the_fix(tmp_path):
    with FaissStore(tmp_path / "data", SPEC) as store:
        fill(store, unit_vectors(2))
    with pytest.raises(CheckpointMismatch, match="`retrieval index reproject` .no PaSST needed."):
        FaissStore(tmp_path / "data", replace(SPEC, head="abc123"))
    with pytest.raises(CheckpointMismatch, match="indexed again"):
        FaissStore(tmp_path / "data", replace(SPEC, window_s=5.0))
    with FaissStore(tmp_path / "data", replace(SPEC, head="abc123"), check=False) as store:
        assert store.spec == SPEC and store.count() == 2


def test_an_empty_store_takes_the_configured_model(tmp_path):
    FaissStore(tmp_path / "data", SPEC).close()
    other = replace(SPEC, head="abc123", dim=16)
    with FaissStore(tmp_path / "data", other) as store:
        fill(store, unit_vectors(2, 16))
        assert store.spec == other


def test_replace_vectors_swaps_model_and_survives_reopen(flat, tmp_path):
    rows = fill(flat, unit_vectors(50))
    ids = sorted(rows)
    new_fp, new_xb = replace(SPEC, head="f" * 64, dim=16), unit_vectors(50, 16, seed=3)
    flat.replace_vectors(ids, new_xb, new_fp)
    xq = unit_vectors(4, 16, seed=4)
    assert_matches_brute_force(flat, dict(zip(ids, new_xb, strict=True)), xq, 10)
    flat.close()
    with FaissStore(tmp_path / "data", new_fp) as store:
        assert_matches_brute_force(store, dict(zip(ids, new_xb, strict=True)), xq, 10)
    with pytest.raises(CheckpointMismatch):
        FaissStore(tmp_path / "data", SPEC)


@pytest.mark.parametrize("kind", ["flat", "flat16", "hnsw"])
def test_searches_beside_writes_see_whole_states(tmp_path, kind):
    """Readers run while a writer adds and removes: every hit is a stored clip with its own score."""
    xb, xq = unit_vectors(150), unit_vectors(6, seed=1)
    store = FaissStore(tmp_path / "data", SPEC, kind=kind)
    errors: list[BaseException] = []
    done = threading.Event()

    def write():
        try:
            for r in range(len(xb)):
                rec = store.add(clip(r), xb[r], logits(r))
                if r % 3 == 2:
                    store.remove([rec.id - 1])
        finally:
            done.set()

    def read():
        try:
            while not done.is_set():
                for q, row in zip(xq, store.search(xq, 8), strict=True):
                    scores = [h.score for h in row]
                    assert scores == sorted(scores, reverse=True)
                    for h in row:
                        row_of_clip = int(h.record.sha256, 16)  # see store_fixtures.clip
                        np.testing.assert_allclose(h.score, q @ xb[row_of_clip], atol=TOLERANCE[kind][0])
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert store.count() == len(xb) - len(xb) // 3
    store.close()



def test_a_full_disk_is_storage_full_and_the_store_is_left_as_it_was(tmp_path):
    """SQLite rolls a transaction back itself on SQLITE_FULL; the second ROLLBACK's "cannot rollback - no
    transaction is active" hid it (an edit or a removal answered 500, `index add` printed that line)."""
    from index.store.metadata import Metadata
    from retrieval.errors import StorageFull

    with FaissStore(tmp_path, SPEC) as store:
        first = store.add(clip(0), unit_vectors(1)[0], logits(0))
        con = store.db.connection()
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {pages}")  # this connection may not grow the file any more
        with pytest.raises(StorageFull, match="database or disk is full; nothing was stored"):
            store.set_metadata(first.id, Metadata.of(description="x" * 100_000))
        with pytest.raises(StorageFull):
            store.add_many([clip(i) for i in range(1, 40)], unit_vectors(39), np.stack([logits(i)
                                                                                     for i in range(1, 40)]))
        assert not con.in_transaction and store.count() == 1 and store.get(first.id).meta.description == ""
        con.execute("PRAGMA max_page_count = 1073741823")
        assert store.add(clip(1), unit_vectors(2)[1], logits(1)).id == first.id + 1  # room again: it goes on


@pytest.mark.parametrize("write", ["remove", "add", "set_metadata", "replace_vectors"])
def test_searches_go_on_while_a_write_waits_for_another_processs_transaction(tmp_path, write):
    """A write of this process waiting for SQLite's lock (another process's transaction: `index add`, the
    ingest worker) held the in-memory write lock meanwhile, so every search queued behind it for as long
    as that transaction lasted (up to the busy timeout, 60 s). Searches now go on, the write's change
    included once it is made, even when another process committed before (a search catches up)."""
    import sqlite3
    import time

    from index.layout import CLIP_DB
    from index.store.metadata import Metadata

    store = FaissStore(tmp_path / "data", SPEC, kind="flat")
    ids = sorted(fill(store, unit_vectors(20)))
    other = FaissStore(tmp_path / "data", SPEC, kind="flat")  # another process's view of the same store
    fill(other, unit_vectors(2, seed=5), start=100)  # committed there: this process has to catch up
    held = sqlite3.connect(tmp_path / "data" / CLIP_DB, isolation_level=None)
    held.execute("BEGIN IMMEDIATE")  # another process writing, for as long as this test says
    everyone = lambda: store.db.ids().tolist()  # noqa: E731  (the 22 clips, the other process's included)
    actions = {"remove": lambda: store.remove([ids[0]]),
               "add": lambda: store.add(clip(200), unit_vectors(1, seed=7)[0], logits(200)),
               "set_metadata": lambda: store.set_metadata(ids[1], Metadata.of(tags=["x"])),
               "replace_vectors": lambda: store.replace_vectors(everyone(), unit_vectors(22, seed=9),
                                                                replace(SPEC, head="e" * 64))}
    waiting = threading.Thread(target=actions[write])
    waiting.start()
    try:
        time.sleep(0.5)  # the write is in SQLite's busy wait by now
        assert waiting.is_alive()
        searched: list = []
        searcher = threading.Thread(target=lambda: searched.append(store.search(unit_vectors(1, seed=3), 30)))
        searcher.start()
        searcher.join(timeout=30)
        assert not searcher.is_alive() and waiting.is_alive(), "the search waited for the write"
        assert len(searched[0][0]) == 22  # the other process's two clips caught up with
    finally:
        held.execute("COMMIT")
        held.close()
        waiting.join(timeout=60)
    assert not waiting.is_alive()
    found = {h.record.id for h in store.search(unit_vectors(1, seed=3), 40)[0]}
    assert (ids[0] not in found) if write == "remove" else len(found) == 22 + (write == "add")
    store.close()
    other.close()


def test_a_rebuild_reads_only_the_clips_sqlite_still_holds(tmp_path):
    """An HNSW index with tombstones is rebuilt when written: from the ids it held, whose vectors were read
    from SQLite, so a clip another process removed since this one caught up was a KeyError (close failed,
    nothing written; a committed add raised). It is built from what SQLite still holds."""
    data = tmp_path / "data"
    store = FaissStore(data, SPEC, kind="hnsw", persist_every=1000)
    ids = sorted(fill(store, unit_vectors(20)))
    other = FaissStore(data, SPEC, kind="hnsw", persist_every=1000)
    store.remove([ids[0]])  # a tombstone in memory, not written yet
    other.remove([ids[1]])  # committed by another process; this one has not caught up
    store.close()
    other.close()
    with FaissStore(data, SPEC, kind="hnsw") as again:
        assert sorted(again._clips.index.ids().tolist()) == again.db.ids().tolist() == ids[2:]


def test_writes_of_a_process_behind_another_ones_reprojection_are_refused_before_they_are_made(tmp_path):
    """Only adds were refused before their commit: a backfill's windows of the old model went into the
    re-projected store, and a removal was made, then said to have failed."""
    from index.store.records import Timeline, Windows

    data = tmp_path / "data"
    store = FaissStore(data, SPEC, kind="flat")
    ids = sorted(fill(store, unit_vectors(6)))
    behind = FaissStore(data, SPEC, kind="flat")  # another process, still on the old model
    store.replace_vectors(ids, unit_vectors(6, seed=4), replace(SPEC, head="f" * 64))
    starts = np.array([0.0, 2.5])
    timeline = Timeline(Windows(starts, starts + 5, unit_vectors(2, seed=5).astype(np.float16),
                                np.zeros((2, 527), np.float32)), np.zeros(8, np.uint8))
    state = store.db.state()
    with pytest.raises(CheckpointMismatch):
        behind.set_timeline(ids[0], timeline)
    with pytest.raises(CheckpointMismatch):
        behind.remove([ids[1]])
    assert store.db.state() == state and store.db.ids().tolist() == ids and store.window_count() == 0
    store.close()
    behind.close()


def test_an_add_answers_the_clip_it_stored_even_if_another_process_removes_it_at_once(tmp_path, monkeypatch):
    """The record was read after the write's lock was let go: a removal landing there was a bare KeyError
    for an add that had been made."""
    data = tmp_path / "data"
    store = FaissStore(data, SPEC, kind="flat")
    other = FaissStore(data, SPEC, kind="flat")
    real = store._committed

    def committed_then_removed(before, apply):
        real(before, apply)
        other.remove(other.db.ids().tolist())  # another process, right after this add's commit

    monkeypatch.setattr(store, "_committed", committed_then_removed)
    [added] = store.add_many([clip(1)], unit_vectors(1), logits(1)[None])
    assert added.created and added.record.sha256 == clip(1).sha256 and store.db.get(added.record.id) is None
    store.close()
    other.close()


def test_a_search_during_this_processs_reprojection_answers_one_model_never_a_mix(tmp_path, monkeypatch):
    """From the re-projection's commit SQLite holds the new vectors, which some searches read (windows,
    rescoring, a query by a clip's own vector): a search made while the new indexes were built answered the
    old query against the new vectors (a ValueError once the dimension changed). It waits for the swap and
    answers the new model's state."""
    from index.faiss import cache as cache_mod

    store = FaissStore(tmp_path / "data", SPEC, kind="flat")
    ids = sorted(fill(store, unit_vectors(12)))
    new_spec, new_xb = replace(SPEC, head="f" * 64, dim=16), unit_vectors(12, 16, seed=3)
    answers: list = []
    searcher = threading.Thread(target=lambda: answers.append(store.search(store.vectors([ids[0]]), 3)))
    real_fresh = cache_mod.CachedIndex.fresh

    def fresh(self, dim):  # the build of the new indexes, after the commit: a search starts now
        if not searcher.is_alive() and not answers:
            searcher.start()
            searcher.join(1.0)
            assert searcher.is_alive(), "a search read the new vectors before the new indexes were in"
        return real_fresh(self, dim)

    monkeypatch.setattr(cache_mod.CachedIndex, "fresh", fresh)
    store.replace_vectors(ids, new_xb, new_spec)
    searcher.join(30)
    assert not searcher.is_alive() and answers[0][0][0].record.id == ids[0]  # its own new vector, first
    assert answers[0][0][0].score == pytest.approx(1.0, abs=1e-5)
    store.close()


CLOSE_WHILE_SEARCHING = """
import gc, os, sys, threading, time
from index.faiss.store import FaissStore
from retrieval.errors import StoreClosed
from tests.index.store_fixtures import SPEC, fill, unit_vectors

folder = sys.argv[1]
for round in range(6):
    data_dir = os.path.join(folder, str(round))
    store = FaissStore(data_dir, SPEC)
    xb = unit_vectors(40)
    fill(store, xb)
    failures = []

    def search():
        while True:
            try:
                store.search(xb[:4], 10)
                store.search_keywords("clip1", 5)
                store.records([1, 2, 3])
            except StoreClosed:
                return
            except Exception as e:
                failures.append(repr(e))
                return

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    store.close()
    for t in threads:
        t.join()
    gc.collect()
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            held.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    print(round, failures, [p for p in held if p.startswith(data_dir)], flush=True)
"""


def test_closing_while_other_threads_search_neither_crashes_nor_leaves_files_open(tmp_path):
    """Closing the store while other threads search: SQLite connections were closed under the threads
    stepping them and the process died (SIGSEGV). Now each search ends or is told the store closed
    (StoreClosed, nothing else), and no connection to the file is left once they are done. In a child
    process, as a crash would take pytest with it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", CLOSE_WHILE_SEARCHING, str(tmp_path)], cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    rounds = run.stdout.splitlines()
    assert len(rounds) == 6
    assert all(line.endswith(" [] []") for line in rounds), rounds


def test_a_store_another_process_re_projected_closes_without_writing_the_old_models_files(tmp_path):
    """A store with changes not yet written, re-projected by another process to another dimension: its
    close rebuilt its index from SQLite's vectors, now the new model's (ValueError: its close failed), or
    wrote its old model's file beside the new one."""
    stale = FaissStore(tmp_path / "data", SPEC, kind="hnsw", persist_every=1000)
    ids = sorted(fill(stale, unit_vectors(6)))
    stale.remove([ids[0]])  # a tombstone: writing the file means rebuilding the index
    new_spec = replace(SPEC, head="f" * 64, dim=16)
    new_xb = unit_vectors(5, 16, seed=3)
    with FaissStore(tmp_path / "data", SPEC, kind="hnsw") as other:
        other.replace_vectors(ids[1:], new_xb, new_spec)
    files = sorted(p.name for p in (tmp_path / "data" / FAISS_DIR).glob("*.faiss"))
    stale.close()
    stale.close()  # closing again does nothing
    assert sorted(p.name for p in (tmp_path / "data" / FAISS_DIR).glob("*.faiss")) == files
    with FaissStore(tmp_path / "data", new_spec, kind="hnsw") as store:
        assert_matches_brute_force(store, dict(zip(ids[1:], new_xb, strict=True)), unit_vectors(3, 16), 4)
