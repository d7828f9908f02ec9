"""The contract every store backend and the service share. Backends: FAISS + SQLite (default), Qdrant.

Vectors are unit vectors of the model's shared space, scored by inner product (= cosine).
"""

from __future__ import annotations  # the `list` method would shadow the builtin in annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
    min_duration: float | None = None
    max_duration: float | None = None
    tag: str | None = None  # must be among the clip's stored top tags

    @property
    def empty(self) -> bool:
        return self.min_duration is None and self.max_duration is None and self.tag is None


def check_queries(xq: np.ndarray, *, dim: int, k: int) -> np.ndarray:
    """(Q, dim) finite float32 query vectors and k >= 0, or ValueError (shared by every backend)."""
    xq = np.asarray(xq, dtype=np.float32)
    if xq.ndim != 2 or xq.shape[1] != dim or not np.isfinite(xq).all():
        raise ValueError(f"expected (Q, {dim}) finite query vectors, got {xq.shape}")
    if k < 0:
        raise ValueError("k must be >= 0")
    return xq


class VectorStore(ABC):
    """A persistent collection of (clip record, vector, 527 logits). Every method is safe to call from
    several threads; every write is atomic and durable when it returns."""

    fingerprint: dict  # the model the vectors were made with (see retrieval.pipeline.Retriever.fingerprint)

    @abstractmethod
    def add(self, clip: NewClip, vector: np.ndarray, logits: np.ndarray) -> ClipRecord: ...

    @abstractmethod
    def remove(self, ids: Sequence[int]) -> int:
        """Remove these ids; return how many existed."""

    @abstractmethod
    def get(self, id: int) -> ClipRecord | None: ...

    @abstractmethod
    def get_by_sha256(self, sha256: str) -> ClipRecord | None: ...

    @abstractmethod
    def list(self, *, offset: int = 0, limit: int = 50) -> list[ClipRecord]:
        """Records ordered by id."""

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> list[list[Hit]]:
        """xq: (Q, D) unit vectors -> for each query the k best hits, best first."""

    @abstractmethod
    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), 527) stored PaSST logits."""

    @abstractmethod
    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, fingerprint: dict) -> None:
        """Swap in vectors of a new model (reproject) and record its fingerprint, atomically."""

    @abstractmethod
    def close(self) -> None: ...
