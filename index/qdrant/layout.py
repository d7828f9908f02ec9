"""The Qdrant store's layout, shared by its clips' and its windows' collections: the named vectors, how a
physical collection is made and filled, and aliases moved in one step.

Every collection holds points with two named vectors, ``audio`` (D, dot product, searched) and ``logits``
(527, on disk, not graph-indexed, read back by reproject); the windows' collections hold both in float16,
and may quantize their audio vectors (int8, in RAM, the originals on disk). Callers name aliases; a physical
collection is ``<alias>-g<N>``, and a re-projection fills generation N + 1 of every alias and moves them all
at once.
"""

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, TypeVar

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from index.layout import split_generation
from index.store.checks import MAX_TIE_DEPTH
from retrieval.config import N_TAGS
from retrieval.errors import RetrievalError

log = logging.getLogger(__name__)

AUDIO, LOGITS = "audio", "logits"
PAGE = 1024  # points per scroll / upsert request
PayloadIndexes = tuple[tuple[str, qm.PayloadSchemaType], ...]
DEEPER = 4  # a query tied at its cut is asked again this many times deeper


INT8 = qm.ScalarQuantization(scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.99,
                                                                always_ram=True))


def create(client: QdrantClient, name: str, *, dim: int, local: bool, indexes: PayloadIndexes,
           metadata: dict | None = None, float16: bool = False, quantization: str = "none") -> None:
    """A physical collection of (audio, logits) points; `float16` stores both vectors in half precision
    (the server's; the embedded engine keeps float32 of the same values). `quantization` "int8": the audio
    vectors' int8 scalar quantization in RAM, their originals on disk (the embedded engine ignores both)."""
    half = qm.Datatype.FLOAT16 if float16 else None
    quantized = quantization == "int8"
    if quantization not in ("none", "int8"):
        raise ValueError(f"quantization must be 'none' or 'int8', not {quantization!r}")
    vectors = {
        AUDIO: qm.VectorParams(size=dim, distance=qm.Distance.DOT, datatype=half, on_disk=quantized or None),
        LOGITS: qm.VectorParams(size=N_TAGS, distance=qm.Distance.DOT, on_disk=True, datatype=half,
                                hnsw_config=qm.HnswConfigDiff(m=0)),  # stored, never searched
    }
    client.create_collection(name, vectors_config=vectors, metadata=metadata,
                             quantization_config=INT8 if quantized else None)
    if not local:  # the embedded engine scans payloads and warns that indexes do nothing
        for key, kind in indexes:
            client.create_payload_index(name, key, kind)
    log.info("created Qdrant collection %s (dim %d)", name, dim)


def add_missing_indexes(client: QdrantClient, name: str, indexes: PayloadIndexes) -> list[str]:
    """Make the payload indexes of `indexes` that the server's collection `name` lacks (one made by an
    earlier version, before an index was added); returns their keys. Indexes are built in the background."""
    have = client.get_collection(name).payload_schema or {}
    made = [key for key, _ in indexes if key not in have]
    for key, kind in indexes:
        if key in made:
            client.create_payload_index(name, key, kind)
    if made:
        log.info("added the payload indexes %s to Qdrant collection %s", ", ".join(made), name)
    return made


def generation(name: str) -> tuple[str, int]:
    """(alias, N) of a physical collection ``<alias>-g<N>``."""
    alias_n = split_generation(name)
    if alias_n is None:
        raise RetrievalError(f"the Qdrant collection {name!r} is no generation of an alias (<alias>-g<N>)")
    return alias_n


def targets(client: QdrantClient) -> dict[str, str]:
    """alias -> the physical collection it names."""
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def target(client: QdrantClient, alias: str) -> str:
    found = targets(client).get(alias)
    if found is None:
        raise RetrievalError(f"Qdrant collection {alias!r} is not an alias made by this store")
    return found


def move_aliases(client: QdrantClient, moves: dict[str, str]) -> None:
    """Point every alias of `moves` at its collection, in one update (readers see all moved or none)."""
    existing = targets(client)
    ops: list = [qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=a)) for a in moves
                 if a in existing]
    ops += [qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=c, alias_name=a))
            for a, c in moves.items()]
    client.update_collection_aliases(ops)


def upsert_all(client: QdrantClient, name: str, points: Iterable[qm.PointStruct]) -> None:
    """Write `points` into `name`, a page per request."""
    batch = []
    for point in points:
        batch.append(point)
        if len(batch) == PAGE:
            client.upsert(name, batch, wait=True)
            batch = []
    if batch:
        client.upsert(name, batch, wait=True)


def scroll(client: QdrantClient, name: str, *, with_vectors: bool | list[str] = False,
           with_payload: bool | list[str] | qm.PayloadSelector = True,
           scroll_filter: qm.Filter | None = None) -> Iterator[qm.Record]:
    """Every point of `name` (that passes the filter), a page at a time."""
    offset = None
    while True:
        points, offset = client.scroll(name, limit=PAGE, offset=offset, with_payload=with_payload,
                                       with_vectors=with_vectors, scroll_filter=scroll_filter)
        yield from points
        if offset is None:
            return


class Scored(Protocol):
    @property
    def score(self) -> float: ...


P = TypeVar("P", bound=Scored)


def best_first(ask: Callable[[list[int], int, list[float] | None], Sequence[Sequence[P]]], queries: int,
               k: int, key: Callable[[P], tuple[int, ...]], *,
               wider: Callable[[int], int] = lambda limit: DEEPER * limit) -> list[list[P]]:
    """Each of `queries` queries' k best points by (-score, key(point)), the score as Qdrant reports it.
    `ask(qs, limit, floors)` answers the queries numbered `qs`, each with its points best first, at most
    `limit`, ties in no given order (a server's, the embedded engine's); `floors` None the first time, then
    each query's k-th score: none below it is needed (`below`), nor anything of a point but its score and
    `key`. Asked for k + 1: where the last point scores below the k-th, none left out ties at the cut (the
    common case, at the cost of one point more); a query whose last point ties is asked again, `wider`
    (DEEPER times as many), until it scores below the k-th or the query has no more points, or MAX_TIE_DEPTH
    points (k + 1 where that is more) were asked: a tie group reaching past that is ranked by key among the
    points Qdrant returned, not among all (Qdrant picks which of a tie it returns)."""
    if k == 0 or queries == 0:
        return [[] for _ in range(queries)]
    limit = k + 1
    deepest = max(limit, MAX_TIE_DEPTH)
    found = [list(points) for points in ask(list(range(queries)), limit, None)]
    tied = list(range(queries))
    while limit < deepest:
        tied = [q for q in tied if len(found[q]) >= limit and found[q][-1].score == found[q][k - 1].score]
        if not tied:
            break
        limit = min(max(wider(limit), limit + 1), deepest)
        for q, points in zip(tied, ask(tied, limit, [found[q][k - 1].score for q in tied]), strict=True):
            found[q] = list(points)
    return [sorted(points, key=lambda p: (-p.score, key(p)))[:k] for points in found]


def below(score: float) -> float:
    """A score threshold that lets `score` through on a server (which keeps what scores at it or above) and
    in the embedded engine (above it), whatever precision either compares in."""
    return score - max(1e-6, 1e-6 * abs(score))
