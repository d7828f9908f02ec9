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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index import vector_index
from index.base import ClipRecord, Hit, NewClip, SearchFilter, VectorStore, check_queries
from index.clip_db import ClipDB
from index.files import remove_stale_tmp
from index.fingerprint import canonical, check_fingerprint
from index.rwlock import ReadWriteLock
from index.vector_index import VectorIndex
from retrieval.config import N_TAGS
from retrieval.errors import CheckpointMismatch, RetrievalError

log = logging.getLogger(__name__)

DB_NAME = "index.sqlite"
FAISS_DIR = "faiss"
FILL_CHUNK = 20_000  # vectors read from SQLite at a time when (re)building


class FaissStore(VectorStore):
    def __init__(self, data_dir: Path, fingerprint: dict, *, kind: str = "flat", check: bool = True,
                 persist_every: int = 1000):
        """Open or create the store in `data_dir`. With check=False the stored model is accepted whatever it
        is (used to re-project a collection made with another head)."""
        self.data_dir = Path(data_dir)
        self.kind = kind
        self.persist_every = persist_every
        self._faiss_dir = self.data_dir / FAISS_DIR
        self._faiss_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(self._faiss_dir)
        self.db = ClipDB(self.data_dir / DB_NAME)
        try:
            self.fingerprint = self._adopt_fingerprint(fingerprint, check=check)
        except CheckpointMismatch:
            self.db.close()
            raise
        self.dim = int(self.fingerprint["dim"])
        self._writer = threading.Lock()  # one write at a time
        self._lock = ReadWriteLock()  # searches against in-memory mutation
        self._vi: VectorIndex | None = None
        self._epoch = self._gen = -1
        self._changes = 0  # applied since the file was last written
        self._open_index()

    # -- opening ------------------------------------------------------------------------------------------
    def _adopt_fingerprint(self, fingerprint: dict, *, check: bool) -> dict:
        stored = self.db.meta("fingerprint")
        if stored is not None and (not check or self.db.count() > 0):
            if check:
                check_fingerprint(json.loads(stored), fingerprint, where=str(self.data_dir))
            return json.loads(stored)
        with self.db.transaction(bump=False) as con:  # a new or empty store takes the configured model
            self.db.set_meta(con, "fingerprint", json.dumps(canonical(fingerprint), sort_keys=True))
        return canonical(fingerprint)

    def _open_index(self) -> None:
        with self.db.snapshot():
            epoch, gen = self.db.state()
            path = vector_index.newest_file(self._faiss_dir, kind=self.kind, epoch=epoch, generation=gen)
            vi = vector_index.load(path, dim=self.dim, kind=self.kind) if path else None
            if vi is not None:
                self._vi, self._epoch = vi, epoch
                self._gen = int(vector_index.FILE_RE.match(path.name)[3])
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
                have = self._vi.ids()
                new, gone = np.setdiff1d(db_ids, have), np.setdiff1d(have, db_ids)
                self._vi.remove(gone)
                self._fill(self._vi, new)
                self._changes += len(new) + len(gone)
                self._compact_if_needed()
            self._epoch, self._gen = epoch, gen

    def _check_model_unchanged(self) -> None:
        stored = json.loads(self.db.meta("fingerprint"))
        if stored != self.fingerprint:
            raise CheckpointMismatch(
                f"the index in {self.data_dir} was re-projected with another model by another process; "
                "restart with the configuration it now uses")

    def _filled(self, ids: np.ndarray) -> VectorIndex:
        vi = VectorIndex(self.dim, self.kind)
        self._fill(vi, ids)
        return vi

    def _fill(self, vi: VectorIndex, ids: np.ndarray) -> None:
        for start in range(0, len(ids), FILL_CHUNK):
            chunk = ids[start:start + FILL_CHUNK]
            vi.add(chunk, self.db.blobs(chunk, "vector", self.dim))  # (n, D)

    def _compact_if_needed(self) -> None:
        if self._vi.needs_compaction:
            log.info("rebuilding the HNSW index without its %d removed entries", len(self._vi.dead))
            self._vi = self._filled(self._vi.ids())

    def _persist(self) -> None:
        """Write the in-memory index to its file. Caller holds the writer lock (or is opening)."""
        if self._vi.dead:  # files hold no tombstones, so a file of the current generation is exact
            rebuilt = self._filled(self._vi.ids())
            with self._lock.write():
                self._vi = rebuilt
        with self._lock.read():
            path = self._faiss_dir / vector_index.file_name(kind=self.kind, epoch=self._epoch,
                                                            generation=self._gen)
            vector_index.write_atomically(self._vi, path)
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

    def add(self, clip: NewClip, vector: np.ndarray, logits: np.ndarray) -> ClipRecord:
        """Store one clip; content already stored (same sha256) returns the stored record unchanged."""
        vector = _row(vector, self.dim, "vector")
        logits = _row(logits, N_TAGS, "logits")
        with self._writer:
            with self._lock.write():
                try:
                    with self.db.transaction() as con:
                        before = self.db.state()
                        id_ = self.db.insert(con, clip, vector=vector, logits=logits)
                except sqlite3.IntegrityError:
                    existing = self.db.get_by_sha256(clip.sha256)
                    if existing is None:
                        raise
                    return existing
                self._committed(before, lambda: self._vi.add(np.array([id_]), vector[None]))
            self._maybe_persist()
        return self.db.get(id_)

    def remove(self, ids: Sequence[int]) -> int:
        ids = sorted({int(i) for i in ids})
        with self._writer:
            with self._lock.write():
                with self.db.transaction() as con:
                    before = self.db.state()
                    found = np.intersect1d(self.db.ids(), np.array(ids, dtype=np.int64))
                    con.executemany("DELETE FROM clips WHERE id = ?", [(int(i),) for i in found])

                def apply():
                    self._vi.remove(found)
                    self._compact_if_needed()

                self._committed(before, apply)
            self._maybe_persist()
        return len(found)

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, fingerprint: dict) -> None:
        """Swap in a new model's vectors for the whole collection; searches go on over the old ones until the
        new index is built, then switch at once."""
        ids = np.asarray(ids, dtype=np.int64)
        dim = int(fingerprint["dim"])
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), dim) or not np.isfinite(vectors).all():
            raise ValueError(f"expected ({len(ids)}, {dim}) finite vectors, got {vectors.shape}")
        with self._writer:
            with self.db.transaction() as con:
                if not np.array_equal(np.sort(ids), self.db.ids()):
                    raise RetrievalError("the collection changed during re-projection; run it again")
                rows = [(v.astype("<f4").tobytes(), int(i)) for i, v in zip(ids, vectors, strict=True)]
                con.executemany("UPDATE clips SET vector = ? WHERE id = ?", rows)
                con.execute("UPDATE meta SET value = value + 1 WHERE key = 'epoch'")
                self.db.set_meta(con, "fingerprint", json.dumps(canonical(fingerprint), sort_keys=True))
                epoch, gen = self.db.state()
            vi = VectorIndex(dim, self.kind)
            vi.add(ids, vectors)
            with self._lock.write():
                self._vi, self.dim, self.fingerprint = vi, dim, canonical(fingerprint)
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

    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> list[list[Hit]]:
        xq = check_queries(xq, dim=self.dim, k=k)
        self._sync()
        with self._lock.read():
            allowed = None if flt is None or flt.empty else self.db.ids(flt)
            n = self._vi.ntotal if allowed is None else len(allowed)
            if k == 0 or n == 0:
                return [[] for _ in xq]
            scores, found = self._vi.search(xq, min(k, n), allowed)  # (Q, k), (Q, k)
            records = self.db.records(np.unique(found[found >= 0]).tolist())
        return [[Hit(records[i], float(d)) for d, i in zip(drow, irow, strict=True) if i in records]
                for drow, irow in zip(scores, found, strict=True)]

    def describe(self) -> dict:
        """What `retrieval index stats` shows."""
        con = self.db.connection()
        seconds = con.execute("SELECT coalesce(sum(duration), 0) FROM clips").fetchone()[0]
        return {"backend": "faiss", "index_kind": self.kind, "dim": self.dim, "clips": self.count(),
                "audio_hours": round(seconds / 3600, 3), "generation": self._gen, "epoch": self._epoch,
                "data_dir": str(self.data_dir)}

    def close(self) -> None:
        with self._writer:
            if self._vi is not None and self._changes:
                self._persist()
            self.db.close()

    def __enter__(self) -> FaissStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _row(x: np.ndarray, width: int, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if x.shape != (width,) or not np.isfinite(x).all():
        raise ValueError(f"{what}: expected {width} finite values, got shape {np.shape(x)}")
    return x
