"""The contract every store backend and the service share. Backends: FAISS + SQLite (default), Qdrant.

Vectors are unit vectors of the model's shared space, scored by inner product (= cosine).
"""

from __future__ import annotations  # the `list` method would shadow the builtin in annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from index.metadata import Metadata, check_field_key, normalize_tags
from retrieval.config import N_TAGS
from retrieval.errors import RetrievalError
from retrieval.model_spec import PASST_FIELDS, ModelSpec


@dataclass(frozen=True)
class Tag:
    label: str
    probability: float


@dataclass(frozen=True)
class NewClip:
    """What the builder knows about a clip before it is stored."""

    name: str  # original file name, as the user knows it
    location: str  # the path it was indexed from, or the stored copy of an upload
    sha256: str  # of the file's bytes
    duration: float  # seconds
    sample_rate: int  # of the source file
    tags: tuple[Tag, ...]  # top tags, most probable first
    stored_copy: bool = False  # True when `location` is a copy the store owns (uploads)
    meta: Metadata = field(default_factory=Metadata)  # the user's description, tags and fields


@dataclass(frozen=True)
class ClipRecord(NewClip):
    id: int = 0
    added_at: float = 0.0  # unix time


@dataclass(frozen=True)
class Hit:
    record: ClipRecord
    score: float


@dataclass(frozen=True)
class SearchFilter:
    """What a clip must be to be searched at all; every condition given must hold."""

    min_duration: float | None = None
    max_duration: float | None = None
    tag: str | None = None  # must be among the clip's stored top (AudioSet) tags
    tags_any: tuple[str, ...] = ()  # user tags: at least one of these (normalised here)
    tags_all: tuple[str, ...] = ()  # user tags: every one of these
    fields: tuple[tuple[str, str], ...] = ()  # user fields: (key, value) each equal

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags_any", normalize_tags(self.tags_any))
        object.__setattr__(self, "tags_all", normalize_tags(self.tags_all))
        for key, _ in self.fields:
            check_field_key(key)

    @property
    def empty(self) -> bool:
        return (self.min_duration is None and self.max_duration is None and self.tag is None
                and not self.tags_any and not self.tags_all and not self.fields)


def check_queries(xq: np.ndarray, *, dim: int, k: int) -> np.ndarray:
    """(Q, dim) finite float32 query vectors and k >= 0, or ValueError (shared by every backend)."""
    xq = np.asarray(xq, dtype=np.float32)
    if xq.ndim != 2 or xq.shape[1] != dim or not np.isfinite(xq).all():
        raise ValueError(f"expected (Q, {dim}) finite query vectors, got {xq.shape}")
    if k < 0:
        raise ValueError("k must be >= 0")
    return xq


def check_rows(n: int, vectors: np.ndarray, logits: np.ndarray, *, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) vectors and (n, 527) logits, finite float32, or ValueError."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(n, -1)  # (N, D)
    logits = np.asarray(logits, dtype=np.float32).reshape(n, -1)  # (N, 527)
    if vectors.shape[1] != dim or logits.shape[1] != N_TAGS:
        raise ValueError(f"expected vectors (N, {dim}) and logits (N, {N_TAGS}), "
                         f"got {vectors.shape} and {logits.shape}")
    if not (np.isfinite(vectors).all() and np.isfinite(logits).all()):
        raise ValueError("vectors and logits must be finite")
    return vectors, logits


def check_store_spec(stored: ModelSpec, wanted: ModelSpec, *, where: str) -> None:
    """Raise CheckpointMismatch, saying how to fix it, when a store's model is not the configured one."""
    if stored.diff(wanted, only=PASST_FIELDS):
        fix = ("the stored PaSST logits come from another tagger, so the collection must be indexed again: "
               "use another RETRIEVAL_DATA_DIR (or configure the tagger the index was built with)")
    else:
        fix = ("set RETRIEVAL_CHECKPOINT (and RETRIEVAL_TEXT_MODEL) to what the index was built with, "
               "or re-project the stored logits with the configured model: "
               "`retrieval index reproject --checkpoint CKPT` (no PaSST needed), "
               "or use another RETRIEVAL_DATA_DIR")
    stored.require_match(wanted, what=f"the index in {where}", fix=fix)


Ranking = list[Hit]  # one query's hits, best first (an alias: the stores' `list` method shadows the builtin)
Hits = list[Ranking]  # per query


Chunk = tuple[list[ClipRecord], np.ndarray, np.ndarray]  # records, their vectors (n, D) and logits (n, 527)


class Added(NamedTuple):
    record: ClipRecord
    created: bool  # False: the same content (sha256) was stored already; `record` is the stored one


