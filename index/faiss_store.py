"""The default store: SQLite is the source of truth (records, logits, vectors); FAISS is a rebuildable cache.

Layout in the data directory: ``index.sqlite`` (+ WAL files) and
``faiss/{kind}-e{epoch}-g{generation}.faiss``.
A write commits to SQLite first, then mutates the in-memory FAISS index under a readers-writer lock, so a
search sees the collection before or after a write, never between. The FAISS file is written atomically on
close and every ``persist_every`` changes; on open, the newest file is loaded and caught up with SQLite
(ids added or removed since it was written), or rebuilt from the stored vectors when it is missing,
unreadable, of another kind, or from before a re-projection. Another process's writes are picked up the
same way at the next search.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from index import vector_index
from index.base import (
    Added,
    Chunk,
    ClipRecord,
    Hit,
    Hits,
    NewClip,
    Ranking,
    SearchFilter,
    VectorStore,
    check_queries,
    check_store_spec,
)
from index.clip_db import ClipDB
from index.metadata import Metadata
from index.rwlock import ReadWriteLock
from index.vector_index import VectorIndex
from retrieval.durable import remove_stale_tmp
from retrieval.errors import CheckpointMismatch, RetrievalError
from retrieval.model_spec import ModelSpec

log = logging.getLogger(__name__)

DB_NAME = "index.sqlite"
FAISS_DIR = "faiss"
FILL_CHUNK = 20_000  # vectors read from SQLite at a time when (re)building
SPEC_KEY = "model_spec"  # in SQLite's meta table
LEGACY_SPEC_KEY = "fingerprint"  # what stores made before ModelSpec hold instead


def stored_spec(db: ClipDB) -> ModelSpec | None:
    """The model a clip database's vectors were made with, None before any was recorded."""
    stored = db.meta(SPEC_KEY) or db.meta(LEGACY_SPEC_KEY)  # "fingerprint": earlier stores
    return None if stored is None else ModelSpec.from_dict(json.loads(stored))


