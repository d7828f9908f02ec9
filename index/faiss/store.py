"""The default store: SQLite is the source of truth (records, logits, vectors, windows, peaks); FAISS is a
rebuildable cache, one index of the clips' vectors and one of the windows'.

Layout in the data directory: ``index.sqlite`` (+ WAL files), ``faiss/{kind}-e{epoch}-g{generation}.faiss``
(clips) and ``faiss/windows/{kind}-e{epoch}-g{generation}.faiss`` (windows; flat16 for flat, see
WINDOW_KINDS). A write commits to SQLite first (a clip with its windows, in one transaction), then mutates
the in-memory FAISS indexes under a readers-writer lock, so a search sees the collection before or after a
write, never between. The FAISS files are written atomically on close and every ``persist_every`` changes;
on open, the newest file of each is loaded and caught up with SQLite (ids added or removed since it was
written), or rebuilt from the stored vectors when it is missing, unreadable, of another kind, or from before
a re-projection (see :mod:`index.faiss.cache`). Another process's writes are picked up the same way at the
next search.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from index.faiss.cache import AUTO_CLIPS_IVF_AT, CachedIndex
from index.faiss.clip_db import ClipDB
from index.faiss.rwlock import ReadWriteLock
from index.faiss.vector_index import IVF_NPROBE, VectorIndex
from index.faiss.window_places import WindowPlaces
from index.layout import CLIP_DB, FAISS_DIR, FAISS_WINDOWS_DIR
from index.store.checks import MAX_TIE_DEPTH, check_k, check_queries, check_store_spec
from index.store.contract import DURATION_TOLERANCE_S, ClipChanged, VectorStore
from index.store.metadata import Metadata, MetaLayers
from index.store.records import (
    Added,
    Chunk,
    ClipRecord,
    FileNow,
    Floor,
    Hit,
    Hits,
    NewClip,
    Project,
    Ranking,
    ScoredWindows,
    SearchFilter,
    Timeline,
    WindowHit,
    WindowHits,
    Windows,
)
from retrieval.errors import CheckpointMismatch, RetrievalError
from retrieval.model_spec import ModelSpec

log = logging.getLogger(__name__)

# the windows' vectors are stored as float16, so a flat index over them loses nothing in float16 codes
WINDOW_KINDS = {"flat": "flat16", "flat16": "flat16", "hnsw": "hnsw", "ivf16": "ivf16",
                "ivf8": "ivf8", "auto": "auto"}  # without a window kind of its own
CLIP_LISTS = 16  # ivf: a clip's windows are scored in this many of its lists, those nearest the query
REFINE = 4  # a lossy (ivf8) window search ranks this many times k candidates by their stored vectors
REFINE_MARGIN = 0.01  # and rescores each clip's windows within this of its cut (8-bit score errors ~1e-3)
SPEC_KEY = "model_spec"  # in SQLite's meta table
LEGACY_SPEC_KEY = "fingerprint"  # what stores made before ModelSpec hold instead


def stored_spec(db: ClipDB) -> ModelSpec | None:
    """The model a clip database's vectors were made with, None before any was recorded."""
    stored = db.meta(SPEC_KEY) or db.meta(LEGACY_SPEC_KEY)  # "fingerprint": earlier stores
    return None if stored is None else ModelSpec.from_dict(json.loads(stored))


