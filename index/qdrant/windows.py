"""The Qdrant store's windows: one point per window, in the collection behind the alias ``<clips>-windows``,
whose generations follow the clips' (``<clips>-windows-g<N>`` beside ``<clips>-g<N>``), so a re-projection
moves both aliases in one step.

A window point's id is a UUID made from (clip id, n), so writing a clip's windows again overwrites them; its
payload is the clip's (so the clip filters apply to windows inside Qdrant) plus ``n``, ``start`` and ``end``;
its ``audio`` vector and its ``logits`` hold float16 values (collections made before float16 logits keep
float32 ones). With quantization "int8" a windows collection is made with int8 scalar quantization of its
audio vectors (kept in RAM, the float16 originals on disk) and its searches are rescored on the originals.

Given clips' windows are scored by Qdrant (:meth:`QdrantWindows.scored`): an exact search filtered to those
clips with a score threshold, so only the windows at the floor come back; for a floor below each clip's best
window, a grouped search finds each clip's best first. The store calls these methods under its own locks.
"""

import uuid
from collections.abc import Iterator, Sequence

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from index.layout import QDRANT_WINDOWS, qdrant_generation
from index.qdrant import layout
from index.qdrant.payload import VOCAB, WORDS
from index.store.records import Floor, Project, ScoredWindows, WindowHit, WindowHits, Windows
from retrieval.config import N_TAGS

NAMESPACE = uuid.UUID("6d6f6d65-6e74-5300-8000-77696e646f77")  # fixed: ids must not change between runs
PLACE = ["id", "n", "start", "end"]  # the payload a window hit needs
OWN = ["n", "start", "end"]  # a window's payload beside its clip's copy
INDEXES: layout.PayloadIndexes = (("id", qm.PayloadSchemaType.INTEGER), ("n", qm.PayloadSchemaType.INTEGER))
RESCORE = qm.SearchParams(quantization=qm.QuantizationSearchParams(rescore=True))
# scoring given clips' windows: every one of them at the floor, as the base store's reading them all would
# answer (no graph approximation; the original vectors, not their quantization); filtered to those clips
EXACT = qm.SearchParams(exact=True)
# the embedded engine keeps only scores above a threshold, a server those at it or above: ask for a little
# below the floor and keep those at it here
BELOW = 1e-6
FIRST = qm.Filter(must=[qm.FieldCondition(key="n", match=qm.MatchValue(value=0))])  # each clip's window 0


def collection_for(clips_collection: str) -> str:
    """The windows' physical collection beside the clips' ``<alias>-g<N>``: ``<alias>-windows-g<N>``."""
    alias, n = layout.generation(clips_collection)
    return qdrant_generation(alias + QDRANT_WINDOWS, n)


