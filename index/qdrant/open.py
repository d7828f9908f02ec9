"""Connecting to Qdrant (a server, embedded under the data directory, or in memory) and opening the store
of a collection."""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient

from index.layout import QDRANT_DIR
from index.qdrant.store import QdrantStore
from retrieval.model_spec import ModelSpec

MEMORY = ":memory:"


def connect(url: str | None, *, data_dir: Path) -> QdrantClient:
    """A client for a server URL, ``":memory:"`` (tests), or embedded local mode under data_dir/qdrant."""
    if url == MEMORY:
        return QdrantClient(location=MEMORY)
    if url:
        return QdrantClient(url=url)
    path = Path(data_dir) / QDRANT_DIR
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


def open_qdrant_store(*, url: str | None, data_dir: Path, collection: str, spec: ModelSpec,
                      check: bool = True, window_quantization: str = "none") -> QdrantStore:
    """`window_quantization` ("none" or "int8"): of the windows collections the store creates."""
    client = connect(url, data_dir=data_dir)
    try:
        return QdrantStore(client, collection=collection, spec=spec,
                           local=url is None or url == MEMORY, check=check,
                           folder=None if url else Path(data_dir) / QDRANT_DIR,
                           window_quantization=window_quantization)
    except BaseException:  # a refused model: free the embedded store's folder lock now, not at exit
        client.close()
        raise


def open_existing(*, url: str | None, data_dir: Path, collection: str) -> QdrantStore | None:
    """The collection as it is (any model), or None where there is none; nothing is created."""
    if url == MEMORY or (not url and not (Path(data_dir) / QDRANT_DIR).is_dir()):
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
