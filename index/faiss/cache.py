"""One FAISS index kept as a cache of vectors whose truth is in SQLite: in memory, and in a folder of files
``{kind}-e{epoch}-g{generation}.faiss``.

The FAISS store keeps two: the clips' vectors (``faiss/``) and the windows' (``faiss/windows/``). Both are
caught up with SQLite the same way: the newest file of the current epoch is loaded, then the ids added or
removed since it was written are applied; a missing, unreadable or older-epoch file is rebuilt from SQLite.
"""

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from index.faiss import vector_index
from index.faiss.rwlock import ReadWriteLock
from index.faiss.vector_index import VectorIndex
from retrieval.durable import remove_stale_tmp

log = logging.getLogger(__name__)

FILL_CHUNK = 20_000  # vectors read from SQLite at a time when (re)building
AUTO_IVF_AT = 250_000  # "auto" (windows): flat16 below this many vectors, ivf16 from here on
AUTO_CLIPS_IVF_AT = 1_000_000  # "auto" (clips): exact while a scan of them costs less than ~50 ms a search
REBUILD_GROWTH = 2  # an ivf16 index is retrained once sqrt(N) is this many times its lists


def built_kind(kind: str, n: int, auto_at: int | None = None) -> str:
    """The kind of index built for n vectors when `kind` is asked for: "auto" is flat16 below `auto_at`
    (None: AUTO_IVF_AT) and ivf16 from there; an IVF kind over too few vectors to train lists on is flat16."""
    if kind == "auto":
        kind = "ivf16" if n >= (AUTO_IVF_AT if auto_at is None else auto_at) else "flat16"
    if kind in vector_index.IVF_CODES and n < vector_index.IVF_MIN_TRAIN:
        return "flat16"
    return kind


def loadable_kinds(kind: str) -> tuple[str, ...]:
    """The kinds of file a cache asking for `kind` may load."""
    return ("flat16", "ivf16") if kind == "auto" else ("flat16", kind) if kind in vector_index.IVF_CODES \
        else (kind,)


class CachedIndex:
    """Not thread-safe by itself: the store holds its memory lock (and the readers-writer lock's write side
    around in-memory changes) while it calls anything but `index`."""

    def __init__(self, folder: Path, *, kind: str, dim: int, search_threads: int,
                 ids: Callable[[], np.ndarray], vectors: Callable[[np.ndarray, int], np.ndarray],
                 nprobe: int = vector_index.IVF_NPROBE, auto_at: int | None = None,
                 snapshot: Callable[[], AbstractContextManager] = contextlib.nullcontext):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(self.folder)
        self.kind, self.dim, self.search_threads, self.nprobe = kind, dim, search_threads, nprobe
        self.auto_at = auto_at  # "auto": the size from which it is ivf16 (None: AUTO_IVF_AT)
        self._ids = ids  # () -> (N,) ids in SQLite now
        self._vectors = vectors  # (ids, dim) -> (len(ids), dim) float32 from SQLite
        self._snapshot = snapshot  # reads inside it see one committed state of SQLite
        self.vi: VectorIndex | None = None
        self.epoch = -1  # of the vectors in memory

    @property
    def index(self) -> VectorIndex:
        if self.vi is None:
            raise RuntimeError(f"the FAISS index in {self.folder} is not loaded yet")
        return self.vi

    def load(self, *, epoch: int, generation: int) -> Path | None:
        """The newest file of `epoch` written at or before `generation`, loaded; None when there is none."""
        path = vector_index.newest_file(self.folder, kind=loadable_kinds(self.kind), epoch=epoch,
                                        generation=generation)
        vi = vector_index.load(path, dim=self.dim, kind=vector_index.kind_of(path),
                               search_threads=self.search_threads, nprobe=self.nprobe) if path else None
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
                           ids=self._ids, vectors=self._vectors, nprobe=self.nprobe, auto_at=self.auto_at,
                           snapshot=self._snapshot)

    def rebuilt(self) -> VectorIndex:
        """The index built anew (without its tombstones, or as the kind its size now calls for) from the ids
        it holds that SQLite still holds, read in one snapshot: another process may have removed some since
        this one last caught up (their vectors are gone; the next catch-up finds them gone either way)."""
        with self._snapshot():
            return self.filled(np.intersect1d(self.index.ids(), self._ids()))

    def filled(self, ids: np.ndarray) -> VectorIndex:
        """A new index of the kind built for this many vectors, trained where it needs it, holding `ids`."""
        vi = VectorIndex(self.dim, built_kind(self.kind, len(ids), self.auto_at),
                         search_threads=self.search_threads, n=len(ids), nprobe=self.nprobe)
        if vi.ivf:
            n_train = min(len(ids), vector_index.IVF_TRAIN_PER_LIST * vi.nlist)
            sample = np.sort(np.random.default_rng(0).choice(len(ids), n_train, replace=False))
            log.info("training %d lists of the index in %s on %d of its %d vectors", vi.nlist, self.folder,
                     n_train, len(ids))
            vi.train(self._vectors(ids[sample], self.dim))
        self.fill(vi, ids)
        return vi

    def outgrown(self) -> bool:
        """Whether the index is no longer the kind its size calls for (an "auto" collection grew past
        its `auto_at`, or an ivf16 one outgrew its lists): the next write of its file rebuilds it."""
        n, vi = self.index.ntotal, self.index
        if built_kind(self.kind, n, self.auto_at) != vi.kind:
            return True
        return vi.ivf and vector_index.ivf_lists(n) >= REBUILD_GROWTH * vi.nlist

    def fill(self, vi: VectorIndex, ids: np.ndarray) -> None:
        for start in range(0, len(ids), FILL_CHUNK):
            chunk = ids[start:start + FILL_CHUNK]
            vi.add(chunk, self._vectors(chunk, self.dim))  # (n, D)

    def compact_if_needed(self) -> None:
        if self.index.needs_compaction:
            log.info("rebuilding the HNSW index in %s without its %d removed entries", self.folder,
                     len(self.index.dead))
            self.vi = self.rebuilt()

    def persist(self, *, generation: int, lock: ReadWriteLock) -> None:
        """Write the in-memory index as the file of (its epoch, `generation`) and prune older ones."""
        if self.index.dead or self.outgrown():  # files hold no tombstones: a file of now is exact
            rebuilt = self.rebuilt()
            with lock.write():
                self.vi = rebuilt
        with lock.read():
            name = vector_index.file_name(kind=self.index.kind, epoch=self.epoch, generation=generation)
            path = self.folder / name
            vector_index.write_atomically(self.index, path)
        vector_index.prune(self.folder, keep=path)