class FaissStore(VectorStore):
    backend = "faiss"

    def __init__(self, data_dir: Path, spec: ModelSpec, *, kind: str = "flat", check: bool = True,
                 persist_every: int = 1000, search_threads: int = 1, window_kind: str | None = None,
                 nprobe: int | None = None):
        """Open or create the store in `data_dir`. With check=False the stored model is accepted whatever it
        is (used to re-project a collection made with another head). `kind`: the clips' index (flat,
        flat16, hnsw, ivf16, ivf8, or auto: flat16 below AUTO_CLIPS_IVF_AT clips, then ivf16); `window_kind`:
        the windows' index (auto, flat16, ivf16, ivf8 or hnsw; None: the clips' kind's, WINDOW_KINDS);
        `nprobe`: the lists an IVF search of either scans (None: IVF_NPROBE)."""
        self.data_dir = Path(data_dir)
        self.kind = kind
        self.persist_every = persist_every
        self.search_threads = search_threads
        self._faiss_dir = self.data_dir / FAISS_DIR
        self._faiss_dir.mkdir(parents=True, exist_ok=True)
        self.db = ClipDB(self.data_dir / CLIP_DB)
        try:
            self.spec = self._adopt_spec(spec, check=check)
        except CheckpointMismatch:
            self.db.close()
            raise
        # Three locks, always taken in this order: `_writer`, this process's SQLite writes one at a time (held
        # while a write waits for another process's); `_memory`, changes to the in-memory indexes (a write's,
        # or catching up with another process's), held only while they are made, never while SQLite makes a
        # write wait, so searches never queue behind another process's transaction; `_lock`, searches against
        # those changes
        self._writer = threading.Lock()
        self._memory = threading.Lock()
        self._lock = ReadWriteLock()
        self._clips = CachedIndex(self._faiss_dir, kind=kind, dim=self.dim, search_threads=search_threads,
                                  ids=self.db.ids, vectors=lambda ids, dim: self.db.blobs(ids, "vector", dim),
                                  nprobe=nprobe or IVF_NPROBE, auto_at=AUTO_CLIPS_IVF_AT,
                                  snapshot=self.db.snapshot)
        self._windows = CachedIndex(self._faiss_dir / FAISS_WINDOWS_DIR,
                                    kind=window_kind or WINDOW_KINDS[kind], dim=self.dim,
                                    search_threads=search_threads, ids=self.db.window_ids,
                                    vectors=self.db.window_vectors, nprobe=nprobe or IVF_NPROBE,
                                    snapshot=self.db.snapshot)
        self._places = WindowPlaces()  # changed with the windows index
        self._caches = (self._clips, self._windows)
        self._epoch = self._gen = -1  # SQLite's state the caches in memory hold
        self._changes = 0  # applied since the files were last written
        self._open_index()

    # -- opening ------------------------------------------------------------------------------------------
    def _stored_spec(self) -> ModelSpec | None:
        return stored_spec(self.db)

    def _adopt_spec(self, spec: ModelSpec, *, check: bool) -> ModelSpec:
        stored = self._stored_spec()
        if stored is not None and (not check or self.db.count() > 0):
            if check:
                check_store_spec(stored, spec, where=str(self.data_dir))
            return stored
        with self.db.transaction(bump=False) as con:  # a new or empty store takes the configured model
            self.db.set_meta(con, SPEC_KEY, json.dumps(spec.to_dict(), sort_keys=True))
        return spec

    def _open_index(self) -> None:
        with self.db.snapshot():
            epoch, gen = self.db.state()
            paths = [c.load(epoch=epoch, generation=gen) for c in self._caches]
            self._places.load(self.db.window_rows())
            self._catch_up()  # clips may have been removed after a file was written
        if None in paths or self._changes:
            log.info("index files %s; rebuilt or caught up with %d changes", paths, self._changes)
            self._persist()

    def _catch_up(self) -> None:
        """Bring the in-memory indexes to SQLite's committed state (the ids added and removed since).
        Caller holds the memory lock and the write side of the readers-writer lock (or is still opening)."""
        with self.db.snapshot():
            epoch, gen = self.db.state()
            if any(c.stale(epoch) for c in self._caches):
                self._check_model_unchanged()
            for c in self._caches:
                self._changes += c.catch_up(epoch)
            self._places.catch_up(self.db.window_ids(), clips_of=self.db.clips_of_windows,
                                  rows_of=self.db.window_rows)
            self._epoch, self._gen = epoch, gen

    def _check_model_unchanged(self) -> None:
        if self._stored_spec() != self.spec:
            raise CheckpointMismatch(
                f"the index in {self.data_dir} was re-projected with another model by another process; "
                "restart with the configuration it now uses")

    def _persist(self) -> None:
        """Write the in-memory indexes to their files. Caller holds the memory lock (or is opening)."""
        for c in self._caches:
            c.persist(generation=self._gen, lock=self._lock)
        self._changes = 0

    def _sync(self) -> None:
        """Pick up writes another process committed since this one last looked (after this process's own
        re-projection commits, this waits for the indexes it swaps in)."""
        if self.db.state() != (self._epoch, self._gen):
            with self._memory, self._lock.write():  # looked at again: a search may have caught up meanwhile
                if self.db.state() != (self._epoch, self._gen):
                    self._catch_up()

    # -- writes -------------------------------------------------------------------------------------------
    def _refuse_if_reprojected(self, before: tuple[int, int]) -> None:
        """Inside a write's transaction: CheckpointMismatch, before anything is written, when another
        process re-projected the store since this one caught up (what it writes would be another model's,
        or its in-memory indexes could not follow)."""
        if before[0] != self._epoch:
            self._check_model_unchanged()

    def _committed(self, state_before: tuple[int, int], apply) -> None:
        """After a commit: apply the change in memory if nothing else committed in between, else catch up
        (a search may have caught up with this very commit already)."""
        with self._memory, self._lock.write():
            if state_before == (self._epoch, self._gen):
                apply()
                self._gen += 1
                self._changes += 1
            else:
                self._catch_up()

    def _maybe_persist(self) -> None:
        if self._changes >= self.persist_every:
            with self._memory:
                self._persist()

    def _insert(self, clips: list[NewClip], vectors: np.ndarray, logits: np.ndarray,
                timelines: list[Timeline | None]) -> list[Added]:
        if not clips:
            return []
        with self._writer:
            windows: list[tuple[int, np.ndarray, Windows]] = []  # (clip id, window ids, windows)
            with self.db.transaction() as con:
                before = self.db.state()
                self._refuse_if_reprojected(before)
                ids = [self.db.insert(con, c, vector=v, logits=lg)
                       for c, v, lg in zip(clips, vectors, logits, strict=True)]
                for id_, t in zip(ids, timelines, strict=True):
                    if id_ is not None and t is not None:
                        windows.append((id_, self.db.insert_timeline(con, id_, t)[1], t.windows))
                new = [i for i, id_ in enumerate(ids) if id_ is not None]
                new_ids = np.array([ids[i] for i in new], dtype=np.int64)
                records = self.db.records(new_ids.tolist())  # as stored, even if removed right after

            def apply():
                self._clips.index.add(new_ids, vectors[new])
                self._add_windows(windows)

            self._committed(before, apply)
            self._maybe_persist()
        return [Added(records[id_], True) if id_ is not None else Added(self._stored(c.sha256), False)
                for c, id_ in zip(clips, ids, strict=True)]

    def _add_windows(self, windows: list[tuple[int, np.ndarray, Windows]]) -> None:
        """Committed windows into the windows index and the map of their places: (clip id, window ids,
        windows) each."""
        for clip_id, window_ids, w in windows:
            self._windows.index.add(window_ids, w.vectors.astype(np.float32))
            self._places.put(clip_id, window_ids, w.starts, w.ends)

    def _set_timeline(self, id: int, timeline: Timeline) -> bool:
        with self._writer:
            if self.db.get(id) is None:
                return False
            with self.db.transaction() as con:
                before = self.db.state()
                self._refuse_if_reprojected(before)
                if not self.db.exists(con, id):
                    return False  # removed by another process a moment ago
                gone, new = self.db.insert_timeline(con, id, timeline)

            def apply():
                self._windows.index.remove(gone)
                self._windows.index.add(new, timeline.windows.vectors.astype(np.float32))
                self._windows.compact_if_needed()
                self._places.put(id, new, timeline.windows.starts, timeline.windows.ends)

            self._committed(before, apply)
            self._maybe_persist()
        return True

    def _stored(self, sha256: str) -> ClipRecord:
        record = self.db.get_by_sha256(sha256)
        if record is None:  # stored by another writer a moment ago, and already removed again
            raise RetrievalError(f"the clip with sha256 {sha256} was removed while it was being added")
        return record

    def _restore(self, records: list[ClipRecord], vectors: np.ndarray, logits: np.ndarray,
                 timelines: list[Timeline | None], *, next_id: int) -> None:
        with self._writer:
            windows: list[tuple[int, np.ndarray, Windows]] = []  # (clip id, window ids, windows)
            try:
                with self.db.transaction() as con:
                    before = self.db.state()
                    self._refuse_if_reprojected(before)
                    for r, v, lg, t in zip(records, vectors, logits, timelines, strict=True):
                        self.db.insert_record(con, r, vector=v, logits=lg)
                        if t is not None:
                            windows.append((r.id, self.db.insert_timeline(con, r.id, t)[1], t.windows))
                    self.db.reserve_ids(con, next_id)
            except sqlite3.IntegrityError as e:
                raise RetrievalError(f"cannot restore these clips: {e} (an id or content stored)") from e
            ids = np.array([r.id for r in records], dtype=np.int64)

            def apply():
                self._clips.index.add(ids, vectors)
                self._add_windows(windows)

            self._committed(before, apply)
            self._maybe_persist()

    def remove(self, ids: Sequence[int]) -> int:
        with self._writer:
            with self.db.transaction() as con:
                before = self.db.state()
                self._refuse_if_reprojected(before)
                found, windows = self.db.delete(con, ids)

            def apply():
                for cache, gone in ((self._clips, found), (self._windows, windows)):
                    cache.index.remove(gone)
                    cache.compact_if_needed()
                self._places.drop(found)

            self._committed(before, apply)
            self._maybe_persist()
        return len(found)

    def set_metadata(self, id: int, meta: Metadata, *, meta_layers: MetaLayers | None = None,
                     file: FileNow = FileNow(), read: ClipRecord | None = None) -> ClipRecord | None:
        with self._writer, self.db.transaction(bump=False) as con:  # no vector changes: FAISS is unaffected
            if read is not None and self.db.get(int(id)) not in (read, None):  # read in the write's lock
                raise ClipChanged(f"clip {id} was changed by another process")
            return self.db.set_metadata(con, int(id), meta, meta_layers=meta_layers, file=file)

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, spec: ModelSpec, *,
                        project: Project | None = None) -> None:
        """Swap in a new model's vectors for the whole collection and its windows. Searches go on over the old
        ones while it waits for SQLite's lock and writes; from its commit, when SQLite holds the new vectors
        (which some searches read), they wait for the new indexes, then switch at once."""
        xb_ids = np.asarray(ids, dtype=np.int64)
        dim = int(spec.dim or 0)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(xb_ids), dim) or not np.isfinite(vectors).all():
            raise ValueError(f"expected ({len(xb_ids)}, {dim}) finite vectors, got {vectors.shape}")
        with self._writer, contextlib.ExitStack() as swapping:
            with self.db.transaction() as con:
                # from here to the swap: a search that would catch up with the commit waits for the new
                # indexes (none ranks an old query against new vectors); taken once SQLite's lock is had
                swapping.enter_context(self._memory)
                if not np.array_equal(np.sort(xb_ids), self.db.ids()):
                    raise RetrievalError("the collection changed during re-projection; run it again")
                self.db.replace_vectors(con, xb_ids, vectors, project)
                self.db.set_meta(con, SPEC_KEY, json.dumps(spec.to_dict(), sort_keys=True))
            clips, windows = (c.fresh(dim) for c in self._caches)
            with self.db.snapshot():  # built from the new vectors, as one committed state holds them
                epoch, gen = self.db.state()
                for c in (clips, windows):
                    c.catch_up(epoch)
                with self._lock.write():
                    self._clips, self._windows, self.spec = clips, windows, spec
                    self._caches = (clips, windows)
                    self._places.catch_up(self.db.window_ids(), clips_of=self.db.clips_of_windows,
                                          rows_of=self.db.window_rows)  # others' windows meanwhile
                    self._epoch, self._gen = epoch, gen
            self._persist()

    # -- reads --------------------------------------------------------------------------------------------
    def get_by_sha256(self, sha256: str) -> ClipRecord | None:
        return self.db.get_by_sha256(sha256)

    def at_location(self, location: str) -> list[ClipRecord]:
        return self.db.at_location(location)

    def with_audio(self, audio_sha256: str) -> list[ClipRecord]:
        return self.db.with_audio(audio_sha256)

    def lasting(self, seconds: float) -> list[ClipRecord]:
        return self.db.lasting(seconds, DURATION_TOLERANCE_S)

    def list(self, *, offset: int = 0, limit: int = 50) -> list[ClipRecord]:
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        return self.db.page(offset=offset, limit=limit)

    def count(self) -> int:
        return self.db.count()

    def ids(self) -> np.ndarray:
        return self.db.ids()

    def rows(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.vectors(ids), self.db.logits(ids)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        self._sync()  # of this store's model: after a re-projection's commit, its new one once swapped in
        return self.db.blobs(ids, "vector", self.dim)

    def next_id(self) -> int:
        return self.db.next_id()

    def export(self, *, chunk: int = 1024) -> Iterator[Chunk]:
        return self.db.export(dim=self.dim, chunk=chunk)

    def total_duration(self) -> float:
        return self.db.total_duration()

    def records(self, ids: Sequence[int]) -> dict[int, ClipRecord]:
        return self.db.records(ids)

    def check_current(self) -> None:
        self._sync()

    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> Hits:
        xq = check_queries(xq, dim=self.dim)
        k = check_k(k)
        self._sync()
        with self._lock.read():
            allowed = None if flt is None or flt.empty else self.db.ids(flt)
            vi = self._clips.index
            # (Q, k'), (Q, k'): the k best by (-score, id); ivf8's candidates by their 8-bit scores, every one
            # tied with the last kept, then ranked by their stored vectors
            scores, found = self._scan(vi, xq, REFINE * k if vi.lossy else k, allowed, whole_ties=vi.lossy)
        if vi.lossy:
            scores, found = self._rescored(xq, found, k, self._vectors_or_nan)
        with self._lock.read():
            records = self.db.records(np.unique(found[found >= 0]).tolist())
        return [[Hit(records[i], float(d)) for d, i in zip(drow, irow, strict=True) if i in records]
                for drow, irow in zip(scores, found, strict=True)]

    def search_keywords(self, query: str, k: int, flt: SearchFilter | None = None) -> Ranking:
        k = check_k(k)
        return [Hit(record, score) for record, score in self.db.keyword_search(query, k, flt)]
    def search_windows(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> WindowHits:
        xq = check_queries(xq, dim=self.dim)
        k = check_k(k)
        self._sync()
        with self._lock.read():
            allowed = None if flt is None or flt.empty else self.db.window_ids(flt)
            vi = self._windows.index
            # every window tied with the last kept: ties are ranked by (clip id, n), not by window id
            scores, found = self._scan(vi, xq, REFINE * k if vi.lossy else k, allowed, whole_ties=True)
            places = self.db.window_places(np.unique(found[found >= 0]).tolist())
        if vi.lossy:
            scores, found = self._rescored(xq, found, found.shape[1], self._window_vectors_or_nan)
        return [sorted((WindowHit(*places[i], score=float(d)) for d, i in zip(drow, irow, strict=True)
                        if i in places), key=lambda h: (-h.score, h.clip_id, h.window))[:k]
                for drow, irow in zip(scores, found, strict=True)]

    @staticmethod
    def _rescored(xq: np.ndarray, found: np.ndarray, k: int,
                  stored: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The k best of each query's candidates (Q, n) by their stored vectors (`stored(ids)`, NaN rows for
        ids removed meanwhile, which are left out), ties by id."""
        out_scores, out_ids = [], []
        for q, ids in zip(xq, found, strict=True):
            ids = ids[ids >= 0]
            exact = stored(ids) @ q if len(ids) else np.empty(0, np.float32)
            keep = np.isfinite(exact)
            ids, exact = ids[keep], exact[keep]
            best = np.lexsort((ids, -exact))[:k]
            out_scores.append(exact[best])
            out_ids.append(ids[best])
        width = max((len(i) for i in out_ids), default=0)
        return (np.array([np.pad(s_, (0, width - len(s_)), constant_values=-np.inf) for s_ in out_scores]),
                np.array([np.pad(i, (0, width - len(i)), constant_values=-1) for i in out_ids]))

    @staticmethod
    def _scan(vi: VectorIndex, xq: np.ndarray, k: int, allowed: np.ndarray | None, *,
              whole_ties: bool = False) -> tuple[np.ndarray, ...]:
        """(Q, k') scores and ids of the best of the `allowed` ids (None: all), best first and ties by id:
        the min(k, n) best by (-score, id), a tie at the cut won by the lower ids; with `whole_ties`, every
        hit tied with the last of them too (for a caller that ranks them further); id -1 pads. Scores are
        the index's: the rule holds for what an approximate index (hnsw, ivf) finds.

        The index ranks ties in no given order, so it is asked for one hit more than k: where that one scores
        below the k-th, no hit it left out ties at the cut (the common case, at the cost of one hit more);
        where it ties, the queries so tied are asked again, four times deeper, until the last hit scores
        below the k-th or none is left out, or MAX_TIE_DEPTH hits (k + 1 where that is more) were asked: a
        tie group reaching past that is ranked by id among the hits the index returned, not among all (the
        index picks which of a tie it returns)."""
        n = vi.ntotal if allowed is None else len(allowed)
        if k == 0 or n == 0:
            return np.zeros((len(xq), 0), np.float32), np.zeros((len(xq), 0), np.int64)
        want = min(k, n)
        ask = min(want + 1, n)
        scores, found = vi.search(xq, ask, allowed)  # (Q, ask) each, best first
        if ask == want or not _tied_at(scores, found, want).any():  # the common case: no tie at the cut
            scores, found = scores[:, :want], found[:, :want]
            if (scores[:, 1:] == scores[:, :-1]).any():  # ties within the k: by id (padding, -1, last)
                order = np.lexsort((found, -scores))
                scores, found = np.take_along_axis(scores, order, 1), np.take_along_axis(found, order, 1)
            return scores, found
        rows = list(zip(scores, found, strict=True))  # each query's (scores, ids)
        tied, deepest = np.arange(len(xq)), min(n, max(ask, MAX_TIE_DEPTH))
        while ask < deepest:
            tied = tied[_tied_at(np.stack([rows[q][0] for q in tied]), np.stack([rows[q][1] for q in tied]),
                                 want, last=True)]
            if not len(tied):
                break
            ask = min(4 * ask, deepest)
            for q, row in zip(tied, zip(*vi.search(xq[tied], ask, allowed), strict=True), strict=True):
                rows[q] = row
        return _ranked(rows, want, whole_ties=whole_ties)

    def scored_windows(self, q: np.ndarray, ids: Sequence[int], *, margin: float | None = 0.0,
                       floor: float | None = None) -> dict[int, ScoredWindows]:
        """Scored in the windows index: a search for these clips' windows only (an ID selector), so it costs
        what those windows cost to score (flat16: all of them; ivf16: those in the CLIP_LISTS of each clip's
        own lists nearest the query, a range search that keeps every score, so a window far from the query may
        go unscored; ivf8: the same, those near the cut rescored by their stored vectors). What the index
        answers is put back in place by the window places (WindowPlaces.locate)."""
        xq = check_queries(np.asarray(q).reshape(1, -1), dim=self.dim)
        cut = Floor(margin, floor)
        self._sync()
        with self._lock.read():
            held = self._places.of(ids)
            if not held:
                return {}
            vi = self._windows.index
            if vi.kind == "hnsw":  # a selector search of HNSW walks far through the graph: as the base does
                return super().scored_windows(xq[0], ids, margin=margin, floor=floor)
            groups = [p.ids for p in held.values()]
            window_ids = np.concatenate(groups)  # clip by clip, in window order
            if vi.ivf:
                scores, found = vi.scan_groups(xq[0], groups, lists=CLIP_LISTS)
            else:
                scores, found = (a[0] for a in vi.search(xq, len(window_ids), window_ids))
            clips, n = self._places.locate(found)
        hit = clips >= 0  # (-1: padding, or a window dropped since)
        held_ids = np.fromiter(held, np.int64, len(held))
        offsets = np.cumsum([0] + [len(g) for g in groups[:-1]])  # where each clip's windows start in `at`
        order = np.argsort(held_ids)
        at = np.full(len(window_ids), -np.inf, dtype=np.float32)  # each window's score; -inf: not scored
        at[offsets[order[np.searchsorted(held_ids[order], clips[hit])]] + n[hit]] = scores[hit]
        seen = np.isfinite(at)
        if vi.lossy:
            at = self._refined(xq[0], held, window_ids, at, cut)
        out, offset, unseen = {}, 0, []
        for clip_id, p in held.items():
            clip_at, clip_seen = at[offset:offset + len(p.ids)], seen[offset:offset + len(p.ids)]
            offset += len(p.ids)
            if not clip_seen.any():  # none of its windows in the lists scanned: scored as the base does
                unseen.append(clip_id)
                continue
            keep = np.flatnonzero(clip_at >= cut.of(clip_at.max()))
            if len(keep):
                out[clip_id] = ScoredWindows(keep.astype(np.int64), p.starts[keep], p.ends[keep],
                                             clip_at[keep])
        if unseen:
            out.update(super().scored_windows(xq[0], unseen, margin=margin, floor=floor))
        return out

    def _vectors_or_nan(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), D) stored clip vectors, NaN for an id not stored."""
        return self.db.blobs(ids, "vector", self.dim, missing_ok=True)

    def _window_vectors_or_nan(self, ids: np.ndarray) -> np.ndarray:
        return self.db.window_vectors(ids, self.dim, missing_ok=True)

    def _refined(self, q: np.ndarray, held: dict, window_ids: np.ndarray, at: np.ndarray,
                 cut: Floor) -> np.ndarray:
        """Lossy scores `at` (clip by clip, -inf where unscored) with each clip's windows near its cut
        rescored by their stored float16 vectors, the rest left out (-inf): what clears the cut is then
        decided on exact scores."""
        out = np.full_like(at, -np.inf)
        near, offset = [], 0
        for p in held.values():
            clip_at, start, offset = at[offset:offset + len(p.ids)], offset, offset + len(p.ids)
            best = float(clip_at.max())
            if best > -np.inf:
                near.append(start + np.flatnonzero(clip_at >= cut.of(best) - REFINE_MARGIN))
        rows = np.concatenate(near) if near else np.empty(0, np.int64)
        if len(rows):
            exact = self._window_vectors_or_nan(window_ids[rows]) @ q
            out[rows] = np.where(np.isfinite(exact), exact, -np.inf)  # removed meanwhile: left out
        return out

    def windows(self, ids: Sequence[int]) -> dict[int, Windows]:
        self._sync()  # as vectors()
        return self.db.windows_of(ids, self.dim)

    def timelines(self, ids: Sequence[int], *, logits: bool = False) -> dict[int, Timeline]:
        self._sync()  # as vectors()
        windows = self.db.windows_of(ids, self.dim, logits=logits)
        peaks = self.db.peaks_of(list(windows))
        return {i: Timeline(w, peaks[i]) for i, w in windows.items()}

    def peaks(self, id: int) -> np.ndarray | None:
        return self.db.peaks_of([int(id)]).get(int(id))

    def without_windows(self) -> np.ndarray:
        return self.db.without_windows()

    def window_count(self) -> int:
        return self.db.window_count()

    def _backend_stats(self) -> dict:
        files = [*self.data_dir.glob(f"{CLIP_DB}*"), *self._faiss_dir.rglob("*.faiss")]
        return {"index_kind": self._clips.index.kind, "window_index_kind": self._windows.index.kind,
                "window_index_lists": self._windows.index.nlist, "dim": self.dim,
                "generation": self._gen, "epoch": self._epoch, "data_dir": str(self.data_dir),
                "window_bytes": self.db.window_bytes(),
                "bytes_on_disk": sum(p.stat().st_size for p in files if p.is_file())}

    def close(self) -> None:
        """Write what changed since the files were last written, unless another process re-projected the
        store meanwhile (its model's files are the ones to keep), then let go of the database."""
        with self._writer, self._memory:
            try:
                if self._changes and self.db.state()[0] == self._epoch:
                    self._persist()
            finally:
                self._changes = 0  # written, or not to be: closing again does nothing
                self.db.close()


def _tied_at(scores: np.ndarray, found: np.ndarray, k: int, *, last: bool = False) -> np.ndarray:
    """(Q,) whether each row of hits (Q, m) best first (m > k; id -1 pads) holds a hit after its k-th that
    ties with it: the one right after it, or with `last` its last one (ties may go on past it)."""
    after = -1 if last else k
    return (found[:, after] >= 0) & (scores[:, after] == scores[:, k - 1])


def _ranked(rows: list[tuple[np.ndarray, np.ndarray]], k: int, *,
            whole_ties: bool) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k') scores and ids of each query's hits (scores, ids; id -1: none) ranked by (-score, id): the k
    best, or with `whole_ties` those and every hit tied with the k-th; -inf and -1 pad."""
    out = []
    for scores, ids in rows:
        scores, ids = scores[ids >= 0], ids[ids >= 0]
        order = np.lexsort((ids, -scores))
        scores, ids = scores[order], ids[order]
        keep = min(k, len(ids))
        if whole_ties and keep:
            keep = int(np.count_nonzero(scores >= scores[keep - 1]))
        out.append((scores[:keep], ids[:keep]))
    width = max((len(i) for _, i in out), default=0)
    return (np.array([np.pad(s, (0, width - len(s)), constant_values=-np.inf) for s, _ in out],
                     dtype=np.float32).reshape(len(out), width),
            np.array([np.pad(i, (0, width - len(i)), constant_values=-1) for _, i in out],
                     dtype=np.int64).reshape(len(out), width))
