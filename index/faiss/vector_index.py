"""The FAISS half of the FAISS store: an in-memory inner-product index over (id, vector), and its file.

Flat (`IndexFlatIP`, exact), flat16 (`IndexScalarQuantizer` with float16 codes: exact up to float16
rounding of the stored vectors, half the memory and a faster scan) or HNSW (`IndexHNSWFlat`, approximate), all
inside `IndexIDMap2` so FAISS ids are the SQLite clip ids. Flat and flat16 remove for real; HNSW cannot, so
removed ids become tombstones that searches skip through an ID selector, and the index is rebuilt when they
pile up.

ivf16 (`IndexIVFScalarQuantizer`, float16 codes of the vectors themselves, not of residuals) is for large
collections of windows: the vectors are split into about sqrt(N) lists by k-means and a search scans the
`nprobe` lists nearest the query, so it is approximate in which vectors it visits, while the scores of those
it visits are flat16's exactly. It holds the ids itself, removes for real, and is trained when it is built
(`train`), on a sample of the vectors.

FAISS parallelises one search with OpenMP; for a single query that costs more than it saves (thread start-up
and synchronisation on each call), so each index searches with its own `search_threads` (the store's setting,
default 1). OpenMP's thread count belongs to the calling thread and is shared with torch, so each search sets
it for its own call and puts it back: adding vectors, and PaSST in the same thread, keep their own. The cores
are used by serving several requests at once, not by splitting one.
"""

import contextlib
import errno
import logging
import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval.durable import atomic_path

log = logging.getLogger(__name__)

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 256
COMPACT_FRACTION = 0.25  # rebuild an HNSW index when this share of it is tombstones
IVF_NPROBE = 48  # lists an IVF search scans by default (recall@10 0.95 at 32 of 1,200 lists, see RESULTS)
EVERY_SCORE = -float(np.finfo(np.float32).max)  # a range search's floor that lets every score through
BITMAP_IDS = 1 << 27  # ID selectors are bitmaps (up to 16 MiB) over ids below this
IVF_TRAIN_PER_LIST = 64  # training vectors per list (k-means), sampled
IVF_MIN_TRAIN = 1024  # fewer vectors than this are too few to train lists on: flat16 instead
IVF_CODES = {"ivf16": "SQfp16", "ivf8": "SQ8"}  # the IVF kinds and their codes
KINDS = ("flat", "flat16", "hnsw", *IVF_CODES)
REMOVABLE = ("flat", "flat16", *IVF_CODES)  # kinds whose FAISS index removes ids for real
FILE_RE = re.compile(r"^(flat|flat16|hnsw|ivf16|ivf8)-e(\d+)-g(\d+)\.faiss$")


def ivf_lists(n: int) -> int:
    """The lists an ivf16 index over n vectors is trained with: about sqrt(n)."""
    return max(1, int(round(np.sqrt(n))))


def _new_index(dim: int, kind: str, n: int = 0) -> Any:
    base: Any  # the index classes share no useful base in faiss's stubs
    if kind in IVF_CODES:
        ivf: Any = faiss.index_factory(dim, f"IVF{ivf_lists(n)},{IVF_CODES[kind]}",
                                       faiss.METRIC_INNER_PRODUCT)
        ivf.by_residual = False  # codes of the vectors themselves (ivf16: their scores are flat16's)
        return ivf
    if kind == "flat":
        base = faiss.IndexFlatIP(dim)
    elif kind == "flat16":
        base = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    elif kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        raise ValueError(f"unknown index kind {kind!r} (one of {', '.join(KINDS)})")
    return faiss.IndexIDMap2(base)