def point_id(clip_id: int, n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{int(clip_id)}/{int(n)}"))


def clip_part(payload: dict) -> dict:
    """The part of a clip's payload (without its peaks) that each of its windows holds: what filters read,
    its keyword document and vocabulary left out (windows are searched by vector only)."""
    return {k: v for k, v in payload.items() if k not in (WORDS, VOCAB)}


def same_clip_part(a: dict, b: dict) -> bool:
    """Whether two payloads of a clip give its windows the same copy (:func:`clip_part`); a null value and
    no value are one (Qdrant may drop a null)."""
    def held(payload: dict) -> dict:
        return {k: v for k, v in clip_part(payload).items() if v is not None}

    return held(a) == held(b)


def points(payload: dict, windows: Windows) -> list[qm.PointStruct]:
    """A clip's windows as points; `payload` is the clip's (without its peaks)."""
    assert windows.logits is not None  # written windows carry their logits
    payload = clip_part(payload)
    rows = zip(windows.starts, windows.ends, windows.vectors, windows.logits, strict=True)
    return [qm.PointStruct(id=point_id(payload["id"], n),
                           payload={**payload, "n": n, "start": float(s), "end": float(e)},
                           vector={layout.AUDIO: v.astype(np.float32).tolist(),
                                   layout.LOGITS: lg.astype(np.float16).astype(np.float32).tolist()})
            for n, (s, e, v, lg) in enumerate(rows)]


def _clip_and_n(point: qm.ScoredPoint) -> tuple[int, int]:
    """(clip id, n) of a window point: the order of windows whose scores tie."""
    payload = point.payload or {}
    return int(payload.get("id", -1)), int(payload.get("n", -1))


def _of_clips(ids: Sequence[int]) -> qm.Filter:
    return qm.Filter(must=[qm.FieldCondition(key="id", match=qm.MatchAny(any=[int(i) for i in ids]))])


class QdrantWindows:
    def __init__(self, client: QdrantClient, *, clips_alias: str, local: bool,
                 clip_indexes: layout.PayloadIndexes, quantization: str = "none"):
        """`quantization` ("none" or "int8"): of a windows collection this creates; one made before keeps
        its own (read from its config, and searched accordingly)."""
        self.client = client
        self.alias = clips_alias + QDRANT_WINDOWS
        self.local = local
        self.indexes = clip_indexes + INDEXES
        self.quantization = quantization
        self._quantized: bool | None = None  # whether the collection searched is quantized, once read
        self._exact = None if local else EXACT  # the embedded engine is exact, and warns of search params

    def exists(self) -> bool:
        """Whether this store has a windows collection (stores made before windows have none until a write
        needs one)."""
        return self.alias in layout.targets(self.client)

    def create(self, name: str, *, dim: int) -> None:
        if self.client.collection_exists(name):  # left over by an interrupted write or re-projection
            self.client.delete_collection(name)
        layout.create(self.client, name, dim=dim, local=self.local, indexes=self.indexes, float16=True,
                      quantization=self.quantization)
        self._quantized = None

    def add_missing_indexes(self) -> None:
        """A windows collection made by an earlier version gets its missing payload indexes."""
        if self.exists():
            layout.add_missing_indexes(self.client, layout.target(self.client, self.alias), self.indexes)

    def ensure(self, clips_collection: str, *, dim: int) -> None:
        """Make the windows collection beside `clips_collection` if this store has none yet."""
        if not self.exists():
            name = collection_for(clips_collection)
            self.create(name, dim=dim)
            layout.move_aliases(self.client, {self.alias: name})

    def write(self, pts: list[qm.PointStruct]) -> None:
        layout.upsert_all(self.client, self.alias, pts)

    def set_clip_payload(self, payload: dict) -> None:
        """A clip's payload, changed (its metadata edited), on each of its windows: the clip filters of
        window and moment searches read the windows' copy."""
        if self.exists():
            self.client.set_payload(self.alias, clip_part(payload), points=_of_clips([payload["id"]]),
                                    wait=True)

    def delete(self, clip_ids: Sequence[int]) -> None:
        if clip_ids and self.exists():
            self.client.delete(self.alias, qm.FilterSelector(filter=_of_clips(clip_ids)), wait=True)

    def search(self, xq: np.ndarray, k: int, flt: qm.Filter | None) -> WindowHits:
        if k == 0 or not self.exists():
            return [[] for _ in xq]
        queries, params = [q.tolist() for q in xq], self._params()

        def ask(qs: list[int], limit: int, floors: list[float] | None) -> list[list[qm.ScoredPoint]]:
            requests = [qm.QueryRequest(query=queries[q], using=layout.AUDIO, filter=flt, limit=limit,
                                        with_payload=PLACE, params=params,  # PLACE: the hit, and its key
                                        score_threshold=None if floors is None else layout.below(floors[n]))
                        for n, q in enumerate(qs)]
            return [r.points for r in self.client.query_batch_points(self.alias, requests)]

        # the k best by (-score, clip id, n), as every store ranks windows: ties at the cut asked deeper
        found = layout.best_first(ask, len(queries), k, key=_clip_and_n)
        return [[WindowHit(int(p.payload["id"]), int(p.payload["n"]), float(p.payload["start"]),
                           float(p.payload["end"]), float(p.score)) for p in points if p.payload]
                for points in found]

    def _params(self) -> qm.SearchParams | None:
        """Rescoring on the originals where the windows are quantized (as made now, or as found); none for
        the embedded engine (it scans every point exactly, and warns that search parameters do nothing)."""
        if self.local:
            return None
        if self._quantized is None:
            config = self.client.get_collection(self.alias).config
            self._quantized = self.quantization != "none" or config.quantization_config is not None
        return RESCORE if self._quantized else None

    def scored(self, q: np.ndarray, ids: Sequence[int], cut: Floor) -> dict[int, ScoredWindows]:
        """VectorStore.scored_windows inside Qdrant: with a fixed floor (`cut.at`), one search filtered to
        the clips with a score threshold at the floor and a limit of all their windows; otherwise each clip's
        best window first (a search grouped by clip), then one such search at the lowest clip floor (best -
        margin), each clip's windows kept from its own floor up. Only windows at a floor are sent back."""
        ids = sorted({int(i) for i in ids})
        if not ids or not self.exists():
            return {}
        query = np.asarray(q, dtype=np.float32).tolist()
        if cut.at is None:
            groups = self.client.query_points_groups(
                self.alias, query=query, using=layout.AUDIO, query_filter=_of_clips(ids), group_by="id",
                group_size=1, limit=len(ids), with_payload=False, search_params=self._exact).groups
            floors = {int(g.id): cut.of(g.hits[0].score) for g in groups if g.hits}
        else:
            floors = dict.fromkeys(ids, cut.of(0.0))
        if not floors:
            return {}
        flt = _of_clips(sorted(floors))
        # a limit that holds every window of these clips: the threshold, not the limit, decides
        limit = self.client.count(self.alias, count_filter=flt, exact=True).count
        if not limit:
            return {}
        points = self.client.query_points(
            self.alias, query=query, using=layout.AUDIO, query_filter=flt, limit=limit,
            score_threshold=min(floors.values()) - BELOW, with_payload=PLACE,
            search_params=self._exact).points
        rows: dict[int, list[tuple[int, float, float, float]]] = {}
        for p in points:
            pl = p.payload or {}
            clip_id = int(pl["id"])
            if float(p.score) >= floors[clip_id]:
                rows.setdefault(clip_id, []).append((int(pl["n"]), float(pl["start"]), float(pl["end"]),
                                                     float(p.score)))
        found = {}
        for clip_id in sorted(rows):
            kept = sorted(rows[clip_id])
            found[clip_id] = ScoredWindows(np.array([r[0] for r in kept], dtype=np.int64),
                                           np.array([r[1] for r in kept]), np.array([r[2] for r in kept]),
                                           np.array([r[3] for r in kept], dtype=np.float32))
        return found

    def of(self, ids: Sequence[int], *, dim: int, logits: bool = False) -> dict[int, Windows]:
        """clip id -> its windows, in window order (with their logits, float32, with `logits`), for the ids
        that have any."""
        if not ids or not self.exists():
            return {}
        rows: dict[int, list[tuple]] = {}
        read = [layout.AUDIO, layout.LOGITS] if logits else [layout.AUDIO]
        for p in layout.scroll(self.client, self.alias, with_vectors=read, with_payload=PLACE,
                               scroll_filter=_of_clips(ids)):
            pl = p.payload or {}
            rows.setdefault(int(pl["id"]), []).append((int(pl["n"]), pl["start"], pl["end"],
                                                       p.vector[layout.AUDIO],
                                                       p.vector[layout.LOGITS] if logits else None))
        out = {}
        for clip_id, found in rows.items():
            found.sort(key=lambda r: r[0])
            out[clip_id] = Windows(np.array([r[1] for r in found]), np.array([r[2] for r in found]),
                                   np.array([r[3] for r in found], dtype=np.float32).reshape(len(found), dim)
                                   .astype(np.float16),
                                   np.array([r[4] for r in found], dtype=np.float32) if logits else None)
        return out

    def clip_ids(self) -> set[int]:
        """The clips that have windows (each has a window 0)."""
        if not self.exists():
            return set()
        found = layout.scroll(self.client, self.alias, with_payload=["id"], scroll_filter=FIRST)
        return {int((p.payload or {})["id"]) for p in found}

    def clip_copies(self) -> dict[int, dict]:
        """Each clip's payload as its window 0 holds it (a copy of :func:`clip_part`), by clip id."""
        if not self.exists():
            return {}
        found = layout.scroll(self.client, self.alias, scroll_filter=FIRST,
                              with_payload=qm.PayloadSelectorExclude(exclude=OWN))
        return {int(p.payload["id"]): dict(p.payload) for p in found if p.payload}

    def count(self) -> int:
        return self.client.count(self.alias, exact=True).count if self.exists() else 0

    def reprojected(self, project: Project) -> Iterator[qm.PointStruct]:
        """Every window with its vector replaced by `project(logits)`, a page at a time."""
        page: list[qm.Record] = []
        for p in layout.scroll(self.client, self.alias, with_vectors=[layout.LOGITS]):
            page.append(p)
            if len(page) == layout.PAGE:
                yield from _project(page, project)
                page = []
        yield from _project(page, project)


def _project(page: list[qm.Record], project: Project) -> list[qm.PointStruct]:
    if not page:
        return []
    logits = np.array([p.vector[layout.LOGITS] for p in page],
                      dtype=np.float32).reshape(len(page), N_TAGS)
    vectors = np.asarray(project(logits), dtype=np.float32)  # (n, D)
    if vectors.shape[0] != len(page) or not np.isfinite(vectors).all():
        raise ValueError(f"projected window vectors must be ({len(page)}, D) and finite")
    return [qm.PointStruct(id=p.id, payload=p.payload,
                           vector={layout.AUDIO: v.astype(np.float16).astype(np.float32).tolist(),
                                   layout.LOGITS: p.vector[layout.LOGITS]})
            for p, v in zip(page, vectors, strict=True)]
