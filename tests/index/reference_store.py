"""A third store backend, for the contract tests: the 15 abstract methods of VectorStore and nothing else,
over Python dicts and numpy brute force, kept in one pickle written atomically after every write.

It is what a new backend starts from, and the proof that the contract is enough: every read the base derives
(get, list, count, vectors, logits, export, windows, peaks, stats, best windows, moments) runs here on the
base's own code, held to the same tests as FAISS and Qdrant."""

from __future__ import annotations

import math
import pickle
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from index.store.checks import check_k, check_queries, check_store_spec
from index.store.contract import DURATION_TOLERANCE_S, ClipChanged, VectorStore
from index.store.metadata import Metadata, MetaLayers
from index.store.records import (
    Added,
    ClipRecord,
    FileNow,
    Hit,
    Hits,
    NewClip,
    Project,
    Ranking,
    SearchFilter,
    Timeline,
    WindowHit,
    WindowHits,
)
from index.store.words import BM25_B, BM25_K1, document, parse_query, query_terms
from index.stores import StoreConfig, open_store
from retrieval.config import N_TAGS
from retrieval.durable import write_bytes_atomically
from retrieval.errors import RetrievalError
from retrieval.model_spec import ModelSpec

FILE = "reference-store.pickle"


def passes(flt: SearchFilter | None, c: NewClip) -> bool:
    """Whether a clip is among those the filter lets through, condition by condition."""
    if flt is None:
        return True
    return ((flt.min_duration is None or c.duration >= flt.min_duration)
            and (flt.max_duration is None or c.duration <= flt.max_duration)
            and (flt.tag is None or flt.tag.lower() in {t.label.lower() for t in c.tags})
            and (not flt.tags_any or bool(set(flt.tags_any) & set(c.meta.tags)))
            and set(flt.tags_all) <= set(c.meta.tags)
            and not set(flt.tags_none) & set(c.meta.tags)
            and all(c.meta.field_dict.get(k) == v for k, v in flt.fields))


