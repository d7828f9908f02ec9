"""One FAISS index kept as a cache of vectors whose truth is in SQLite: in memory, and in a folder of files
``{kind}-e{epoch}-g{generation}.faiss``.

The FAISS store keeps two: the clips' vectors (``faiss/``) and the windows' (``faiss/windows/``). Both are
caught up with SQLite the same way: the newest file of the current epoch is loaded, then the ids added or
removed since it was written are applied; a missing, unreadable or older-epoch file is rebuilt from SQLite.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from index.faiss import vector_index
from index.faiss.rwlock import ReadWriteLock
from index.faiss.vector_index import VectorIndex
from retrieval.durable import remove_stale_tmp

log = logging.getLogger(__name__)

FILL_CHUNK = 20_000  # vectors read from SQLite at a time when (re)building


class CachedIndex:
    """Not thread-safe by itself: the store holds its writer lock (and the readers-writer lock's write side
    around in-memory changes) while it calls anything but `index`."""

    def __init__(self, folder: Path, *, kind: str, dim: int, search_threads: int,
                 ids: Callable[[], np.ndarray], vectors: Callable[[np.ndarray, int], np.ndarray]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(self.folder)
        self.kind, self.dim, self.search_threads = kind, dim, search_threads
        self._ids = ids  # () -> (N,) ids in SQLite now
        self._vectors = vectors  # (ids, dim) -> (len(ids), dim) float32 from SQLite
        self.vi: VectorIndex | None = None
        self.epoch = -1  # of the vectors in memory

    @property
    def index(self) -> VectorIndex:
        if self.vi is None:
            raise RuntimeError(f"the FAISS index in {self.folder} is not loaded yet")
        return self.vi

    def load(self, *, epoch: int, generation: int) -> Path | None:
        """The newest file of `epoch` written at or before `generation`, loaded; None when there is none."""
        path = vector_index.newest_file(self.folder, kind=self.kind, epoch=epoch, generation=generation)
        vi = vector_index.load(path, dim=self.dim, kind=self.kind,
                               search_threads=self.search_threads) if path else None
        if vi is None:
            return None
        self.vi, self.epoch = vi, epoch
        return path

    def stale(self, epoch: int) -> bool:
        """Whether catching up with `epoch` means rebuilding (nothing loaded, or a re-projection since)."""
        return self.vi is None or self.epoch != epoch

    def catch_up(self, epoch: int) -> int:
        """Bring the index to SQLite's ids (rebuilt when stale); returns how many changes that made."""
        db_ids = self._ids()
        if self.stale(epoch):
            self.vi, self.epoch = self.filled(db_ids), epoch
            return len(db_ids) + 1
        have = self.index.ids()
        new, gone = np.setdiff1d(db_ids, have), np.setdiff1d(have, db_ids)
        self.index.remove(gone)
        self.fill(self.index, new)
        self.compact_if_needed()
        return len(new) + len(gone)

    def fresh(self, dim: int) -> "CachedIndex":
        """An empty cache of the same vectors and folder, for `dim`-d vectors (a re-projection)."""
        return CachedIndex(self.folder, kind=self.kind, dim=dim, search_threads=self.search_threads,
                           ids=self._ids, vectors=self._vectors)

    def new_index(self) -> VectorIndex:
        return VectorIndex(self.dim, self.kind, search_threads=self.search_threads)

    def filled(self, ids: np.ndarray) -> VectorIndex:
        vi = self.new_index()
        self.fill(vi, ids)
        return vi

    def fill(self, vi: VectorIndex, ids: np.ndarray) -> None:
        for start in range(0, len(ids), FILL_CHUNK):
            chunk = ids[start:start + FILL_CHUNK]
            vi.add(chunk, self._vectors(chunk, self.dim))  # (n, D)

    def compact_if_needed(self) -> None:
        if self.index.needs_compaction:
            log.info("rebuilding the HNSW index in %s without its %d removed entries", self.folder,
                     len(self.index.dead))
            self.vi = self.filled(self.index.ids())

    def persist(self, *, generation: int, lock: ReadWriteLock) -> None:
        """Write the in-memory index as the file of (its epoch, `generation`) and prune older ones."""
        if self.index.dead:  # files hold no tombstones, so a file of the current generation is exact
            rebuilt = self.filled(self.index.ids())
            with lock.write():
                self.vi = rebuilt
        with lock.read():
            name = vector_index.file_name(kind=self.kind, epoch=self.epoch, generation=generation)
            path = self.folder / name
            vector_index.write_atomically(self.index, path)
        vector_index.prune(self.folder, keep=path)