@contextlib.contextmanager
def _omp_threads(n: int):
    """OpenMP threads of the calling thread set to n for the block, then put back."""
    before = faiss.omp_get_max_threads()
    if before == n:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndex:
    """Not thread-safe by itself: the store serialises mutation against searches. An ivf16 index is made
    for about `n` vectors and must be trained (`train`) before anything is added."""

    def __init__(self, dim: int, kind: str, index: Any = None, *, search_threads: int = 1, n: int = 0,
                 nprobe: int = IVF_NPROBE):
        if search_threads < 1:
            raise ValueError(f"search threads must be at least 1, not {search_threads}")
        if nprobe < 1:
            raise ValueError(f"nprobe must be at least 1, not {nprobe}")
        self.dim, self.kind, self.search_threads, self.nprobe = dim, kind, search_threads, nprobe
        self.index = index if index is not None else _new_index(dim, kind, n)
        self.dead: set[int] = set()  # HNSW tombstones
        self._list_of: np.ndarray | None = None  # IVF: id -> its list (-1: none), made when first asked
        self._centroids: np.ndarray | None = None  # IVF: (nlist, D), read when first asked

    @property
    def ivf(self) -> bool:
        return self.kind in IVF_CODES

    @property
    def lossy(self) -> bool:
        """Whether its scores are approximate (ivf8's 8-bit codes), not those of the float16 vectors."""
        return self.kind == "ivf8"

    @property
    def nlist(self) -> int:
        return int(self.index.nlist) if self.ivf else 0

    def train(self, xb: np.ndarray) -> None:
        """Train an ivf16 index's lists (k-means) on a sample (n, D) of the vectors it will hold."""
        self.index.train(np.ascontiguousarray(xb, dtype=np.float32))

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) - len(self.dead)

    def ids(self) -> np.ndarray:
        """(N,) live ids."""
        if self.ivf:
            lists = self.index.invlists
            found = [faiss.rev_swig_ptr(lists.get_ids(i), size).copy()
                     for i in range(lists.nlist) if (size := lists.list_size(i))]
            return np.sort(np.concatenate(found)).astype(np.int64) if found else np.empty(0, np.int64)
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        return np.setdiff1d(ids, np.fromiter(self.dead, np.int64, len(self.dead))) if self.dead else ids

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), D) float32: the vectors it holds for these ids (each one held), as its codes give them
        back. An IVF index finds them through a map id -> place, made at its first call and kept from then on
        (an entry per vector held): for reading an index back chunk by chunk, not for one being served."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return np.empty((0, self.dim), np.float32)
        if self.ivf and self.index.direct_map.type == faiss.DirectMap.NoMap:  # type: ignore[attr-defined]
            self.index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        return np.asarray(self.index.reconstruct_batch(ids), np.float32)  # IndexIDMap2: by its reverse map

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """ids (N,) new ids, xb (N, D) unit vectors."""
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(xb, dtype=np.float32), np.asarray(ids, np.int64))
            self._list_of = None

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        if self.kind in REMOVABLE:
            self.index.remove_ids(faiss.IDSelectorBatch(ids))
        else:
            self.dead.update(int(i) for i in ids)

    @property
    def needs_compaction(self) -> bool:
        return len(self.dead) > COMPACT_FRACTION * max(1, int(self.index.ntotal))

    def search(self, xq: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """xq (Q, D), k, allowed: ids a filter lets through (None = all) -> D (Q, k) scores, I (Q, k) ids,
        with id -1 where fewer than k qualify; an IVF kind scans its `nprobe` lists nearest each query, or,
        for a filter narrow enough (`narrow`), every list, scoring the allowed ids alone: exact, and no more
        vectors scored than an unfiltered search scores."""
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        params: Any
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(HNSW_EF_SEARCH, 2 * k)
        elif self.ivf:
            params = faiss.SearchParametersIVF()
            params.nprobe = self.nlist if allowed is not None and self.narrow(len(allowed)) else \
                min(self.nlist, self.nprobe)
        else:
            params = faiss.SearchParameters()
        dead = np.fromiter(self.dead, np.int64, len(self.dead))
        selector: Any
        bitmap = None  # kept alive until the search returns: the selector points into it
        if allowed is not None:
            allowed = np.setdiff1d(allowed, dead) if len(dead) else np.asarray(allowed, np.int64)
            selector, bitmap = _selector(allowed)
        elif len(dead):
            inner = faiss.IDSelectorBatch(dead)
            selector = faiss.IDSelectorNot(inner)
        else:
            selector = None
        if selector is not None:
            params.sel = selector
        with _omp_threads(self.search_threads):
            found = self.index.search(xq, k, params=params)
        del bitmap
        return found

    def narrow(self, n_allowed: int) -> bool:
        """IVF kinds: whether a filter letting n ids through is narrow enough to be searched in every list
        (no more ids than an unfiltered search scores in its nprobe lists, about N * nprobe / nlist). A wider
        one leaves enough of its ids in the nprobe lists nearest the query."""
        return n_allowed * self.nlist <= self.ntotal * min(self.nlist, self.nprobe)

    # -- IVF kinds: given ids scored in the lists near the query that hold them -----------------------------
    def scan_groups(self, q: np.ndarray, groups: list[np.ndarray], *,
                    lists: int) -> tuple[np.ndarray, np.ndarray]:
        """IVF kinds. The members of these groups of held ids (a clip's windows each) that lie in the `lists`
        of each group's own lists nearest the (D,) query q, scored: (n,) scores and (n,) ids, in no order.
        Only those lists are scanned, and only the groups' ids in them scored (a range search over them, with
        no heap to keep): a group's best member is very likely among them; a member in a farther list is not
        scored."""
        probe, near = self._lists_near(q, groups, lists)
        if not len(probe):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        params: Any = faiss.SearchParametersIVF()
        params.nprobe = len(probe)
        params.sel, bitmap = _selector(np.concatenate(groups))
        xq = np.ascontiguousarray(np.asarray(q, np.float32)[None])
        keys = np.ascontiguousarray(probe[None])
        dq = np.ascontiguousarray(near[keys], dtype=np.float32)
        result = faiss.RangeSearchResult(1)
        with _omp_threads(self.search_threads):  # the numpy wrapper of the preassigned search takes no params
            self.index.range_search_preassigned_c(1, faiss.swig_ptr(xq), EVERY_SCORE, faiss.swig_ptr(keys),
                                                  faiss.swig_ptr(dq), result, False, params)
        del bitmap
        n = int(faiss.rev_swig_ptr(result.lims, 2)[1])
        return (faiss.rev_swig_ptr(result.distances, n).copy() if n else np.zeros(0, np.float32),
                faiss.rev_swig_ptr(result.labels, n).copy() if n else np.zeros(0, np.int64))

    def _lists_near(self, q: np.ndarray, groups: list[np.ndarray], lists: int) -> tuple[np.ndarray, ...]:
        """(L,) the lists to scan, sorted: each group's `lists` lists nearest q among those holding its
        members; and (nlist,) every list's centre's score for q."""
        list_of = self._lists_of_ids()
        if self._centroids is None:  # the lists' centres, fixed once trained
            self._centroids = self.index.quantizer.reconstruct_n(0, self.nlist)
        near = self._centroids @ np.asarray(q, np.float32)  # (nlist,)
        if not groups:
            return np.zeros(0, np.int64), near
        ids = np.concatenate(groups)
        in_list = np.where(ids < len(list_of), list_of[np.minimum(ids, len(list_of) - 1)], -1)
        group = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        held = np.unique(group[in_list >= 0] * self.nlist + in_list[in_list >= 0])  # (group, list) pairs
        group, held = held // self.nlist, held % self.nlist
        order = np.lexsort((-near[held], group))  # group by group, nearest list first
        group, held = group[order], held[order]
        first = np.searchsorted(group, group)  # where each pair's group starts
        return np.unique(held[np.arange(len(held)) - first < lists]), near

    def _lists_of_ids(self) -> np.ndarray:
        """(largest id + 1,) int32: the list each id is in, -1 for none (made from the lists when asked after
        an add; removed ids keep theirs, as ids are never reused)."""
        if self._list_of is None:
            lists = self.index.invlists
            held = [(i, faiss.rev_swig_ptr(lists.get_ids(i), size).copy())
                    for i in range(lists.nlist) if (size := lists.list_size(i))]
            top = max((int(ids.max()) for _, ids in held), default=-1) + 1
            list_of = np.full(top, -1, dtype=np.int32)
            for i, ids in held:
                list_of[ids] = i
            self._list_of = list_of
        return self._list_of


def _selector(ids: np.ndarray) -> tuple[Any, np.ndarray | None]:
    """An ID selector of these ids: a bitmap (one bit per id up to the largest; fast to build and to ask),
    or a hash set of them where ids run past BITMAP_IDS."""
    top = int(ids.max()) + 1 if len(ids) else 1
    if top > BITMAP_IDS or int(ids.min(initial=0)) < 0:
        return faiss.IDSelectorBatch(ids), None
    mask = np.zeros(top, dtype=bool)
    mask[ids] = True
    bitmap = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)), bitmap