class ReferenceStore(VectorStore):
    backend = "reference"

    def __init__(self, data_dir: Path, spec: ModelSpec, *, check: bool = True):
        self.path = Path(data_dir) / FILE
        self._lock = threading.RLock()
        state = pickle.loads(self.path.read_bytes()) if self.path.is_file() else {}
        self.clips: dict[int, ClipRecord] = state.get("clips", {})
        self.arrays: dict[int, tuple[np.ndarray, np.ndarray]] = state.get("arrays", {})  # vector, logits
        self.times: dict[int, Timeline] = state.get("times", {})
        self.next = state.get("next", 1)
        stored = state.get("spec")
        if stored is not None and (not check or self.clips):
            if check:
                check_store_spec(stored, spec, where=str(data_dir))
            self.spec = stored
        else:
            self.spec = spec
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(self.path, pickle.dumps({"clips": self.clips, "arrays": self.arrays,
                                                        "times": self.times, "next": self.next,
                                                        "spec": self.spec}))

    # -- writes -------------------------------------------------------------------------------------------
    def _insert(self, clips: list[NewClip], vectors: np.ndarray, logits: np.ndarray,
                timelines: list[Timeline | None]) -> list[Added]:
        with self._lock:
            out = []
            for c, v, lg, t in zip(clips, vectors, logits, timelines, strict=True):
                if (stored := self.get_by_sha256(c.sha256)) is not None:
                    out.append(Added(stored, False))
                    continue
                record = ClipRecord(**{f.name: getattr(c, f.name) for f in fields(c)}, id=self.next,
                                    added_at=1.0 + self.next)
                self.clips[record.id], self.arrays[record.id] = record, (v.copy(), lg.copy())
                if t is not None:
                    self.times[record.id] = t
                self.next += 1
                out.append(Added(record, True))
            self._save()
            return out

    def _restore(self, records: list[ClipRecord], vectors: np.ndarray, logits: np.ndarray,
                 timelines: list[Timeline | None], *, next_id: int) -> None:
        with self._lock:
            for r, v, lg, t in zip(records, vectors, logits, timelines, strict=True):
                self.clips[r.id], self.arrays[r.id] = r, (v.copy(), lg.copy())
                if t is not None:
                    self.times[r.id] = t
            self.next = max(self.next, next_id)
            self._save()

    def _set_timeline(self, id: int, timeline: Timeline) -> bool:
        with self._lock:
            if id not in self.clips:
                return False
            self.times[id] = timeline
            self._save()
            return True

    def set_metadata(self, id: int, meta: Metadata, *, meta_layers: MetaLayers | None = None,
                     file: FileNow = FileNow(), read: ClipRecord | None = None) -> ClipRecord | None:
        with self._lock:
            if int(id) not in self.clips:
                return None
            old = self.clips[int(id)]
            if read is not None and old != read:
                raise ClipChanged(f"clip {id} was changed by another process")
            self.clips[int(id)] = replace(file.on(old), meta=meta, meta_layers=meta_layers or old.meta_layers)
            self._save()
            return self.clips[int(id)]

    def remove(self, ids: Sequence[int]) -> int:
        with self._lock:
            gone = [int(i) for i in set(ids) if int(i) in self.clips]
            for i in gone:
                del self.clips[i], self.arrays[i]
                self.times.pop(i, None)
            self._save()
            return len(gone)

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, spec: ModelSpec, *,
                        project: Project | None = None) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), int(spec.dim or 0)) or not np.isfinite(vectors).all():
            raise ValueError(f"expected ({len(ids)}, {spec.dim}) finite vectors, got {vectors.shape}")
        with self._lock:
            if sorted(int(i) for i in ids) != sorted(self.clips):
                raise RetrievalError("the collection changed during re-projection; run it again")
            if project is None and self.times:
                raise ValueError("the store holds windows: a re-projection must project them too")
            for i, v in zip(ids, vectors, strict=True):
                self.arrays[int(i)] = (v, self.arrays[int(i)][1])
            for i, t in self.times.items():
                w = t.windows
                assert project is not None and w.logits is not None
                self.times[i] = replace(t, windows=replace(w, vectors=project(w.logits).astype(np.float16)))
            self.spec = spec
            self._save()

    # -- reads --------------------------------------------------------------------------------------------
    def records(self, ids: Sequence[int]) -> dict[int, ClipRecord]:
        return {int(i): self.clips[int(i)] for i in ids if int(i) in self.clips}

    def get_by_sha256(self, sha256: str) -> ClipRecord | None:
        return next((r for r in self.clips.values() if r.sha256 == sha256), None)

    def at_location(self, location: str) -> list[ClipRecord]:
        return [self.clips[i] for i in sorted(self.clips) if self.clips[i].location == location]

    def with_audio(self, audio_sha256: str) -> list[ClipRecord]:
        return [self.clips[i] for i in sorted(self.clips) if self.clips[i].audio_sha256 == audio_sha256]

    def lasting(self, seconds: float) -> list[ClipRecord]:
        return [self.clips[i] for i in sorted(self.clips)
                if abs(self.clips[i].duration - seconds) <= DURATION_TOLERANCE_S]

    def ids(self) -> np.ndarray:
        return np.asarray(sorted(self.clips), dtype=np.int64)

    def next_id(self) -> int:
        return self.next

    def rows(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        missing = [int(i) for i in ids if int(i) not in self.arrays]
        if missing:
            raise KeyError(f"no clips with ids {missing}")
        found = [self.arrays[int(i)] for i in ids]
        return (np.array([v for v, _ in found], dtype=np.float32).reshape(len(ids), self.dim),
                np.array([lg for _, lg in found], dtype=np.float32).reshape(len(ids), N_TAGS))

    def timelines(self, ids: Sequence[int], *, logits: bool = False) -> dict[int, Timeline]:
        """As stored (logits float16 values, as the other backends keep them) or without logits."""
        return {int(i): replace(t, windows=replace(t.windows, logits=t.windows.logits.astype(np.float16)
                                                   .astype(np.float32)
                                                   if logits and t.windows.logits is not None else None))
                for i in ids if (t := self.times.get(int(i))) is not None}

    # -- searches -----------------------------------------------------------------------------------------
    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> Hits:
        xq, k = check_queries(xq, dim=self.dim), check_k(k)
        ids = [i for i in sorted(self.clips) if passes(flt, self.clips[i])]
        xb = self.rows(ids)[0]  # (N, D)
        out = []
        for q in xq:
            scores = xb @ q
            order = sorted(range(len(ids)), key=lambda n: (-scores[n], ids[n]))[:k]
            out.append([Hit(self.clips[ids[n]], float(scores[n])) for n in order])
        return out

    def search_windows(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> WindowHits:
        xq, k = check_queries(xq, dim=self.dim), check_k(k)
        rows = [(i, n, w) for i in sorted(self.times) if passes(flt, self.clips[i])
                for w in [self.times[i].windows] for n in range(len(w.starts))]
        out = []
        for q in xq:
            scored = sorted(((float(w.vectors[n].astype(np.float32) @ q), i, n, w) for i, n, w in rows),
                            key=lambda s: (-s[0], s[1], s[2]))[:k]
            out.append([WindowHit(i, n, float(w.starts[n]), float(w.ends[n]), s) for s, i, n, w in scored])
        return out

    def search_keywords(self, query: str, k: int, flt: SearchFilter | None = None) -> Ranking:
        """BM25 as FTS5 computes it (its IDF, floored at 1e-6), statistics over the whole collection; the
        query's prefixes expanded against the words of every document."""
        k = check_k(k)
        docs = {i: document(r).split() for i, r in self.clips.items()}
        docs = {i: d for i, d in docs.items() if d}
        if not docs:
            return []
        avg = sum(len(d) for d in docs.values()) / len(docs)
        held = Counter(w for d in docs.values() for w in set(d))  # word -> how many documents hold it
        terms = query_terms(parse_query(query), lambda prefix: held)
        df = {t: sum(t in d for d in docs.values()) for t in terms}
        idf = {t: max(math.log((len(docs) - n + 0.5) / (n + 0.5)), 1e-6) for t, n in df.items()}
        hits = []
        for i, d in docs.items():
            tf = Counter(d)
            if not passes(flt, self.clips[i]) or not any(tf[t] for t in terms):
                continue
            norm = BM25_K1 * (1 - BM25_B + BM25_B * len(d) / avg)
            score = sum(idf[t] * tf[t] * (BM25_K1 + 1) / (tf[t] + norm) for t in terms)
            hits.append(Hit(self.clips[i], score))
        return sorted(hits, key=lambda h: (-h.score, h.record.id))[:k]


BACKENDS = ("faiss", "qdrant", "reference")


def open_backend(config: StoreConfig, spec: ModelSpec, *, check: bool = True) -> VectorStore:
    """The store of `config`, or a ReferenceStore in its data directory when its backend is "reference"."""
    if config.backend == "reference":  # type: ignore[comparison-overlap]
        return ReferenceStore(config.data_dir, spec, check=check)
    return open_store(config, spec, check=check)
