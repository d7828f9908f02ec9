"""The Qdrant backend: vectors, logits and clip metadata in one Qdrant collection (server or embedded).

Layout. Each clip is one point whose id is the clip id, with two named vectors, ``audio`` (D, dot product,
searched) and ``logits`` (527, kept on disk and not graph-indexed, read back by reproject), and the clip
record in its payload. The collection's metadata holds the model fingerprint and the next free id. Callers
name an alias (``settings.qdrant_collection``) that points at a physical collection ``<alias>-g<N>``;
``replace_vectors`` fills a new generation and moves the alias in one step, so a reproject is atomic for
readers and may change the vector size.

One writer at a time: ids come from a counter in the collection metadata, reserved before each write.
"""

from __future__ import annotations  # the `list` method would shadow the builtin in annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from index.base import ClipRecord, Hit, NewClip, SearchFilter, Tag, VectorStore
from retrieval.config import N_TAGS
from retrieval.errors import CheckpointMismatch

log = logging.getLogger(__name__)

AUDIO, LOGITS = "audio", "logits"
MEMORY = ":memory:"
PAGE = 1024  # points per scroll / upsert request
_RECORD_FIELDS = ("name", "location", "sha256", "duration", "sample_rate", "stored_copy", "added_at")
_PAYLOAD_INDEXES = (("sha256", qm.PayloadSchemaType.KEYWORD), ("tag_labels", qm.PayloadSchemaType.KEYWORD),
                    ("duration", qm.PayloadSchemaType.FLOAT))


def connect(url: str | None, *, data_dir: Path) -> QdrantClient:
    """A client for a server URL, ``":memory:"`` (tests), or embedded local mode under data_dir/qdrant."""
    if url == MEMORY:
        return QdrantClient(location=MEMORY)
    if url:
        return QdrantClient(url=url)
    path = Path(data_dir) / "qdrant"
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


def open_qdrant_store(*, url: str | None, data_dir: Path, collection: str,
                      fingerprint: dict) -> QdrantStore:
    return QdrantStore(connect(url, data_dir=data_dir), collection=collection, fingerprint=fingerprint,
                       local=url is None or url == MEMORY)


def _payload(clip: NewClip, *, id: int, added_at: float) -> dict:
    p = {k: getattr(clip, k) for k in _RECORD_FIELDS if k != "added_at"}
    p.update(id=id, added_at=added_at, tags=[asdict(t) for t in clip.tags],
             tag_labels=[t.label.lower() for t in clip.tags])  # tags match case-insensitively
    return p


def _record(point_id: int, payload: dict) -> ClipRecord:
    tags = tuple(Tag(t["label"], float(t["probability"])) for t in payload["tags"])
    fields = {k: payload[k] for k in _RECORD_FIELDS}
    return ClipRecord(id=int(point_id), tags=tags, **fields)


def _filter(flt: SearchFilter | None) -> qm.Filter | None:
    if flt is None or flt.empty:
        return None
    must = []
    if flt.min_duration is not None or flt.max_duration is not None:
        must.append(qm.FieldCondition(key="duration", range=qm.Range(gte=flt.min_duration,
                                                                      lte=flt.max_duration)))
    if flt.tag is not None:
        must.append(qm.FieldCondition(key="tag_labels", match=qm.MatchValue(value=flt.tag.lower())))
    return qm.Filter(must=must)


def _fingerprint_dim(fingerprint: dict) -> int:
    if not isinstance(fingerprint.get("dim"), int):
        raise ValueError("the model fingerprint must carry the vector size as 'dim'")
    return fingerprint["dim"]