def file_name(*, kind: str, epoch: int, generation: int) -> str:
    return f"{kind}-e{epoch}-g{generation}.faiss"


def file_generation(path: Path) -> int:
    m = FILE_RE.match(path.name)
    if m is None:
        raise ValueError(f"{path} is not an index cache file")
    return int(m[3])


def kind_of(path: Path) -> str:
    m = FILE_RE.match(path.name)
    if m is None:
        raise ValueError(f"{path} is not an index cache file")
    return m[1]


def newest_file(folder: Path, *, kind: str | tuple[str, ...], epoch: int, generation: int) -> Path | None:
    """The newest cache file of this kind (or one of these) and epoch written at or before `generation`."""
    kinds = (kind,) if isinstance(kind, str) else kind
    best, best_gen = None, -1
    for path in folder.glob("*.faiss"):
        m = FILE_RE.match(path.name)
        if m and m[1] in kinds and int(m[2]) == epoch and best_gen < int(m[3]) <= generation:
            best, best_gen = path, int(m[3])
    return best


def load(path: Path, *, dim: int, kind: str, search_threads: int = 1,
         nprobe: int = IVF_NPROBE) -> VectorIndex | None:
    """The index in `path`, or None when it is unreadable or not what is expected (it is then rebuilt)."""
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as e:
        log.warning("ignoring unreadable index file %s: %s", path, e)
        return None
    expected = faiss.IndexIVFScalarQuantizer if kind in IVF_CODES else faiss.IndexIDMap2
    if not isinstance(index, expected) or index.d != dim:
        log.warning("ignoring index file %s: not a %d-d %s index", path, dim, kind)
        return None
    return VectorIndex(dim, kind, index, search_threads=search_threads, nprobe=nprobe)


