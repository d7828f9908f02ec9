"""The Qdrant backend: vectors, logits and clip metadata in one Qdrant collection (server or embedded).

Layout. Each clip is one point whose id is the clip id, with two named vectors, ``audio`` (D, dot product,
searched) and ``logits`` (527, kept on disk and not graph-indexed, read back by reproject), and the clip
record in its payload, with the user's metadata (``description``, ``user_tags``, ``fields``) and the clip's
keyword document (``words``, index/keyword.py) under a full-text payload index with BM25 scoring. The
collection's metadata holds the model spec (``model_spec``; ``fingerprint`` in collections made before it),
the next free id and ``keywords`` (1 once the text index exists and every point has its words: a collection
made before is brought up to date when it is opened). Callers name an alias (the configured collection) that
points at a physical collection ``<alias>-g<N>``;
``replace_vectors`` fills a new generation and moves the alias in one step, so a reproject is atomic for
readers and may change the vector size.

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

from index import keyword
from index.base import (
    Added,
    Chunk,
    ClipRecord,
    Hit,
    Hits,
    NewClip,
    Ranking,
    SearchFilter,
    Tag,
    VectorStore,
    check_queries,
    check_store_spec,
)
from index.metadata import Metadata
from retrieval.config import N_TAGS
from retrieval.errors import RetrievalError
from retrieval.model_spec import ModelSpec

log = logging.getLogger(__name__)

AUDIO, LOGITS = "audio", "logits"
MEMORY = ":memory:"
PAGE = 1024  # points per scroll / upsert request
_RECORD_FIELDS = ("name", "location", "sha256", "duration", "sample_rate", "stored_copy", "added_at")
_PAYLOAD_INDEXES = (("sha256", qm.PayloadSchemaType.KEYWORD), ("tag_labels", qm.PayloadSchemaType.KEYWORD),
                    ("duration", qm.PayloadSchemaType.FLOAT), ("user_tags", qm.PayloadSchemaType.KEYWORD))
WORDS = "words"  # the payload field of the keyword document, under the text index
KEYWORDS_VERSION = 1  # collection metadata `keywords`: the text index exists and every point has its words
# the word tokenizer splits the prepared words at the spaces only; BM25 ranks them
_TEXT_INDEX = qm.TextIndexParams(type=qm.TextIndexType.TEXT, tokenizer=qm.TokenizerType.WORD, lowercase=True,
                                 scoring=qm.TextScoringParams(type=qm.TextScoringType.BM25))


def connect(url: str | None, *, data_dir: Path) -> QdrantClient:
    """A client for a server URL, ``":memory:"`` (tests), or embedded local mode under data_dir/qdrant."""
    if url == MEMORY:
        return QdrantClient(location=MEMORY)
    if url:
        return QdrantClient(url=url)
    path = Path(data_dir) / "qdrant"
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


def open_qdrant_store(*, url: str | None, data_dir: Path, collection: str, spec: ModelSpec,
                      check: bool = True) -> QdrantStore:
    client = connect(url, data_dir=data_dir)
    try:
        return QdrantStore(client, collection=collection, spec=spec,
                           local=url is None or url == MEMORY, check=check)
    except BaseException:  # a refused model: free the embedded store's folder lock now, not at exit
        client.close()
        raise


def open_existing(*, url: str | None, data_dir: Path, collection: str) -> QdrantStore | None:
    """The collection as it is (any model), or None where there is none; nothing is created."""
    if url == MEMORY or (not url and not (Path(data_dir) / "qdrant").is_dir()):
        return None
    client = connect(url, data_dir=data_dir)
    try:
        if not client.collection_exists(collection):
            client.close()
            return None
        return QdrantStore(client, collection=collection, spec=ModelSpec(), local=not url, check=False)
    except BaseException:
        client.close()
        raise


def _payload(clip: NewClip, *, id: int, added_at: float) -> dict:
    return {"id": id, "name": clip.name, "location": clip.location, "sha256": clip.sha256,
            "duration": float(clip.duration), "sample_rate": int(clip.sample_rate),
            "stored_copy": bool(clip.stored_copy), "added_at": added_at,
            "tags": [{"label": t.label, "probability": float(t.probability)} for t in clip.tags],
            "tag_labels": [t.label.lower() for t in clip.tags],  # tags match case-insensitively
            "description": clip.meta.description, "user_tags": list(clip.meta.tags),
            "fields": clip.meta.field_dict, WORDS: keyword.document(clip)}


def _record(point_id: int, payload: dict) -> ClipRecord:
    tags = tuple(Tag(t["label"], float(t["probability"])) for t in payload["tags"])
    fields = {k: payload[k] for k in _RECORD_FIELDS}
    meta = Metadata(payload.get("description", ""), tuple(payload.get("user_tags", ())),
                    tuple(sorted(payload.get("fields", {}).items())))  # absent: a point made before metadata
    return ClipRecord(id=int(point_id), tags=tags, meta=meta, **fields)


def _filter(flt: SearchFilter | None) -> qm.Filter | None:
    if flt is None or flt.empty:
        return None
    must = []
    if flt.min_duration is not None or flt.max_duration is not None:
        must.append(qm.FieldCondition(key="duration", range=qm.Range(gte=flt.min_duration,
                                                                      lte=flt.max_duration)))
    if flt.tag is not None:
        must.append(qm.FieldCondition(key="tag_labels", match=qm.MatchValue(value=flt.tag.lower())))
    if flt.tags_any:
        must.append(qm.FieldCondition(key="user_tags", match=qm.MatchAny(any=list(flt.tags_any))))
    must += [qm.FieldCondition(key="user_tags", match=qm.MatchValue(value=t)) for t in flt.tags_all]
    must += [qm.FieldCondition(key=f"fields.{k}", match=qm.MatchValue(value=v)) for k, v in flt.fields]
    return qm.Filter(must=must)


class QdrantStore(VectorStore):
    backend = "qdrant"

    def __init__(self, client: QdrantClient, *, collection: str, spec: ModelSpec, local: bool,
                 check: bool = True):
        """Open or create the alias `collection`. check=False accepts whatever model it was made with (to
        re-project it); otherwise a non-empty collection of another model raises CheckpointMismatch."""
        self.client = client
        self.alias = collection
        self.local = local
        self._write = threading.RLock()
        # the embedded engine is not thread-safe; a server is, so reads then run concurrently
        self._read = self._write if local else nullcontext()
        # (position, point id) where the last list() page ended: paging in order costs O(N), not O(N^2)
        self._cursor: tuple[int, int] | None = None
        if not client.collection_exists(collection):
            self._create(self._generation_name(0), spec=spec)
            self._point_alias(self._generation_name(0))
        self.spec = self._stored_spec()
        self._add_keywords()
        if self.spec == spec or not check:
            return
        if self.count():
            check_store_spec(self.spec, spec, where=f"Qdrant collection {collection!r}")
            return
        self._new_generation(spec, [])  # an empty collection takes the configured model

    # --- layout -------------------------------------------------------------------------------------

    def _stored_spec(self) -> ModelSpec:
        meta = self._meta()
        return ModelSpec.from_dict(meta.get("model_spec") or meta["fingerprint"])  # fingerprint: earlier

    def _add_keywords(self) -> None:
        """A collection made before keyword search gets its text index and every point its words."""
        if self._meta().get("keywords") == KEYWORDS_VERSION:
            return
        with self._write:
            target = self._target()
            self.client.create_payload_index(target, WORDS, _TEXT_INDEX)
            ops = [qm.SetPayloadOperation(set_payload=qm.SetPayload(
                payload={WORDS: keyword.document(_record(p.id, p.payload))}, points=[p.id]))
                   for p in self._scroll()]
            for start in range(0, len(ops), PAGE):
                self.client.batch_update_points(target, ops[start:start + PAGE], wait=True)
            self.client.update_collection(target, metadata={"keywords": KEYWORDS_VERSION})
        log.info("added the keyword index to Qdrant collection %s (%d clips)", target, len(ops))

    def _generation_name(self, n: int) -> str:
        return f"{self.alias}-g{n}"

    def _target(self) -> str:
        for a in self.client.get_aliases().aliases:
            if a.alias_name == self.alias:
                return a.collection_name
        raise RetrievalError(f"Qdrant collection {self.alias!r} is not an alias made by this store")

    def _create(self, name: str, *, spec: ModelSpec, next_id: int = 1) -> None:
        vectors = {
            AUDIO: qm.VectorParams(size=int(spec.dim or 0), distance=qm.Distance.DOT),
            LOGITS: qm.VectorParams(size=N_TAGS, distance=qm.Distance.DOT, on_disk=True,
                                    hnsw_config=qm.HnswConfigDiff(m=0)),  # stored, never searched
        }
        self.client.create_collection(name, vectors_config=vectors, metadata={
            "model_spec": spec.to_dict(), "next_id": next_id, "keywords": KEYWORDS_VERSION})
        self.client.create_payload_index(name, WORDS, _TEXT_INDEX)  # the embedded engine too: it ranks
        if not self.local:  # the embedded engine scans payloads and warns that other indexes do nothing
            for key, kind in _PAYLOAD_INDEXES:
                self.client.create_payload_index(name, key, kind)
        log.info("created Qdrant collection %s (dim %d)", name, spec.dim)

    def _point_alias(self, target: str, *, old: str | None = None) -> None:
        ops = []
        if old is not None:
            ops.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self.alias)))
        ops.append(qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=target,
                                                                       alias_name=self.alias)))
        self.client.update_collection_aliases(ops)

    def _new_generation(self, spec: ModelSpec, points: Iterable[qm.PointStruct]) -> None:
        """Fill a new physical collection with `points`, then move the alias to it in one step."""
        old = self._target()
        target = self._generation_name(int(old.rsplit("-g", 1)[1]) + 1)
        if self.client.collection_exists(target):  # left over by an interrupted re-projection
            self.client.delete_collection(target)
        self._create(target, spec=spec, next_id=self._meta().get("next_id", 1))
        batch = []
        for point in points:
            batch.append(point)
            if len(batch) == PAGE:
                self.client.upsert(target, batch, wait=True)
                batch = []
        if batch:
            self.client.upsert(target, batch, wait=True)
        self._point_alias(target, old=old)
        self.client.delete_collection(old)
        self.spec = spec

    def _meta(self) -> dict:
        return self.client.get_collection(self.alias).config.metadata or {}

    def _scroll(self, *, with_vectors: bool | list[str] = False, with_payload: bool | list[str] = True
                ) -> Iterator[qm.Record]:
        offset = None
        while True:
            points, offset = self.client.scroll(self.alias, limit=PAGE, offset=offset,
                                                with_payload=with_payload, with_vectors=with_vectors)
            yield from points
            if offset is None:
                return

    # --- writes -------------------------------------------------------------------------------------

    def _insert(self, clips: list[NewClip], vectors: np.ndarray, logits: np.ndarray) -> list[Added]:
        if not clips:
            return []
        with self._write:
            first = int(self._meta().get("next_id", 1))
            # reserve the ids before writing, so a crash in between never hands one out twice
            self.client.update_collection(self._target(), metadata={"next_id": first + len(clips)})
            now = time.time()
            payloads = [_payload(c, id=first + n, added_at=now) for n, c in enumerate(clips)]
            points = [qm.PointStruct(id=p["id"], payload=p, vector={AUDIO: v.tolist(), LOGITS: lg.tolist()})
                      for p, v, lg in zip(payloads, vectors, logits, strict=True)]
            self.client.upsert(self.alias, points, wait=True)
        return [Added(_record(p["id"], p), True) for p in payloads]

    def _restore(self, records: list[ClipRecord], vectors: np.ndarray, logits: np.ndarray, *,
                 next_id: int) -> None:
        with self._write:
            if next_id > int(self._meta().get("next_id", 1)):  # reserved first, as an add does
                self.client.update_collection(self._target(), metadata={"next_id": next_id})
            for start in range(0, len(records), PAGE):
                points = [qm.PointStruct(id=r.id, payload=_payload(r, id=r.id, added_at=float(r.added_at)),
                                         vector={AUDIO: v.tolist(), LOGITS: lg.tolist()})
                          for r, v, lg in zip(records[start:start + PAGE], vectors[start:start + PAGE],
                                              logits[start:start + PAGE], strict=True)]
                self.client.upsert(self.alias, points, wait=True)

    def rename(self, alias: str) -> None:
        """Make `alias` name this store's collection, in one alias update (a restore moving its staged
        collection into place); the collection `alias` named before is deleted."""
        with self._write:
            target = self._target()
            old = None
            ops: list = [qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self.alias))]
            for a in self.client.get_aliases().aliases:
                if a.alias_name == alias:
                    old = a.collection_name
                    ops.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=alias)))
            ops.append(qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=target,
                                                                           alias_name=alias)))
            self.client.update_collection_aliases(ops)
            if old is not None and old != target:
                self.client.delete_collection(old)
            self.alias, self._cursor = alias, None

    def remove(self, ids: Sequence[int]) -> int:
        ids = sorted({int(i) for i in ids})
        with self._write:
            existing = self.client.retrieve(self.alias, ids, with_payload=False)
            if existing:
                self.client.delete(self.alias, qm.PointIdsList(points=[p.id for p in existing]), wait=True)
                self._cursor = None  # positions after a removed clip moved
        return len(existing)

    def set_metadata(self, id: int, meta: Metadata) -> ClipRecord | None:
        with self._write:
            points = self.client.retrieve(self.alias, [int(id)], with_payload=True)
            if not points:
                return None
            old = _record(points[0].id, points[0].payload)
            payload = _payload(replace(old, meta=meta), id=old.id, added_at=old.added_at)
            self.client.overwrite_payload(self.alias, payload, points=[old.id], wait=True)
        return _record(old.id, payload)

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, spec: ModelSpec) -> None:
        """Swap in a new model's vectors for the whole collection: searches go on over the old generation
        until the new one is filled, then the alias moves at once."""
        dim = int(spec.dim or 0)
        vectors = np.asarray(vectors, dtype=np.float32)  # (N, D')
        if vectors.shape != (len(ids), dim) or not np.isfinite(vectors).all():
            raise ValueError(f"expected ({len(ids)}, {dim}) finite vectors, got {vectors.shape}")
        new = {int(i): v for i, v in zip(ids, vectors, strict=True)}
        with self._write:
            if {p.id for p in self._scroll(with_payload=False)} != set(new):
                raise RetrievalError("the collection changed during re-projection; run it again")
            points = (qm.PointStruct(id=p.id, payload=p.payload,
                                     vector={AUDIO: new[p.id].tolist(), LOGITS: p.vector[LOGITS]})
                      for p in self._scroll(with_vectors=[LOGITS]))
            self._new_generation(spec, points)
        log.info("re-projected %d clips into %s", len(new), self._target())

    # --- reads --------------------------------------------------------------------------------------

    def get(self, id: int) -> ClipRecord | None:
        with self._read:
            points = self.client.retrieve(self.alias, [int(id)], with_payload=True)
        return _record(points[0].id, points[0].payload) if points else None

    def get_by_sha256(self, sha256: str) -> ClipRecord | None:
        flt = qm.Filter(must=[qm.FieldCondition(key="sha256", match=qm.MatchValue(value=sha256))])
        with self._read:
            points, _ = self.client.scroll(self.alias, scroll_filter=flt, limit=1, with_payload=True)
        return _record(points[0].id, points[0].payload) if points else None

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
                                               with_payload=True)
        self._cursor = (offset + len(points) - skip, after) if after is not None else None
        return [_record(p.id, p.payload) for p in points[skip:]]

    def count(self) -> int:
        with self._read:
            return self.client.count(self.alias, exact=True).count

    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> Hits:
        xq = check_queries(xq, dim=self.dim, k=k)
        if k == 0 or len(xq) == 0:
            return [[] for _ in xq]
        requests = [qm.QueryRequest(query=q.tolist(), using=AUDIO, filter=_filter(flt), limit=k,
                                    with_payload=True) for q in xq]
        with self._read:
            responses = self.client.query_batch_points(self.alias, requests)
        return [[Hit(_record(p.id, p.payload), float(p.score)) for p in r.points] for r in responses]

    def search_keywords(self, query: str, k: int, flt: SearchFilter | None = None) -> Ranking:
        if k < 0:
            raise ValueError("k must be >= 0")
        terms = keyword.query_words(query)
        if not terms or k == 0:
            return []
        text = qm.TextQueryInput(query=" ".join(terms), scoring=qm.Bm25Scoring(
            bm25=qm.Bm25Params(k=keyword.BM25_K1, b=keyword.BM25_B)))
        with self._read:
            points = self.client.query_points(self.alias, query=qm.TextQuery(text=text), using=WORDS,
                                              query_filter=_filter(flt), limit=k, with_payload=True).points
        hits = [Hit(_record(p.id, p.payload), float(p.score)) for p in points]
        return sorted(hits, key=lambda h: (-h.score, h.record.id))

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        with self._read:
            points = {p.id: p for p in self.client.retrieve(self.alias, ids, with_vectors=[LOGITS])}
        missing = [i for i in ids if i not in points]
        if missing:
            raise KeyError(f"no clips with ids {missing[:10]}")
        return np.array([points[i].vector[LOGITS] for i in ids], dtype=np.float32).reshape(len(ids), N_TAGS)

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        with self._read:
            points = {p.id: p for p in self.client.retrieve(self.alias, ids, with_vectors=[AUDIO])}
        missing = [i for i in ids if i not in points]
        if missing:
            raise KeyError(f"no clips with ids {missing[:10]}")
        return np.array([points[i].vector[AUDIO] for i in ids], dtype=np.float32).reshape(len(ids), self.dim)

    def next_id(self) -> int:
        with self._read:
            return int(self._meta().get("next_id", 1))

    def export(self, *, chunk: int = PAGE) -> Iterator[Chunk]:
        """Every point in id order, a page at a time: each clip is one point, so it is wholly in or out."""
        offset = None
        while True:
            with self._read:
                points, offset = self.client.scroll(self.alias, limit=chunk, offset=offset, with_payload=True,
                                                    with_vectors=True)
            if points:
                n = len(points)
                yield ([_record(p.id, p.payload) for p in points],
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
        return {"collection": target, "alias": self.alias, "dim": self.dim, "embedded": self.local}

    def close(self) -> None:
        with self._write:
            self.client.close()
