"""The Qdrant backend: vectors, logits and clip metadata in one Qdrant collection (server or embedded), and
the clips' windows in a second one (:mod:`index.qdrant.windows`).

Layout (:mod:`index.qdrant.layout`). Each clip is one point whose id is the clip id, with two named vectors,
``audio`` (D, dot product, searched) and ``logits`` (527, kept on disk and not graph-indexed, read back by
reproject), and the clip record in its payload (with its waveform ``peaks``, left out of every read but
:meth:`QdrantStore.peaks`), with the user's metadata (``description``, ``user_tags``, ``fields``) and the
clip's keyword document (``words``, index/store/words.py: its words and their stems, each one token of
Qdrant's word tokenizer: payload.indexed) under a full-text payload index with BM25 scoring, and its
distinct words (``vocab``, a keyword field with prefix matching), which a query's prefixes are expanded
against. The collection's metadata holds the model spec
(``model_spec``; ``fingerprint`` in collections made before it), the next free id and ``keywords``
(KEYWORDS_VERSION once the text index exists and every point has its words and vocabulary as they are made
now: a collection of an earlier version is brought up to date when it is opened). Callers name an alias (the
configured collection) that points at a physical collection ``<alias>-g<N>``, its windows at
``<alias>-windows-g<N>``; ``replace_vectors`` fills a new generation of both and moves both aliases in one
step, so a reproject is atomic for readers and may change the vector size. A clip's windows are written
before its point (the point is the acknowledgement) and removed after it; windows whose clip point is
absent are never answered.

One writer at a time: ids come from a counter in the collection metadata, reserved before each write.
"""

from __future__ import annotations  # the `list` method would shadow the builtin in annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from index.layout import qdrant_generation, split_generation
from index.qdrant import layout
from index.qdrant.layout import AUDIO, LOGITS, PAGE
from index.qdrant.payload import (
    KEYWORDS_VERSION,
    PAYLOAD_INDEXES,
    PEAKS,
    RECORD,
    TEXT_INDEX,
    VOCAB,
    VOCAB_INDEX,
    WORDS,
    filter_of,
    indexed,
    payload_of,
    peaks_payload,
    record_of,
)
from index.qdrant.windows import QdrantWindows, collection_for, same_clip_part
from index.qdrant.windows import points as window_points
from index.store import words as keyword
from index.store.checks import check_k, check_queries, check_store_spec
from index.store.contract import DURATION_TOLERANCE_S, ClipChanged, VectorStore
from index.store.metadata import Metadata, MetaLayers
from index.store.names import clip_name
from index.store.records import (
    Added,
    Chunk,
    ClipRecord,
    FileNow,
    Floor,
    Hit,
    Hits,
    NewClip,
    Project,
    Ranking,
    ScoredWindows,
    SearchFilter,
    Timeline,
    WindowHits,
    Windows,
)
from retrieval.config import N_TAGS
from retrieval.errors import CheckpointMismatch, RetrievalError, StoreClosed
from retrieval.model_spec import ModelSpec

log = logging.getLogger(__name__)