class VectorStore(ABC):
    """A persistent collection of (clip record, vector, 527 logits). Every method is safe to call from
    several threads; every write is atomic and durable when it returns.

    The base class owns what every backend shares: input validation, the same-content (sha256) check,
    batch adds, stats. A backend implements the abstract methods over its own storage."""

    spec: ModelSpec  # the model the vectors were made with
    backend: str

    @property
    def dim(self) -> int:
        return int(self.spec.dim or 0)

    # -- writes -------------------------------------------------------------------------------------------
    def add(self, clip: NewClip, vector: np.ndarray, logits: np.ndarray) -> ClipRecord:
        """Store one clip; content already stored (same sha256) returns the stored record unchanged."""
        return self.add_many([clip], np.asarray(vector)[None], np.asarray(logits)[None])[0].record

    def add_many(self, clips: Sequence[NewClip], vectors: np.ndarray, logits: np.ndarray) -> list[Added]:
        """Several clips in one write, vectors (N, D) and logits (N, 527): one result per clip, in order;
        content already stored, or earlier in the batch, is not stored again."""
        if not clips:
            return []
        vectors, logits = check_rows(len(clips), vectors, logits, dim=self.dim)
        first: dict[str, int] = {}
        for i, c in enumerate(clips):
            first.setdefault(c.sha256, i)
        known = {sha: r for sha in first if (r := self.get_by_sha256(sha)) is not None}
        fresh = [i for sha, i in first.items() if sha not in known]
        inserted = self._insert([clips[i] for i in fresh], vectors[fresh], logits[fresh])
        results = dict(zip((clips[i].sha256 for i in fresh), inserted, strict=True))
        results.update((sha, Added(r, False)) for sha, r in known.items())
        return [results[c.sha256] if first[c.sha256] == i else Added(results[c.sha256].record, False)
                for i, c in enumerate(clips)]

    @abstractmethod
    def _insert(self, clips: list[NewClip], vectors: np.ndarray, logits: np.ndarray) -> list[Added]:
        """Store clips of distinct content in one write (another writer may have stored one meanwhile:
        its result is then the stored record, not created)."""

    def restore_many(self, records: Sequence[ClipRecord], vectors: np.ndarray, logits: np.ndarray, *,
                     next_id: int | None = None) -> None:
        """Store clips as a backup holds them, their ids and times added kept, in one write. Only for ids
        above every id this store has handed out (an empty store, or the previous chunk of the same restore),
        in ascending order, of content not stored. New clips then get ids from max(`next_id`, last id + 1)
        on, so a restored store never hands out an id again."""
        ids = [int(r.id) for r in records]
        if records:
            vectors, logits = check_rows(len(records), vectors, logits, dim=self.dim)
            if ids[0] < 1 or any(b <= a for a, b in zip(ids, ids[1:], strict=False)):
                raise ValueError("restored clips need ids >= 1 in ascending order, without repeats")
            if len({r.sha256 for r in records}) != len(records):
                raise ValueError("restored clips repeat a sha256")
            floor = self.next_id()
            if ids[0] < floor:
                raise RetrievalError(f"cannot restore clip {ids[0]}: this store has handed out ids up to "
                                     f"{floor - 1} already (restore into an empty store)")
        after = max(int(next_id or 1), ids[-1] + 1 if ids else 1)
        self._restore(list(records), vectors, logits, next_id=after)

    @abstractmethod
    def _restore(self, records: list[ClipRecord], vectors: np.ndarray, logits: np.ndarray, *,
                 next_id: int) -> None:
        """Store checked records with their ids in one write; new ids start at `next_id` or above."""

    @abstractmethod
    def remove(self, ids: Sequence[int]) -> int:
        """Remove these ids; return how many existed."""

    @abstractmethod
    def set_metadata(self, id: int, meta: Metadata) -> ClipRecord | None:
        """Replace a clip's user metadata (and its keyword document); the new record, None without the
        clip."""

    @abstractmethod
    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, spec: ModelSpec) -> None:
        """Swap in vectors of a new model (reproject) for every clip and record its spec, atomically."""

    # -- reads --------------------------------------------------------------------------------------------
    @abstractmethod
    def get(self, id: int) -> ClipRecord | None: ...

    @abstractmethod
    def get_by_sha256(self, sha256: str) -> ClipRecord | None: ...

    @abstractmethod
    def list(self, *, offset: int = 0, limit: int = 50) -> list[ClipRecord]:
        """Records ordered by id."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """(N,) int64 ids of every clip, in id order."""

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> Hits:
        """xq: (Q, D) unit vectors -> for each query the k best hits, best first."""

    @abstractmethod
    def search_keywords(self, query: str, k: int, flt: SearchFilter | None = None) -> Ranking:
        """The k clips whose keyword document (index/keyword.py) best matches any word of the query, by
        BM25 (k1 = 1.2, b = 0.75; higher is better), best first; ties by id."""

    @abstractmethod
    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), 527) stored PaSST logits."""

    @abstractmethod
    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), D) stored vectors; KeyError for an id not stored."""

    @abstractmethod
    def next_id(self) -> int:
        """The id the next new clip gets: above every id this store has handed out (ids are never reused)."""

    @abstractmethod
    def export(self, *, chunk: int = 1024) -> Iterator[Chunk]:
        """Every clip with its vector and logits, in id order, `chunk` clips at a time (what a backup
        reads). A clip added or removed meanwhile is either wholly in it or wholly absent."""

    @abstractmethod
    def total_duration(self) -> float:
        """Seconds of audio in the collection."""

    def stats(self) -> dict:
        """What `retrieval index stats` shows: the backend's own figures, the size and the model."""
        return {"backend": self.backend, "clips": self.count(),
                "audio_hours": round(self.total_duration() / 3600, 3), **self._backend_stats(),
                "model_id": self.spec.id, "model": self.spec.to_dict()}

    def _backend_stats(self) -> dict:
        return {}

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
