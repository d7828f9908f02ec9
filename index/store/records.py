"""What the stores keep and answer: a clip's record, its windows and peaks, hits, filters, moment queries.

Vectors are unit vectors of the model's shared space, scored by inner product (= cosine). Besides its clip
vector (the head's projection of the mean of its windows' logits), a clip may have its PaSST windows stored
(each one's span in the clip, its 527 logits and its projected vector in float16) and its waveform peaks:
they say *where* in a clip a query sounds. Clips stored before windows existed have none until they are
backfilled; their hits carry no segment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

import numpy as np

from index.store.metadata import Metadata, MetaLayers, check_field_key, normalize_tags
from index.store.names import clip_name, stored_text
from retrieval.moments import Moment, best_window, merge_windows
from retrieval.windows import WindowLogits

SearchMode = Literal["vector", "keyword", "hybrid"]  # by meaning, by words (BM25), both fused
SEARCH_MODES: tuple[SearchMode, ...] = ("vector", "keyword", "hybrid")

Project = Callable[[np.ndarray], np.ndarray]  # (n, 527) logits -> (n, D) vectors: the head


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
    audio_sha256: str | None = None  # of its samples as the model hears them (retrieval.audio.audio_sha256)
    # where `meta` comes from: what its file and file name said when last read (index/ingest/embedded.py)
    # and what the user set, kept apart so that a file read again gives the clip what it says now under
    # what the user set; None: not known (a clip stored before they were kept)
    meta_layers: MetaLayers | None = None


@dataclass(frozen=True)
class FileNow:
    """What is new of a clip's file, given with its metadata (VectorStore.set_metadata) and written with it:
    `sha256` for bytes that changed but not the audio (retagged where it lies, the same `audio_sha256`),
    `location` and `name` for a file moved (the name as :func:`index.store.names.clip_name` stores it; none
    left of it: the clip's name as it was), `audio_sha256` for a clip stored before fingerprints were kept.
    None: as it was."""

    sha256: str | None = None
    location: str | None = None
    name: str | None = None
    audio_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            object.__setattr__(self, "name", clip_name(self.name))

    def on(self, record: ClipRecord) -> ClipRecord:
        """`record` with what is given here."""
        return replace(record, sha256=self.sha256 or record.sha256, location=self.location or record.location,
                       name=self.name or record.name, audio_sha256=self.audio_sha256 or record.audio_sha256)


@dataclass(frozen=True)
class ClipRecord(NewClip):
    id: int = 0
    added_at: float = 0.0  # unix time


@dataclass(frozen=True)
class Hit:
    record: ClipRecord
    score: float
    segment: Moment | None = None  # where in the clip: its best window, or the moment this hit is


@dataclass(frozen=True)
class Windows:
    """A clip's PaSST windows as a store keeps them: each one's span in the clip's own time and the head's
    projection of its logits, stored as float16. `logits` (float32) are written, and read back only by a
    re-projection."""

    starts: np.ndarray  # (W,) seconds
    ends: np.ndarray  # (W,) seconds
    vectors: np.ndarray  # (W, D) float16
    logits: np.ndarray | None = None  # (W, 527) float32

    def scores(self, q: np.ndarray) -> np.ndarray:
        """(W,) inner products of each window's vector with the (D,) query vector."""
        return self.vectors.astype(np.float32) @ np.asarray(q, dtype=np.float32)


@dataclass(frozen=True)
class Floor:
    """What a clip's windows must score to be kept for a query (VectorStore.scored_windows): `at` when given,
    else the clip's best window's score less `margin`."""

    margin: float | None = 0.0
    at: float | None = None

    def __post_init__(self) -> None:
        if self.at is None and self.margin is None:
            raise ValueError("a floor or a margin below each clip's best window is needed")

    def of(self, best: float) -> float:
        """The floor of a clip whose best window scores `best`."""
        return float(self.at) if self.at is not None else float(best) - float(self.margin or 0.0)


@dataclass(frozen=True)
class ScoredWindows:
    """Some of one clip's windows with their scores for a query, in window order: those that reached the
    floor a search asked for (see VectorStore.scored_windows)."""

    n: np.ndarray  # (M,) int64: each window's place in the clip, 0 first
    starts: np.ndarray  # (M,) seconds
    ends: np.ndarray  # (M,) seconds
    scores: np.ndarray  # (M,) float32

    def best(self) -> Moment:
        """The best of these windows as a moment (ties: the earliest), `window` its place in the clip."""
        m = best_window(self.starts, self.ends, self.scores)
        return replace(m, window=int(self.n[m.window]))

    def merged(self, *, threshold: float, per_clip: int) -> list[Moment]:
        """These windows merged into moments (retrieval.moments.merge_windows), `window` their places."""
        return [replace(m, window=int(self.n[m.window]))
                for m in merge_windows(self.starts, self.ends, self.scores, threshold=threshold,
                                       per_clip=per_clip)]


@dataclass(frozen=True)
class Timeline:
    """What a store keeps of a clip's time axis besides its vector: its windows and its waveform peaks."""

    windows: Windows
    peaks: np.ndarray  # (P,) uint8, retrieval.waveform.peaks

    @classmethod
    def projected(cls, windows: WindowLogits, project: Project, peaks: np.ndarray) -> Timeline:
        """PaSST's windows with `project(logits)` (the head) as their vectors, kept as float16."""
        vectors = np.asarray(project(windows.logits)).astype(np.float16)  # (W, D)
        return cls(Windows(windows.starts, windows.ends, vectors, windows.logits), peaks)


@dataclass(frozen=True)
class WindowHit:
    clip_id: int
    window: int  # the window's place in its clip, 0 first
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class MomentQuery:
    """Moments instead of clips: windows of one clip that reach `threshold` (None: each clip's best window's
    score minus MOMENT_MARGIN) merged where they overlap or touch, at most `per_clip` per clip."""

    per_clip: int = 3
    threshold: float | None = None


@dataclass(frozen=True)
class SearchFilter:
    """What a clip must be to be searched at all; every condition given must hold."""

    min_duration: float | None = None
    max_duration: float | None = None
    tag: str | None = None  # must be among the clip's stored top (AudioSet) tags
    tags_any: tuple[str, ...] = ()  # user tags: at least one of these (normalised here)
    tags_all: tuple[str, ...] = ()  # user tags: every one of these
    tags_none: tuple[str, ...] = ()  # user tags: none of these (normalised here)
    fields: tuple[tuple[str, str], ...] = ()  # user fields: (key, value) each equal (a mapping is taken too)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags_any", normalize_tags(self.tags_any))
        object.__setattr__(self, "tags_all", normalize_tags(self.tags_all))
        object.__setattr__(self, "tags_none", normalize_tags(self.tags_none))
        pairs = sorted(self.fields.items()) if isinstance(self.fields, Mapping) else list(self.fields)
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise TypeError(f"fields are (key, value) pairs of strings, or a mapping, not {pair!r}")
            check_field_key(pair[0])
        # each value as values are stored (composed, trimmed): what a library caller types finds the clip
        object.__setattr__(self, "fields", tuple((k, stored_text(v, lines=True)) for k, v in pairs))

    @property
    def empty(self) -> bool:
        return (self.min_duration is None and self.max_duration is None and self.tag is None
                and not self.tags_any and not self.tags_all and not self.tags_none and not self.fields)


Ranking = list[Hit]  # one query's hits, best first (an alias: the stores' `list` method shadows the builtin)
Hits = list[Ranking]  # per query
WindowHits = list[list[WindowHit]]


Chunk = tuple[list[ClipRecord], np.ndarray, np.ndarray]  # records, their vectors (n, D) and logits (n, 527)


class Added(NamedTuple):
    record: ClipRecord
    created: bool  # False: the same content (sha256) was stored already; `record` is the stored one