class FaissStore(VectorStore):
    backend = "faiss"

    def __init__(self, data_dir: Path, spec: ModelSpec, *, kind: str = "flat", check: bool = True,
                 persist_every: int = 1000, search_threads: int = 1):
        """Open or create the store in `data_dir`. With check=False the stored model is accepted whatever it
        is (used to re-project a collection made with another head)."""
        self.data_dir = Path(data_dir)
        self.kind = kind
        self.persist_every = persist_every
        self.search_threads = search_threads
        self._faiss_dir = self.data_dir / FAISS_DIR
        self._faiss_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(self._faiss_dir)
        self.db = ClipDB(self.data_dir / DB_NAME)
        try:
            self.spec = self._adopt_spec(spec, check=check)
        except CheckpointMismatch:
            self.db.close()
            raise
        self._writer = threading.Lock()  # one write at a time
        self._lock = ReadWriteLock()  # searches against in-memory mutation
        self._vi: VectorIndex | None = None
        self._epoch = self._gen = -1
        self._changes = 0  # applied since the file was last written
        self._open_index()

    @property
    def _index(self) -> VectorIndex:
        """The in-memory index (set while opening, before any other method runs)."""
        if self._vi is None:
            raise RuntimeError("the FAISS index is not loaded yet")
        return self._vi

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

    def _new_index(self) -> VectorIndex:
        return VectorIndex(self.dim, self.kind, search_threads=self.search_threads)

    def _open_index(self) -> None:
        with self.db.snapshot():
            epoch, gen = self.db.state()
            path = vector_index.newest_file(self._faiss_dir, kind=self.kind, epoch=epoch, generation=gen)
            vi = (vector_index.load(path, dim=self.dim, kind=self.kind, search_threads=self.search_threads)
                  if path else None)
            if vi is not None and path is not None:
                self._vi, self._epoch = vi, epoch
                self._gen = vector_index.file_generation(path)
            self._catch_up(diff=True)  # clips may have been removed after the file was written
        if path is None or self._changes:
            log.info("index file %s; rebuilt or caught up with %d changes", path or "missing", self._changes)
            self._persist()

    def _catch_up(self, *, diff: bool = False) -> None:
        """Bring the in-memory index to SQLite's committed state (diff=True: compare ids even when the
        generation says it is current). Caller holds the writer lock and the write side of the
        readers-writer lock (or is still opening)."""
        with self.db.snapshot():
            epoch, gen = self.db.state()
            if (epoch, gen) == (self._epoch, self._gen) and not diff:
                return
            db_ids = self.db.ids()
            if epoch != self._epoch or self._vi is None:
                self._check_model_unchanged()
                self._vi = self._filled(db_ids)
                self._changes += len(db_ids) + 1
            else:
                have = self._index.ids()
                new, gone = np.setdiff1d(db_ids, have), np.setdiff1d(have, db_ids)
                self._index.remove(gone)
                self._fill(self._vi, new)
                self._changes += len(new) + len(gone)
                self._compact_if_needed()
            self._epoch, self._gen = epoch, gen

    def _check_model_unchanged(self) -> None:
        if self._stored_spec() != self.spec:
            raise CheckpointMismatch(
                f"the index in {self.data_dir} was re-projected with another model by another process; "
                "restart with the configuration it now uses")

    def _filled(self, ids: np.ndarray) -> VectorIndex:
        vi = self._new_index()
        self._fill(vi, ids)
        return vi

    def _fill(self, vi: VectorIndex, ids: np.ndarray) -> None:
        for start in range(0, len(ids), FILL_CHUNK):
            chunk = ids[start:start + FILL_CHUNK]
            vi.add(chunk, self.db.blobs(chunk, "vector", self.dim))  # (n, D)

    def _compact_if_needed(self) -> None:
        if self._index.needs_compaction:
            log.info("rebuilding the HNSW index without its %d removed entries", len(self._index.dead))
            self._vi = self._filled(self._index.ids())

    def _persist(self) -> None:
        """Write the in-memory index to its file. Caller holds the writer lock (or is opening)."""
        if self._index.dead:  # files hold no tombstones, so a file of the current generation is exact
            rebuilt = self._filled(self._index.ids())
            with self._lock.write():
                self._vi = rebuilt
        with self._lock.read():
            path = self._faiss_dir / vector_index.file_name(kind=self.kind, epoch=self._epoch,
                                                            generation=self._gen)
            vector_index.write_atomically(self._index, path)
        vector_index.prune(self._faiss_dir, keep=path)
        self._changes = 0

    def _sync(self) -> None:
        """Pick up writes another process committed since this one last looked."""
        if self.db.state() != (self._epoch, self._gen):
            with self._writer, self._lock.write():
                self._catch_up()

    # -- writes -------------------------------------------------------------------------------------------
    def _committed(self, state_before: tuple[int, int], apply) -> None:
        """After a commit: apply the change in memory if nothing else committed in between, else catch up."""
        if state_before == (self._epoch, self._gen):
            apply()
            self._gen += 1
            self._changes += 1
        else:
            self._catch_up()

    def _maybe_persist(self) -> None:
        if self._changes >= self.persist_every:
            self._persist()

    def _insert(self, clips: list[NewClip], vectors: np.ndarray, logits: np.ndarray) -> list[Added]:
        if not clips:
            return []
        with self._writer:
            with self._lock.write():
                with self.db.transaction() as con:
                    before = self.db.state()
                    ids = [self.db.insert(con, c, vector=v, logits=lg)
                           for c, v, lg in zip(clips, vectors, logits, strict=True)]
                new = [i for i, id_ in enumerate(ids) if id_ is not None]
                new_ids = np.array([ids[i] for i in new], dtype=np.int64)
                self._committed(before, lambda: self._index.add(new_ids, vectors[new]))
            self._maybe_persist()
        records = self.db.records(new_ids.tolist())
        return [Added(records[id_], True) if id_ is not None else Added(self._stored(c.sha256), False)
                for c, id_ in zip(clips, ids, strict=True)]

    def _stored(self, sha256: str) -> ClipRecord:
        record = self.db.get_by_sha256(sha256)
        if record is None:  # stored by another writer a moment ago, and already removed again
            raise RetrievalError(f"the clip with sha256 {sha256} was removed while it was being added")
        return record

    def _restore(self, records: list[ClipRecord], vectors: np.ndarray, logits: np.ndarray, *,
                 next_id: int) -> None:
        with self._writer:
            with self._lock.write():
                try:
                    with self.db.transaction() as con:
                        before = self.db.state()
                        for r, v, lg in zip(records, vectors, logits, strict=True):
                            self.db.insert_record(con, r, vector=v, logits=lg)
                        self.db.reserve_ids(con, next_id)
                except sqlite3.IntegrityError as e:
                    raise RetrievalError(f"cannot restore these clips: {e} (an id or content stored)") from e
                ids = np.array([r.id for r in records], dtype=np.int64)
                self._committed(before, lambda: self._index.add(ids, vectors))
            self._maybe_persist()

    def remove(self, ids: Sequence[int]) -> int:
        with self._writer:
            with self._lock.write():
                with self.db.transaction() as con:
                    before = self.db.state()
                    found = self.db.delete(con, ids)

                def apply():
                    self._index.remove(found)
                    self._compact_if_needed()

                self._committed(before, apply)
            self._maybe_persist()
        return len(found)

    def set_metadata(self, id: int, meta: Metadata) -> ClipRecord | None:
        with self._writer, self.db.transaction(bump=False) as con:  # no vector changes: FAISS is unaffected
            return self.db.set_metadata(con, int(id), meta)

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, spec: ModelSpec) -> None:
        """Swap in a new model's vectors for the whole collection; searches go on over the old ones until the
        new index is built, then switch at once."""
        xb_ids = np.asarray(ids, dtype=np.int64)
        dim = int(spec.dim or 0)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(xb_ids), dim) or not np.isfinite(vectors).all():
            raise ValueError(f"expected ({len(xb_ids)}, {dim}) finite vectors, got {vectors.shape}")
        with self._writer:
            with self.db.transaction() as con:
                if not np.array_equal(np.sort(xb_ids), self.db.ids()):
                    raise RetrievalError("the collection changed during re-projection; run it again")
                self.db.replace_vectors(con, xb_ids, vectors)
                self.db.set_meta(con, SPEC_KEY, json.dumps(spec.to_dict(), sort_keys=True))
                epoch, gen = self.db.state()
            vi = VectorIndex(dim, self.kind, search_threads=self.search_threads)
            vi.add(xb_ids, vectors)
            with self._lock.write():
                self._vi, self.spec = vi, spec
                self._epoch, self._gen = epoch, gen + 1
            self._persist()

    # -- reads --------------------------------------------------------------------------------------------
    def get(self, id: int) -> ClipRecord | None:
        return self.db.get(int(id))

    def get_by_sha256(self, sha256: str) -> ClipRecord | None:
        return self.db.get_by_sha256(sha256)

    def list(self, *, offset: int = 0, limit: int = 50) -> list[ClipRecord]:
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        return self.db.page(offset=offset, limit=limit)

    def count(self) -> int:
        return self.db.count()

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        return self.db.logits(ids)

    def ids(self) -> np.ndarray:
        return self.db.ids()

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        return self.db.blobs(ids, "vector", self.dim)

    def next_id(self) -> int:
        return self.db.next_id()

    def export(self, *, chunk: int = 1024) -> Iterator[Chunk]:
        return self.db.export(dim=self.dim, chunk=chunk)

    def total_duration(self) -> float:
        return self.db.total_duration()

    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> Hits:
        xq = check_queries(xq, dim=self.dim, k=k)
        self._sync()
        with self._lock.read():
            allowed = None if flt is None or flt.empty else self.db.ids(flt)
            n = self._index.ntotal if allowed is None else len(allowed)
            if k == 0 or n == 0:
                return [[] for _ in xq]
            scores, found = self._index.search(xq, min(k, n), allowed)  # (Q, k), (Q, k)
            records = self.db.records(np.unique(found[found >= 0]).tolist())
        return [[Hit(records[i], float(d)) for d, i in zip(drow, irow, strict=True) if i in records]
                for drow, irow in zip(scores, found, strict=True)]

    def search_keywords(self, query: str, k: int, flt: SearchFilter | None = None) -> Ranking:
        if k < 0:
            raise ValueError("k must be >= 0")
        return [Hit(record, score) for record, score in self.db.keyword_search(query, k, flt)]

    def _backend_stats(self) -> dict:
        return {"index_kind": self.kind, "dim": self.dim, "generation": self._gen, "epoch": self._epoch,
                "data_dir": str(self.data_dir)}

    def close(self) -> None:
        with self._writer:
            if self._vi is not None and self._changes:
                self._persist()
            self.db.close()

