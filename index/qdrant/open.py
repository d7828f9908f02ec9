"""Connecting to Qdrant (a server, embedded under the data directory, or in memory) and opening the store
of a collection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ApiException

from index.layout import QDRANT_DIR
from index.qdrant.store import QdrantStore
from retrieval.errors import RetrievalError
from retrieval.model_spec import ModelSpec

MEMORY = ":memory:"


class QdrantUnavailable(RetrievalError):
    """The configured Qdrant cannot be reached or opened: a server that does not answer, a URL that is
    none, an embedded store another process holds."""


@contextmanager
def reaching(url: str | None, data_dir: Path, close: Callable[[], None] = lambda: None) -> Iterator[None]:
    """What qdrant-client raises on the way to the store as one QdrantUnavailable naming the setting; the
    store's own refusals (another model) go through as they are. `close` frees the client on any error."""
    try:
        yield
    except RetrievalError:
        close()
        raise
    except (ApiException, OSError, ValueError, RuntimeError) as e:
        close()
        where = (f"the Qdrant server at {url} (RETRIEVAL_QDRANT_URL)" if url else
                 f"the embedded Qdrant store in {Path(data_dir) / QDRANT_DIR} (is a service using it? stop "
                 "it, or set RETRIEVAL_QDRANT_URL to a server)")
        raise QdrantUnavailable(f"cannot open {where}: {e}") from e
    except BaseException:
        close()
        raise


def connect(url: str | None, *, data_dir: Path, api_key: str | None = None) -> QdrantClient:
    """A client for a server URL (with its API key, if it asks for one), ``":memory:"`` (tests), or embedded
    local mode under data_dir/qdrant."""
    if url == MEMORY:
        return QdrantClient(location=MEMORY)
    if url:
        return QdrantClient(url=url, api_key=api_key)
    path = Path(data_dir) / QDRANT_DIR
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


def open_qdrant_store(*, url: str | None, data_dir: Path, collection: str, spec: ModelSpec,
                      check: bool = True, window_quantization: str = "none",
                      api_key: str | None = None) -> QdrantStore:
    """`window_quantization` ("none" or "int8"): of the windows collections the store creates."""
    with reaching(url, data_dir):
        client = connect(url, data_dir=data_dir, api_key=api_key)
    with reaching(url, data_dir, client.close):  # a refused model: the folder's lock freed now, not at exit
        return QdrantStore(client, collection=collection, spec=spec,
                           local=url is None or url == MEMORY, check=check,
                           folder=None if url else Path(data_dir) / QDRANT_DIR,
                           window_quantization=window_quantization)


def on_server(url: str, collection: str, *, api_key: str | None = None) -> bool:
    """Whether the Qdrant server at `url` holds `collection` (the store's alias); QdrantUnavailable when it
    does not answer (or refuses the key)."""
    with reaching(url, Path()):
        client = connect(url, data_dir=Path(), api_key=api_key)
    with reaching(url, Path()):
        try:
            return client.collection_exists(collection)
        finally:
            client.close()


def open_existing(*, url: str | None, data_dir: Path, collection: str,
                  api_key: str | None = None) -> QdrantStore | None:
    """The collection as it is (any model), or None where there is none; nothing is created."""
    if url == MEMORY or (not url and not (Path(data_dir) / QDRANT_DIR).is_dir()):
        return None
    with reaching(url, data_dir):
        client = connect(url, data_dir=data_dir, api_key=api_key)
    with reaching(url, data_dir, client.close):
        if not client.collection_exists(collection):
            client.close()
            return None
        return QdrantStore(client, collection=collection, spec=ModelSpec(), local=not url, check=False)
