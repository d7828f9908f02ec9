"""The contract every store backend implements (VectorStore), and what the base does once on top of it.
Backends: FAISS + SQLite (index/faiss/, the default), Qdrant (index/qdrant/).
"""

from __future__ import annotations  # the `list` method would shadow the builtin in annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np

from index.store.checks import check_k, check_queries, check_rows, check_timeline
from index.store.metadata import Metadata, MetaLayers
from index.store.records import (
    Added,
    Chunk,
    ClipRecord,
    FileNow,
    Floor,
    Hit,
    Hits,
    MomentQuery,
    NewClip,
    Project,
    Ranking,
    ScoredWindows,
    SearchFilter,
    Timeline,
    WindowHits,
    Windows,
)
from retrieval.errors import RetrievalError
from retrieval.model_spec import ModelSpec
from retrieval.moments import Moment

PAGE = 1024  # clips read at a time by what the base derives from the backend's reads
MOMENT_MARGIN = 0.05  # without a threshold, a clip's moments are its windows within this of its best one
DURATION_TOLERANCE_S = 1e-6  # `lasting`: the same number of samples at the same rate gives the same duration


class ClipChanged(RetrievalError):
    """A clip was written by another process between the read a change was made from and its write."""


class VectorStore(ABC):
    """A persistent collection of (clip record, vector, 527 logits, and its windows and peaks where it has
    them). Every method is safe to call from several threads; every write is atomic and durable when it
    returns: a clip is stored with its windows or not at all.

    A backend implements the 16 abstract methods below over its own storage: six writes (`_insert`,
    `_restore`, `_set_timeline`, `set_metadata`, `remove`, `replace_vectors`), six reads (`records`,
    `get_by_sha256`, `at_location`, `ids`, `next_id`, `rows`), three searches (`search`, `search_windows`,
    `search_keywords`) and `timelines`. The base does the rest once on top of them: input validation, the
    same-content (sha256) check, batch adds, paging, export, best windows and moments, stats. Its reads
    are correct for any backend; a backend may override one with a faster way to the same answer (the
    contract tests, tests/index/test_store_contract*.py, hold every backend to the same answers)."""

    spec: ModelSpec  # the model the vectors were made with
    backend: str

    @property
    def dim(self) -> int:
        return int(self.spec.dim or 0)

    # -- writes -------------------------------------------------------------------------------------------
    def add(self, clip: NewClip, vector: np.ndarray, logits: np.ndarray,
            timeline: Timeline | None = None) -> ClipRecord:
        """Store one clip; content already stored (same sha256) returns the stored record unchanged."""
        return self.add_many([clip], np.asarray(vector)[None], np.asarray(logits)[None], [timeline])[0].record

    def add_many(self, clips: Sequence[NewClip], vectors: np.ndarray, logits: np.ndarray,
                 timelines: Sequence[Timeline | None] | None = None) -> list[Added]:
        """Several clips in one write, vectors (N, D) and logits (N, 527), each with its windows and peaks
        (or None): one result per clip, in order; content already stored, or earlier in the batch, is not
        stored again."""
        if not clips:
            return []
        vectors, logits = check_rows(len(clips), vectors, logits, dim=self.dim)
        checked = self._checked_timelines(timelines, len(clips))
        first: dict[str, int] = {}
        for i, c in enumerate(clips):
            first.setdefault(c.sha256, i)
        known = {sha: r for sha in first if (r := self.get_by_sha256(sha)) is not None}
        fresh = [i for sha, i in first.items() if sha not in known]
        inserted = self._insert([clips[i] for i in fresh], vectors[fresh], logits[fresh],
                                [checked[i] for i in fresh])
        results = dict(zip((clips[i].sha256 for i in fresh), inserted, strict=True))
        results.update((sha, Added(r, False)) for sha, r in known.items())
        return [results[c.sha256] if first[c.sha256] == i else Added(results[c.sha256].record, False)
                for i, c in enumerate(clips)]

    @abstractmethod
    def _insert(self, clips: list[NewClip], vectors: np.ndarray, logits: np.ndarray,
                timelines: list[Timeline | None]) -> list[Added]:
        """Store clips of distinct content, with their checked timelines, in one write (another writer may
        have stored one meanwhile: its result is then the stored record, not created)."""

    def set_timeline(self, id: int, timeline: Timeline) -> bool:
        """Store the windows and peaks of a clip stored without them (a backfill), replacing any it has;
        False when there is no such clip."""
        return self._set_timeline(int(id), check_timeline(timeline, dim=self.dim))

    @abstractmethod
    def _set_timeline(self, id: int, timeline: Timeline) -> bool:
        """Replace a clip's windows and peaks with a checked timeline in one write; False without the
        clip."""

    def restore_many(self, records: Sequence[ClipRecord], vectors: np.ndarray, logits: np.ndarray, *,
                     timelines: Sequence[Timeline | None] | None = None, next_id: int | None = None) -> None:
        """Store clips as a backup holds them, their ids and times added kept, each with its windows and
        peaks (`timelines`, None for a clip without), in one write. Only for ids above every id this store
        has handed out (an empty store, or the previous chunk of the same restore), in ascending order, of
        content not stored. New clips then get ids from max(`next_id`, last id + 1) on, so a restored store
        never hands out an id again."""
        checked = self._checked_timelines(timelines, len(records))
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
        self._restore(list(records), vectors, logits, checked, next_id=after)

    def _checked_timelines(self, timelines: Sequence[Timeline | None] | None,
                           n: int) -> list[Timeline | None]:
        """One checked timeline (or None) for each of `n` clips."""
        timelines = list(timelines) if timelines is not None else [None] * n
        if len(timelines) != n:
            raise ValueError(f"{len(timelines)} timelines for {n} clips")
        return [None if t is None else check_timeline(t, dim=self.dim) for t in timelines]

    @abstractmethod
    def _restore(self, records: list[ClipRecord], vectors: np.ndarray, logits: np.ndarray,
                 timelines: list[Timeline | None], *, next_id: int) -> None:
        """Store checked records with their ids and checked timelines in one write; new ids start at
        `next_id` or above."""

    @abstractmethod
    def set_metadata(self, id: int, meta: Metadata, *, meta_layers: MetaLayers | None = None,
                     file: FileNow = FileNow(), read: ClipRecord | None = None) -> ClipRecord | None:
        """Replace a clip's user metadata (and its keyword document) and, where given, where it comes from
        (`meta_layers`, NewClip.meta_layers) and what is new of its file (`file`), in one write; the new
        record, None without the clip. The clip keeps its id, vectors and windows. `read`: the record the
        change was made from; when the clip is no longer that record (another process wrote it since),
        nothing is written and ClipChanged is raised, so that the change is made again from the new one."""

    @abstractmethod
    def remove(self, ids: Sequence[int]) -> int:
        """Remove these ids, with their windows and peaks; return how many existed."""

    @abstractmethod
    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, spec: ModelSpec, *,
                        project: Project | None = None) -> None:
        """Swap in vectors of a new model (reproject) for every clip, and `project(logits)` for every stored
        window, and record its spec, atomically. A store holding windows refuses project=None."""

    # -- reads the backend provides -----------------------------------------------------------------------
    @abstractmethod
    def records(self, ids: Sequence[int]) -> dict[int, ClipRecord]:
        """The records of the ids that exist."""

    @abstractmethod
    def get_by_sha256(self, sha256: str) -> ClipRecord | None:
        """The clip holding this content, None when there is none."""

    @abstractmethod
    def at_location(self, location: str) -> list[ClipRecord]:
        """The clips stored with this location (a file indexed where it lies: its path), by id."""

    @abstractmethod
    def with_audio(self, audio_sha256: str) -> list[ClipRecord]:
        """The clips whose samples have this fingerprint (`NewClip.audio_sha256`), by id."""

    @abstractmethod
    def lasting(self, seconds: float) -> list[ClipRecord]:
        """The clips whose duration is `seconds`, to within DURATION_TOLERANCE_S, by id (a long file, whose
        fingerprint costs a pass of decoding, is fingerprinted only when one of them has a fingerprint)."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """(N,) int64 ids of every clip, in id order."""

    @abstractmethod
    def next_id(self) -> int:
        """The id the next new clip gets: above every id this store has handed out (ids are never reused)."""

    @abstractmethod
    def rows(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(len(ids), D) stored vectors and (len(ids), 527) stored PaSST logits; KeyError for an id not
        stored."""

    @abstractmethod
    def timelines(self, ids: Sequence[int], *, logits: bool = False) -> dict[int, Timeline]:
        """The stored windows (spans and vectors, in window order; their (W, 527) float32 logits only with
        `logits`, as stored: float16 values) and peaks of the ids that have windows."""

    # -- searches the backend provides --------------------------------------------------------------------
    @abstractmethod
    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> Hits:
        """xq: (Q, D) unit vectors -> for each query the k best hits, best first (no segments); ties by id, at
        the cut too: the first k of any deeper answer (an approximate index ranks what it finds so)."""

    @abstractmethod
    def search_windows(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> WindowHits:
        """xq: (Q, D) unit vectors -> for each query the k best windows of clips that pass `flt`, best
        first; ties by clip id, then window, at the cut too."""

    @abstractmethod
    def search_keywords(self, query: str, k: int, flt: SearchFilter | None = None) -> Ranking:
        """The k clips whose keyword document (index/store/words.py) best matches any word of the query, by
        BM25 (k1 = 1.2, b = 0.75; higher is better), best first; ties by id, at the cut too."""

    # -- what the base derives (a backend may answer faster) ----------------------------------------------
    def get(self, id: int) -> ClipRecord | None:
        return self.records([int(id)]).get(int(id))

    def list(self, *, offset: int = 0, limit: int = 50) -> list[ClipRecord]:
        """Records ordered by id."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        return self._present(self.ids()[offset:offset + limit].tolist())[0]

    def count(self) -> int:
        return len(self.ids())

    def check_current(self) -> None:
        """CheckpointMismatch when another process has given the store another model since this one opened
        it (`retrieval index reproject`): nothing this process makes can be stored or searched until it runs
        that model. A backend that cannot be re-projected under an open store has nothing to check."""
        return None

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), D) stored vectors; KeyError for an id not stored."""
        return self.rows(ids)[0]

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), 527) stored PaSST logits; KeyError for an id not stored."""
        return self.rows(ids)[1]

    def export(self, *, chunk: int = PAGE) -> Iterator[Chunk]:
        """Every clip with its vector and logits, in id order, `chunk` clips at a time (what a backup
        reads). A clip added or removed meanwhile is either wholly in it or wholly absent."""
        ids = self.ids().tolist()
        for start in range(0, len(ids), chunk):
            records, present = self._present(ids[start:start + chunk])
            while True:
                try:
                    vectors, logits = self.rows(present)
                    break
                except KeyError:  # removed since its record was read: left out
                    records, present = self._present(present)
            if records:
                yield records, vectors, logits

    def _present(self, ids: Sequence[int]) -> tuple[builtins.list[ClipRecord], builtins.list[int]]:
        """The records of the ids that exist, in the order given, and their ids."""
        found = self.records(ids)
        present = [int(i) for i in ids if int(i) in found]
        return [found[i] for i in present], present

    def total_duration(self) -> float:
        """Seconds of audio in the collection."""
        ids = self.ids().tolist()  # records only: the vectors and logits an export reads are not needed
        return float(sum(r.duration for start in range(0, len(ids), PAGE)
                         for r in self.records(ids[start:start + PAGE]).values()))

    def windows(self, ids: Sequence[int]) -> dict[int, Windows]:
        """The stored windows (spans and vectors, in window order) of the ids that have any."""
        return {i: t.windows for i, t in self.timelines(ids).items()}

    def peaks(self, id: int) -> np.ndarray | None:
        """The clip's (P,) uint8 waveform peaks, None when it has none (or does not exist)."""
        found = self.timelines([int(id)]).get(int(id))
        return None if found is None else found.peaks

    def without_windows(self) -> np.ndarray:
        """(N,) ids, in id order, of the clips that have no windows stored (stored before windows were)."""
        have = {i for i, _ in self._all_windows()}
        return np.asarray([i for i in self.ids().tolist() if i not in have], dtype=np.int64)

    def window_count(self) -> int:
        return sum(len(w.starts) for _, w in self._all_windows())

    def _all_windows(self) -> Iterator[tuple[int, Windows]]:
        ids = self.ids().tolist()
        for start in range(0, len(ids), PAGE):
            yield from self.windows(ids[start:start + PAGE]).items()

    def scored_windows(self, q: np.ndarray, ids: Sequence[int], *, margin: float | None = 0.0,
                       floor: float | None = None) -> dict[int, ScoredWindows]:
        """For each clip among `ids` with windows, its windows scoring at least its floor for the (D,) query
        vector `q` (inner product with the window's vector, as a clip is scored): `floor` when given, else
        the clip's best window's score less `margin`. Clips with no window at the floor are left out.

        The base reads every window of these clips (the reference answer); a backend scores them where its
        windows are indexed, so the cost is that of the windows that match, not of the clips' length."""
        q = check_queries(np.asarray(q).reshape(1, -1), dim=self.dim)[0]
        cut = Floor(margin, floor)
        found = {}
        for i, w in self.windows(ids).items():
            scores = w.scores(q)
            at = cut.of(scores.max())
            keep = np.flatnonzero(scores >= at)
            if len(keep):
                found[i] = ScoredWindows(keep.astype(np.int64), np.asarray(w.starts)[keep],
                                         np.asarray(w.ends)[keep], scores[keep])
        return found

    def best_windows(self, q: np.ndarray, ids: Sequence[int]) -> dict[int, Moment]:
        """For each clip among `ids` that has windows, its best window for the (D,) query vector `q`,
        scored like the clip (inner product with the window's vector)."""
        return {i: w.best() for i, w in self.scored_windows(q, ids, margin=0.0).items()}

    def search_moments(self, q: np.ndarray, k: int, flt: SearchFilter | None = None,
                       moments: MomentQuery = MomentQuery()) -> Ranking:
        """The k best moments of the collection for the (D,) query vector `q`, best first: hits whose
        segment is the moment and whose score is its best window's. A clip's moments are computed from its
        windows that reach the threshold (`scored_windows`): the windows are searched until every clip that
        could hold one of the k best has been seen."""
        if moments.per_clip < 1:
            raise ValueError(f"per_clip must be >= 1, got {moments.per_clip}")
        xq = check_queries(np.asarray(q).reshape(1, -1), dim=self.dim)
        k = check_k(k)
        found: list[tuple[Moment, int]] = []  # (moment, clip id)
        fetch = k * moments.per_clip
        margin = MOMENT_MARGIN if moments.threshold is None else None
        while k:
            top = self.search_windows(xq, fetch, flt)[0]  # every window scoring above top[-1] is in it
            clips = list(dict.fromkeys(h.clip_id for h in top))
            found = []
            scored = self.scored_windows(xq[0], clips, margin=margin, floor=moments.threshold)
            for clip_id, w in scored.items():
                threshold = (float(w.scores.max()) - MOMENT_MARGIN if moments.threshold is None
                             else moments.threshold)
                found += [(m, clip_id) for m in w.merged(threshold=threshold, per_clip=moments.per_clip)]
            found.sort(key=lambda mc: (-mc[0].score, mc[1], mc[0].start))
            if len(top) < fetch or (len(found) >= k and found[k - 1][0].score >= top[-1].score):
                break
            fetch *= 4
        records = self.records([c for _, c in found[:k]])
        return [Hit(records[c], m.score, m) for m, c in found[:k] if c in records]

    def stats(self) -> dict:
        """What `retrieval index stats` shows: the backend's own figures, the size and the model."""
        return {"backend": self.backend, "clips": self.count(), "windows": self.window_count(),
                "clips_without_windows": len(self.without_windows()),
                "audio_hours": round(self.total_duration() / 3600, 3), **self._backend_stats(),
                "model_id": self.spec.id, "model": self.spec.to_dict()}

    def _backend_stats(self) -> dict:
        return {}

    def close(self) -> None:
        """Release what the store holds open (files, connections); nothing, where there is none."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
