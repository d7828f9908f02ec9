"""Pick the vector store the settings name. A backend is added here, behind index.base.VectorStore."""

from index.base import VectorStore
from retrieval.settings import Settings


def open_store(settings: Settings, fingerprint: dict, *, check: bool = True) -> VectorStore:
    """Open (or create) the store under settings.data_dir for vectors of the model `fingerprint`.

    check=False accepts a store made with another model (to re-project it); otherwise a mismatch raises
    retrieval.errors.CheckpointMismatch.
    """
    if settings.store_backend == "faiss":
        from index.faiss_store import FaissStore
        from index.vector_index import set_search_threads

        set_search_threads(settings.search_threads)  # process-wide: concurrent requests use the cores
        return FaissStore(settings.data_dir, fingerprint, kind=settings.index_kind, check=check)
    if settings.store_backend == "qdrant":
        from index.qdrant_store import open_qdrant_store

        return open_qdrant_store(url=settings.qdrant_url, data_dir=settings.data_dir,
                                 collection=settings.qdrant_collection, fingerprint=fingerprint, check=check)
    raise ValueError(f"store backend {settings.store_backend!r} is not available in this build")