def write_atomically(vi: VectorIndex, path: Path) -> None:
    """The name holds the old file or the whole new one, never part of one. FAISS writes through a Python
    file, in its own chunks: its own file writer only prints an error on closing (a full disk) and leaves a
    file cut short, which would then take the name. A failed write (OSError) leaves the old file and no
    temporary one."""
    written = 0

    def out(chunk: bytes) -> None:
        nonlocal written
        written += f.write(chunk)

    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                faiss.write_index(vi.index, faiss.PyCallbackIOWriter(out))  # type: ignore[attr-defined]
        except OSError as e:  # a file's write says no file: named here (atomic_path names the target)
            raise e if e.filename else OSError(e.errno, e.strerror, str(tmp)) from e
        if (size := tmp.stat().st_size) != written:  # whole, before it takes the name
            raise OSError(errno.EIO, f"the index file was cut short ({size} of {written} bytes)", str(tmp))


def prune(folder: Path, *, keep: Path) -> None:
    """Remove the cache files of `keep`'s state or older but `keep` (of any kind: a folder caches one index,
    and a file of another kind at the same state was replaced by it)."""
    k = FILE_RE.match(keep.name)
    assert k is not None, keep
    for path in folder.glob("*.faiss"):
        m = FILE_RE.match(path.name)
        if m and path != keep and (int(m[2]), int(m[3])) <= (int(k[2]), int(k[3])):
            path.unlink(missing_ok=True)