class QdrantStore(VectorStore):
    def __init__(self, client: QdrantClient, *, collection: str, fingerprint: dict, local: bool):
        self.client = client
        self.alias = collection
        self.local = local
        self._write = threading.RLock()
        # the embedded engine is not thread-safe; a server is, so reads then run concurrently
        self._read = self._write if local else nullcontext()
        if not client.collection_exists(collection):
            self._create(self._generation_name(0), dim=_fingerprint_dim(fingerprint), fingerprint=fingerprint)
            self._point_alias(self._generation_name(0))
        meta = self._meta()
        if meta.get("fingerprint") != fingerprint:
            raise CheckpointMismatch(
                f"Qdrant collection {collection!r} was made with model {meta.get('fingerprint')}, "
                f"not {fingerprint}; reproject it or use another collection")
        self.fingerprint = fingerprint

    # --- layout -------------------------------------------------------------------------------------

    def _generation_name(self, n: int) -> str:
        return f"{self.alias}-g{n}"

    def _target(self) -> str:
        for a in self.client.get_aliases().aliases:
            if a.alias_name == self.alias:
                return a.collection_name
        raise RuntimeError(f"Qdrant has a collection {self.alias!r} that is not this store's alias")

    def _create(self, name: str, *, dim: int, fingerprint: dict, next_id: int = 1) -> None:
        vectors = {
            AUDIO: qm.VectorParams(size=dim, distance=qm.Distance.DOT),
            LOGITS: qm.VectorParams(size=N_TAGS, distance=qm.Distance.DOT, on_disk=True,
                                    hnsw_config=qm.HnswConfigDiff(m=0)),
        }
        self.client.create_collection(name, vectors_config=vectors,
                                      metadata={"fingerprint": fingerprint, "next_id": next_id})
        if not self.local:  # the embedded engine scans payloads and warns that indexes do nothing
            for key, kind in _PAYLOAD_INDEXES:
                self.client.create_payload_index(name, key, kind)
        log.info("created Qdrant collection %s (dim %d)", name, dim)

    def _point_alias(self, target: str, *, old: str | None = None) -> None:
        ops = []
        if old is not None:
            ops.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self.alias)))
        ops.append(qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=target,
                                                                       alias_name=self.alias)))
        self.client.update_collection_aliases(ops)

    def _meta(self) -> dict:
        return self.client.get_collection(self.alias).config.metadata or {}

    def _scroll(self, *, with_vectors: bool | list[str] = False, flt: qm.Filter | None = None,
                collection: str | None = None) -> Iterator[qm.Record]:
        offset = None
        while True:
            points, offset = self.client.scroll(collection or self.alias, scroll_filter=flt, limit=PAGE,
                                                offset=offset, with_payload=True, with_vectors=with_vectors)
            yield from points
            if offset is None:
                return

    # --- writes -------------------------------------------------------------------------------------

    def add(self, clip: NewClip, vector: np.ndarray, logits: np.ndarray) -> ClipRecord:
        return self.add_many([clip], np.asarray(vector)[None], np.asarray(logits)[None])[0]

    def add_many(self, clips: Sequence[NewClip], vectors: np.ndarray, logits: np.ndarray) -> list[ClipRecord]:
        """Several clips in one request: vectors (N, D), logits (N, 527)."""
        vectors = np.asarray(vectors, dtype=np.float32)  # (N, D)
        logits = np.asarray(logits, dtype=np.float32)  # (N, 527)
        dim = _fingerprint_dim(self.fingerprint)
        if vectors.shape != (len(clips), dim) or logits.shape != (len(clips), N_TAGS):
            raise ValueError(f"expected vectors ({len(clips)}, {dim}) and logits ({len(clips)}, {N_TAGS}), "
                             f"got {vectors.shape} and {logits.shape}")
        with self._write:
            first = int(self._meta().get("next_id", 1))
            # reserve the ids before writing, so a crash in between never hands one out twice
            self.client.update_collection(self.alias, metadata={"next_id": first + len(clips)})
            now = time.time()
            payloads = [_payload(c, id=first + i, added_at=now) for i, c in enumerate(clips)]
            points = [qm.PointStruct(id=p["id"], vector={AUDIO: v.tolist(), LOGITS: lg.tolist()}, payload=p)
                      for p, v, lg in zip(payloads, vectors, logits, strict=True)]
            self.client.upsert(self.alias, points, wait=True)
        return [_record(p["id"], p) for p in payloads]

    def remove(self, ids: Sequence[int]) -> int:
        ids = [int(i) for i in ids]
        with self._write:
            existing = self.client.retrieve(self.alias, ids, with_payload=False)
            if existing:
                self.client.delete(self.alias, qm.PointIdsList(points=[p.id for p in existing]), wait=True)
        return len(existing)

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray, fingerprint: dict) -> None:
        """Copy every point into a new generation with the new vectors, then move the alias to it."""
        vectors = np.asarray(vectors, dtype=np.float32)  # (N, D')
        dim = _fingerprint_dim(fingerprint)
        new = {int(i): v for i, v in zip(ids, vectors, strict=True)}
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise ValueError(f"vectors {vectors.shape} do not have the fingerprint's size {dim}")
        with self._write:
            stored = {p.id for p in self._scroll()}
            if stored != set(new):
                raise ValueError(f"replace_vectors needs every stored id: {len(stored)} stored, "
                                 f"{len(new)} given, {len(stored ^ set(new))} differ")
            old = self._target()
            target = self._generation_name(int(old.rsplit("-g", 1)[1]) + 1)
            if self.client.collection_exists(target):  # left over by an interrupted reproject
                self.client.delete_collection(target)
            self._create(target, dim=dim, fingerprint=fingerprint, next_id=self._meta().get("next_id", 1))
            batch = []
            for p in self._scroll(with_vectors=[LOGITS]):
                vector = {AUDIO: new[p.id].tolist(), LOGITS: p.vector[LOGITS]}
                batch.append(qm.PointStruct(id=p.id, vector=vector, payload=p.payload))
                if len(batch) == PAGE:
                    self.client.upsert(target, batch, wait=True)
                    batch = []
            if batch:
                self.client.upsert(target, batch, wait=True)
            self._point_alias(target, old=old)
            self.client.delete_collection(old)
            self.fingerprint = fingerprint
        log.info("reprojected %d clips into %s", len(new), target)

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
        with self._read:  # scroll pages by point id, ascending: skip `offset` points
            points, _ = self.client.scroll(self.alias, limit=offset + limit, with_payload=True)
        return [_record(p.id, p.payload) for p in points[offset:]]

    def count(self) -> int:
        with self._read:
            return self.client.count(self.alias, exact=True).count

    def search(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> list[list[Hit]]:
        xq = np.asarray(xq, dtype=np.float32).reshape(-1, _fingerprint_dim(self.fingerprint))  # (Q, D)
        if k <= 0:
            return [[] for _ in xq]
        requests = [qm.QueryRequest(query=q.tolist(), using=AUDIO, filter=_filter(flt), limit=k,
                                    with_payload=True) for q in xq]
        with self._read:
            responses = self.client.query_batch_points(self.alias, requests) if requests else []
        return [[Hit(_record(p.id, p.payload), float(p.score)) for p in r.points] for r in responses]

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        with self._read:
            points = {p.id: p for p in self.client.retrieve(self.alias, ids, with_vectors=[LOGITS])}
        missing = [i for i in ids if i not in points]
        if missing:
            raise KeyError(f"no clips with ids {missing[:10]}")
        return np.array([points[i].vector[LOGITS] for i in ids], dtype=np.float32).reshape(len(ids), N_TAGS)

    def close(self) -> None:
        with self._write:
            self.client.close()