class QdrantStore(VectorStore):
    backend = "qdrant"

    def __init__(self, client: QdrantClient, *, collection: str, spec: ModelSpec, local: bool,
                 check: bool = True, folder: Path | None = None, window_quantization: str = "none"):
        """Open or create the alias `collection` (with its windows). check=False accepts whatever model it
        was made with (to re-project it); otherwise a non-empty collection of another model raises
        CheckpointMismatch. `folder`: the embedded engine's, for stats. `window_quantization` ("none" or
        "int8"): of the windows collections this store creates (an existing one keeps its own)."""
        self.client = client
        self.alias = collection
        self.local = local
        self.folder = folder
        self._windows = QdrantWindows(client, clips_alias=collection, local=local,
                                      clip_indexes=PAYLOAD_INDEXES, quantization=window_quantization)
        self._write = threading.RLock()
        # the embedded engine is not thread-safe; a server is, so reads then run concurrently
        self._read = self._write if local else nullcontext()
        # (position, point id) where the last list() page ended: paging in order costs O(N), not O(N^2)
        self._cursor: tuple[int, int] | None = None
        if not client.collection_exists(collection):
            first = qdrant_generation(self.alias, 0)
            self._create(first, spec=spec)
            self._windows.create(collection_for(first), dim=int(spec.dim or 0))
            layout.move_aliases(client, {self.alias: first, self._windows.alias: collection_for(first)})
        self.spec = self._stored_spec()
        self._add_keywords()
        if not local:  # a collection made by an earlier version gets the payload indexes added since
            layout.add_missing_indexes(client, self._target(), PAYLOAD_INDEXES)
            self._windows.add_missing_indexes()
        if self.spec == spec or not check:
            return
        if self.count():
            check_store_spec(self.spec, spec, where=f"Qdrant collection {collection!r}")
            return
        self._new_generation(spec, [])  # an empty collection takes the configured model

    # --- layout -------------------------------------------------------------------------------------

    def _stored_spec(self, meta: dict | None = None) -> ModelSpec:
        meta = self._meta() if meta is None else meta
        return ModelSpec.from_dict(meta.get("model_spec") or meta["fingerprint"])  # fingerprint: earlier

    def _current_on_server(self) -> None:
        """Before a search: on a server, whose collection another process may re-project (one process holds
        an embedded one), CheckpointMismatch when it was (the queries would be the old model's)."""
        if not self.local:
            self.check_current()

    def check_current(self, meta: dict | None = None) -> None:
        """CheckpointMismatch when the collection's aliases now name a generation of another model (another
        process re-projected it: on a server, several services and commands share it). `meta`: the
        collection's metadata when the caller has just read it."""
        if self._stored_spec(meta) != self.spec:
            raise CheckpointMismatch(f"the Qdrant collection {self.alias!r} was re-projected with another "
                                     "model by another process; restart with the configuration it now uses")

    def _add_keywords(self) -> None:
        """A collection made before keyword search, or before its documents' present shape (KEYWORDS_VERSION:
        the words' stems, the fields' values, the clip's name and user text as stored now), gets its text and
        vocabulary indexes, and every point its words (with their stems), vocabulary, name and user text
        written again from its record (its windows' copy of what changed too)."""
        if (self._meta().get("keywords") or 0) >= KEYWORDS_VERSION:
            return
        with self._write:
            target = self._target()
            self._keyword_indexes(target)
            ops = []
            for p in self._scroll():  # its name and text as stored now, its windows' copy too
                r = record_of(p.id, p.payload)
                r = replace(r, name=clip_name(r.name))
                payload = payload_of(r, id=r.id, added_at=r.added_at)
                if not same_clip_part(dict(p.payload or {}), payload):
                    self._windows.set_clip_payload(payload)
                ops.append(qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=payload, points=[r.id])))
            for start in range(0, len(ops), PAGE):
                self.client.batch_update_points(target, ops[start:start + PAGE], wait=True)
            self.client.update_collection(target, metadata={"keywords": KEYWORDS_VERSION})
        log.info("wrote the keyword index (version %d) of Qdrant collection %s (%d clips)", KEYWORDS_VERSION,
                 target, len(ops))

    def _keyword_indexes(self, name: str) -> None:
        self.client.create_payload_index(name, WORDS, TEXT_INDEX)  # the embedded engine too: it ranks
        if not self.local:  # the embedded engine scans payloads, and warns that other indexes do nothing
            self.client.create_payload_index(name, VOCAB, VOCAB_INDEX)

    def _target(self) -> str:
        return layout.target(self.client, self.alias)

    def _create(self, name: str, *, spec: ModelSpec, next_id: int = 1) -> None:
        layout.create(self.client, name, dim=int(spec.dim or 0), local=self.local, indexes=PAYLOAD_INDEXES,
                      metadata={"model_spec": spec.to_dict(), "next_id": next_id,
                                "keywords": KEYWORDS_VERSION})
        self._keyword_indexes(name)

    def _new_generation(self, spec: ModelSpec, points: Iterable[qm.PointStruct],
                        windows: Iterable[qm.PointStruct] = ()) -> None:
        """Fill a new physical collection with `points` and one beside it with `windows`, then move both
        aliases to them in one step."""
        old, old_windows = self._target(), self._windows.exists()
        target = qdrant_generation(self.alias, layout.generation(old)[1] + 1)
        if self.client.collection_exists(target):  # left over by an interrupted re-projection
            self.client.delete_collection(target)
        self._create(target, spec=spec, next_id=self._meta().get("next_id", 1))
        self._windows.create(collection_for(target), dim=int(spec.dim or 0))
        layout.upsert_all(self.client, target, points)
        layout.upsert_all(self.client, collection_for(target), windows)
        old_targets = layout.targets(self.client)
        layout.move_aliases(self.client, {self.alias: target, self._windows.alias: collection_for(target)})
        self.client.delete_collection(old)
        if old_windows:
            self.client.delete_collection(old_targets[self._windows.alias])
        self.spec = spec

    def _meta(self) -> dict:
        return self.client.get_collection(self.alias).config.metadata or {}

    def _scroll(self, *, with_vectors: bool | list[str] = False,
                with_payload: bool | list[str] | qm.PayloadSelector = RECORD) -> Iterator[qm.Record]:
        return layout.scroll(self.client, self.alias, with_vectors=with_vectors, with_payload=with_payload)

    # --- writes -------------------------------------------------------------------------------------

    def _insert(self, clips: list[NewClip], vectors: np.ndarray, logits: np.ndarray,
                timelines: list[Timeline | None]) -> list[Added]:
        if not clips:
            return []
        with self._write:
            meta = self._meta()
            self.check_current(meta)  # never a vector of the model it held before into the new generation
            first = int(meta.get("next_id", 1))
            # reserve the ids before writing, so a crash in between never hands one out twice
            target = self._target()
            self.client.update_collection(target, metadata={"next_id": first + len(clips)})
            now = time.time()
            payloads = [payload_of(c, id=first + n, added_at=now) for n, c in enumerate(clips)]
            windows = [pt for p, t in zip(payloads, timelines, strict=True) if t is not None
                       for pt in window_points(p, t.windows)]
            if windows:  # before the clips: a clip point is only ever seen with its windows
                self._windows.ensure(target, dim=self.dim)
                self._windows.write(windows)
            points = [qm.PointStruct(id=p["id"], payload={**p, **peaks_payload(t)},
                                     vector={AUDIO: v.tolist(), LOGITS: lg.tolist()})
                      for p, t, v, lg in zip(payloads, timelines, vectors, logits, strict=True)]
            self.client.upsert(self.alias, points, wait=True)
        return [Added(record_of(p["id"], p), True) for p in payloads]

    def _set_timeline(self, id: int, timeline: Timeline) -> bool:
        with self._write:
            self.check_current()  # a backfill's windows are this process's model's
            found = self.client.retrieve(self.alias, [id], with_payload=RECORD)
            if not found:
                return False
            self._windows.ensure(self._target(), dim=self.dim)
            self._windows.delete([id])  # windows of an earlier attempt, if any
            self._windows.write(window_points(dict(found[0].payload or {}), timeline.windows))
            self.client.set_payload(self.alias, peaks_payload(timeline), points=[id], wait=True)
        return True

    def _restore(self, records: list[ClipRecord], vectors: np.ndarray, logits: np.ndarray,
                 timelines: list[Timeline | None], *, next_id: int) -> None:
        with self._write:
            if next_id > int(self._meta().get("next_id", 1)):  # reserved first, as an add does
                self.client.update_collection(self._target(), metadata={"next_id": next_id})
            for start in range(0, len(records), PAGE):
                page = slice(start, start + PAGE)
                payloads = [payload_of(r, id=r.id, added_at=float(r.added_at)) for r in records[page]]
                windows = [pt for p, t in zip(payloads, timelines[page], strict=True) if t is not None
                           for pt in window_points(p, t.windows)]
                if windows:  # before the clips, as an add writes them
                    self._windows.ensure(self._target(), dim=self.dim)
                    self._windows.write(windows)
                points = [qm.PointStruct(id=p["id"], payload={**p, **peaks_payload(t)},
                                         vector={AUDIO: v.tolist(), LOGITS: lg.tolist()})
                          for p, t, v, lg in zip(payloads, timelines[page], vectors[page], logits[page],
                                                 strict=True)]
                self.client.upsert(self.alias, points, wait=True)

    def rename(self, alias: str) -> None:
        """Make `alias` name this store's collection (and its windows' alias name its windows), in one alias
        update (a restore moving its staged collection into place); the collections they named before are
        deleted."""
        with self._write:
            renamed = QdrantWindows(self.client, clips_alias=alias, local=self.local,
                                    clip_indexes=PAYLOAD_INDEXES, quantization=self._windows.quantization)
            before = layout.targets(self.client)
            moves = {alias: self._target()}
            if self._windows.exists():
                moves[renamed.alias] = before[self._windows.alias]
            ops: list = [qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=a))
                         for a in (self.alias, self._windows.alias) if a in before]
            ops += [qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=a)) for a in moves
                    if a in before]
            ops += [qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=c, alias_name=a))
                    for a, c in moves.items()]
            self.client.update_collection_aliases(ops)
            for a, c in moves.items():
                if a in before and before[a] != c:
                    self.client.delete_collection(before[a])
            self.alias, self._windows, self._cursor = alias, renamed, None

    def remove(self, ids: Sequence[int]) -> int:
        ids = sorted({int(i) for i in ids})
        with self._write:
            existing = self.client.retrieve(self.alias, ids, with_payload=False)
            if existing:
                gone = [int(p.id) for p in existing]
                self.client.delete(self.alias, qm.PointIdsList(points=gone), wait=True)
                self._windows.delete(gone)  # after the clips: windows without a clip are never answered
                self._cursor = None  # positions after a removed clip moved
        return len(existing)

    def set_metadata(self, id: int, meta: Metadata, *, meta_layers: MetaLayers | None = None,
                     file: FileNow = FileNow(), read: ClipRecord | None = None) -> ClipRecord | None:
        with self._write:
            points = self.client.retrieve(self.alias, [int(id)], with_payload=RECORD)
            if not points:
                return None
            old = record_of(points[0].id, points[0].payload)
            if read is not None and old != read:  # a server's other client wrote it since (best effort:
                raise ClipChanged(f"clip {id} was changed by another process")  # Qdrant has no transaction)
            now = replace(file.on(old), meta=meta, meta_layers=meta_layers or old.meta_layers)
            payload = payload_of(now, id=old.id, added_at=old.added_at)
            if not same_clip_part(dict(points[0].payload or {}), payload):  # each window rewritten: seconds
                self._windows.set_clip_payload(payload)  # for an hour; first: the clip's write is the edit's
            # set, not overwrite: the point's other payload (its waveform peaks) stays
            self.client.set_payload(self.alias, payload, points=[old.id], wait=True)
        return record_of(old.id, payload)

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, spec: ModelSpec, *,
                        project: Project | None = None) -> None:
        """Swap in a new model's vectors for the whole collection and its windows: searches go on over the
        old generation until the new one is filled, then both aliases move at once."""
        dim = int(spec.dim or 0)
        vectors = np.asarray(vectors, dtype=np.float32)  # (N, D')
        if vectors.shape != (len(ids), dim) or not np.isfinite(vectors).all():
            raise ValueError(f"expected ({len(ids)}, {dim}) finite vectors, got {vectors.shape}")
        new = {int(i): v for i, v in zip(ids, vectors, strict=True)}
        with self._write:
            if {p.id for p in self._scroll(with_payload=False)} != set(new):
                raise RetrievalError("the collection changed during re-projection; run it again")
            if project is None and self._windows.count():
                raise ValueError("the store holds windows: a re-projection must project them too")
            points = (qm.PointStruct(id=p.id, payload=p.payload,
                                     vector={AUDIO: new[int(p.id)].tolist(),
                                             LOGITS: p.vector[LOGITS]})
                      for p in self._scroll(with_vectors=[LOGITS], with_payload=True))
            windows = self._windows.reprojected(project) if project is not None else ()
            self._new_generation(spec, points, windows)
        log.info("re-projected %d clips into %s", len(new), self._target())

    # --- reads --------------------------------------------------------------------------------------

    def get_by_sha256(self, sha256: str) -> ClipRecord | None:
        flt = qm.Filter(must=[qm.FieldCondition(key="sha256", match=qm.MatchValue(value=sha256))])
        with self._read:
            points, _ = self.client.scroll(self.alias, scroll_filter=flt, limit=1, with_payload=RECORD)
        return record_of(points[0].id, points[0].payload) if points else None

    def at_location(self, location: str) -> list[ClipRecord]:
        return self._where(_equal("location", location))

    def with_audio(self, audio_sha256: str) -> list[ClipRecord]:
        return self._where(_equal("audio_sha256", audio_sha256))

    def lasting(self, seconds: float) -> list[ClipRecord]:
        return self._where(qm.FieldCondition(key="duration", range=qm.Range(
            gte=float(seconds) - DURATION_TOLERANCE_S, lte=float(seconds) + DURATION_TOLERANCE_S)))

    def _where(self, condition: qm.FieldCondition) -> list[ClipRecord]:
        """The clips meeting `condition` (on an indexed payload key), by id."""
        flt = qm.Filter(must=[condition])
        with self._read:
            points = list(layout.scroll(self.client, self.alias, with_payload=RECORD, scroll_filter=flt))
        return sorted((record_of(p.id, p.payload) for p in points), key=lambda r: r.id)

    def list(self, *, offset: int = 0, limit: int = 50) -> list[ClipRecord]:
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        if limit == 0:
            return []
        # Qdrant pages by point id: a position is reached by skipping points, or from the last page's end
        cursor = self._cursor
        start, skip = (cursor[1], 0) if cursor and cursor[0] == offset else (None, offset)
        with self._read:
            points, after = self.client.scroll(self.alias, limit=skip + limit, offset=start,
                                               with_payload=RECORD)
        self._cursor = (offset + len(points) - skip, after) if after is not None else None
        return [record_of(p.id, p.payload) for p in points[skip:]]

    def count(self) -> int:
        with self._read:
            return self.client.count(self.alias, exact=True).count

    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> Hits:
        xq = check_queries(xq, dim=self.dim)
        k = check_k(k)
        if k == 0 or len(xq) == 0:
            return [[] for _ in xq]
        queries, where = [q.tolist() for q in xq], filter_of(flt)

        def ask(qs: list[int], limit: int, floors: list[float] | None) -> list[list[qm.ScoredPoint]]:
            requests = [qm.QueryRequest(query=queries[q], using=AUDIO, filter=where, limit=limit,
                                        with_payload=RECORD if floors is None else False,
                                        score_threshold=None if floors is None else layout.below(floors[n]))
                        for n, q in enumerate(qs)]
            return [r.points for r in self.client.query_batch_points(self.alias, requests)]

        self._current_on_server()
        with self._read:  # the k best by (-score, id): ties at the cut asked deeper (layout.best_first)
            return self._hits(layout.best_first(ask, len(queries), k, key=lambda p: (int(p.id),)))

    def _hits(self, found: Sequence[Sequence[qm.ScoredPoint]]) -> Hits:
        """The hits of the points found, with their records: those a deeper search found without their
        payload read in one call (a clip removed meanwhile is left out)."""
        bare = [int(p.id) for points in found for p in points if not p.payload]
        records = self.records(bare) if bare else {}
        return [[Hit(record_of(p.id, p.payload) if p.payload else records[int(p.id)], float(p.score))
                 for p in points if p.payload or int(p.id) in records] for points in found]

    def search_keywords(self, query: str, k: int, flt: SearchFilter | None = None) -> Ranking:
        k = check_k(k)
        if k == 0:
            return []
        with self._read:  # the prefixes expanded against the collection as it is searched
            terms = keyword.query_terms(keyword.parse_query(query), self._vocabulary)
            if not terms:
                return []
            text = qm.TextQueryInput(query=" ".join(indexed(t) for t in terms), scoring=qm.Bm25Scoring(
                bm25=qm.Bm25Params(k=keyword.BM25_K1, b=keyword.BM25_B)))

            def ask(_: list[int], limit: int, floors: list[float] | None) -> list[list[qm.ScoredPoint]]:
                return [self.client.query_points(
                    self.alias, query=qm.TextQuery(text=text), using=WORDS, query_filter=filter_of(flt),
                    limit=limit, with_payload=RECORD if floors is None else False,
                    score_threshold=None if floors is None else layout.below(floors[0])).points]

            # best first, ties by id: the k best by (-score, id); tied at the cut, asked again for every clip
            # scoring at least the k-th at once (many may tie: a word of every name in documents of one
            # length; and each text query scores every clip holding a term, however few it answers), up to
            # layout.MAX_TIE_DEPTH clips: past that, ties by id among those Qdrant returned
            found = layout.best_first(ask, 1, k, key=lambda p: (int(p.id),),
                                      wider=lambda _: min(self.count() + 1, layout.MAX_TIE_DEPTH))
            return self._hits(found)[0]

    def _vocabulary(self, prefix: str) -> dict[str, int]:
        """The words of the collection's documents starting with `prefix` -> how many clips hold each: the
        vocabularies of the clips that have such a word (a prefix match on VOCAB), counted."""
        counts: dict[str, int] = {}
        flt = qm.Filter(must=[qm.FieldCondition(key=VOCAB, match=qm.MatchPrefix(prefix=prefix))])
        offset = None
        while True:
            points, offset = self.client.scroll(self.alias, scroll_filter=flt, limit=PAGE, offset=offset,
                                                with_payload=[VOCAB])
            for p in points:
                for w in (p.payload or {}).get(VOCAB, ()):
                    if w.startswith(prefix):
                        counts[w] = counts.get(w, 0) + 1
            if offset is None:
                return counts

    def records(self, ids: Sequence[int]) -> dict[int, ClipRecord]:
        with self._read:
            points = self.client.retrieve(self.alias, [int(i) for i in ids], with_payload=RECORD)
        return {int(p.id): record_of(int(p.id), p.payload or {}) for p in points}

    def search_windows(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> WindowHits:
        xq = check_queries(xq, dim=self.dim)
        k = check_k(k)
        self._current_on_server()
        with self._read:
            return self._windows.search(xq, k, filter_of(flt))

    def scored_windows(self, q: np.ndarray, ids: Sequence[int], *, margin: float | None = 0.0,
                       floor: float | None = None) -> dict[int, ScoredWindows]:
        """Scored by Qdrant (QdrantWindows.scored): only the windows at each clip's floor come back, not
        every window of the clips."""
        q = check_queries(np.asarray(q).reshape(1, -1), dim=self.dim)[0]
        cut = Floor(margin, floor)
        self._current_on_server()
        with self._read:
            return self._windows.scored(q, ids, cut)

    def windows(self, ids: Sequence[int]) -> dict[int, Windows]:
        with self._read:
            return self._windows.of(ids, dim=self.dim)

    def timelines(self, ids: Sequence[int], *, logits: bool = False) -> dict[int, Timeline]:
        with self._read:
            windows = self._windows.of(ids, dim=self.dim, logits=logits)
        peaks = self._peaks(list(windows))
        return {i: Timeline(w, peaks[i]) for i, w in windows.items() if i in peaks}

    def peaks(self, id: int) -> np.ndarray | None:
        return self._peaks([int(id)]).get(int(id))

    def _peaks(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        with self._read:
            points = self.client.retrieve(self.alias, [int(i) for i in ids], with_payload=[PEAKS])
        return {int(p.id): np.asarray(found, dtype=np.uint8) for p in points
                if (found := (p.payload or {}).get(PEAKS)) is not None}

    def without_windows(self) -> np.ndarray:
        with self._read:
            have = self._windows.clip_ids()
            ids = [int(p.id) for p in self._scroll(with_payload=False) if int(p.id) not in have]
        return np.sort(np.asarray(ids, dtype=np.int64))

    def window_count(self) -> int:
        with self._read:
            return self._windows.count()

    def unused_generations(self) -> dict[str, int]:
        """The physical collections of this store's aliases (`<alias>-g<N>`, its clips' and its windows')
        that no alias names, with their points: a re-projection stopped part-way, or one filling them now."""
        with self._read:
            used = set(layout.targets(self.client).values())
            names = {c.name for c in self.client.get_collections().collections} - used
            mine = [n for n in sorted(names)
                    if (split_generation(n) or ("", 0))[0] in (self.alias, self._windows.alias)]
            return {n: self.client.count(n, exact=True).count for n in mine}

    def windows_without_clip(self) -> set[int]:
        """The clip ids with windows but no clip point: what a crash between the two writes of an add (the
        windows first) or a removal (the clip first) leaves; never answered, only taking room."""
        with self._read:
            return self._windows.clip_ids() - {int(p.id) for p in self._scroll(with_payload=False)}

    def windows_out_of_date(self) -> tuple[int, ...]:
        """The clips whose windows hold another copy of the clip's payload than the clip: an edit made by
        an earlier version (which wrote the clip alone) or stopped between its two writes. Their window and
        moment searches filter on what the clip was."""
        with self._read:
            copies = self._windows.clip_copies()
            return tuple(sorted(int(p.id) for p in self._scroll() if int(p.id) in copies
                                and not same_clip_part(copies[int(p.id)], dict(p.payload or {}))))

    def bring_windows_up_to_date(self, clip_ids: Sequence[int]) -> None:
        """Copy these clips' payloads onto their windows again (:meth:`windows_out_of_date`'s)."""
        with self._write:
            for p in self.client.retrieve(self.alias, [int(i) for i in clip_ids], with_payload=RECORD):
                self._windows.set_clip_payload(dict(p.payload or {}))

    def remove_windows(self, clip_ids: Sequence[int]) -> None:
        """Delete the windows of these clip ids (:meth:`windows_without_clip`'s)."""
        with self._write:
            self._windows.delete(list(clip_ids))

    def rows(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        found = self._stored_vectors(ids, (AUDIO, LOGITS))
        return found[AUDIO], found[LOGITS]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        return self._stored_vectors(ids, (AUDIO,))[AUDIO]

    def _stored_vectors(self, ids: Sequence[int], names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """name -> (len(ids), width) float32 of the named vectors (audio, logits); KeyError for an id not
        stored."""
        ids = [int(i) for i in ids]
        with self._read:
            points = {p.id: p for p in self.client.retrieve(self.alias, ids, with_vectors=list(names))}
        missing = [i for i in ids if i not in points]
        if missing:
            raise KeyError(f"no clips with ids {missing[:10]}")
        width = {AUDIO: self.dim, LOGITS: N_TAGS}
        return {n: np.array([points[i].vector[n] for i in ids], dtype=np.float32).reshape(len(ids), width[n])
                for n in names}

    def next_id(self) -> int:
        with self._read:
            return int(self._meta().get("next_id", 1))

    def export(self, *, chunk: int = PAGE) -> Iterator[Chunk]:
        """Every point in id order, a page at a time: each clip is one point, so it is wholly in or out."""
        offset = None
        while True:
            with self._read:
                points, offset = self.client.scroll(self.alias, limit=chunk, offset=offset,
                                                    with_payload=RECORD, with_vectors=True)
            if points:
                n = len(points)
                yield ([record_of(p.id, p.payload) for p in points],
                       np.array([p.vector[AUDIO] for p in points], dtype=np.float32).reshape(n, self.dim),
                       np.array([p.vector[LOGITS] for p in points], dtype=np.float32).reshape(n, N_TAGS))
            if offset is None:
                return

    def ids(self) -> np.ndarray:
        with self._read:
            ids = [p.id for p in self._scroll(with_payload=False)]
        return np.sort(np.asarray(ids, dtype=np.int64))

    def total_duration(self) -> float:
        """Seconds of audio (reads every clip's duration)."""
        with self._read:
            return float(sum(p.payload["duration"] for p in self._scroll(with_payload=["duration"])))

    def _backend_stats(self) -> dict:
        with self._read:
            target = self._target()
        stats = {"collection": target, "alias": self.alias, "dim": self.dim, "embedded": self.local}
        if self.folder is not None:
            stats["bytes_on_disk"] = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())
        return stats

    def close(self) -> None:
        with self._write:
            if isinstance(self.client, _Closed):
                return
            self.client.close()
            self.client = self._windows.client = _Closed()


class _Closed:
    """A closed store's client: any use says the collection was closed (as the FAISS store's does)."""

    def __getattr__(self, name: str):
        raise StoreClosed("the collection was closed; open it again to use it")


def _equal(key: str, value: str) -> qm.FieldCondition:
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
