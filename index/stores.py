"""Open the vector store of a backend. A backend is added here, behind index.store.contract.VectorStore."""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from index.layout import CLIP_DB, FAISS_STORE, QDRANT_DIR, RESTORE_MOVING, qdrant_collections
from index.store.contract import VectorStore
from retrieval.errors import RetrievalError
from retrieval.model_spec import ModelSpec

BACKENDS = ("faiss", "qdrant")


@dataclass(frozen=True)
class StoreConfig:
    """Where and how a collection's vectors are kept (the composition root fills it from the settings)."""

    data_dir: Path
    backend: Literal["faiss", "qdrant"] = "faiss"
    index_kind: str = "flat"  # faiss: flat, flat16, hnsw, ivf16 or ivf8
    window_index_kind: str | None = None  # faiss: auto, flat16, ivf16 or hnsw (None: the clips' kind's)
    ivf_nprobe: int | None = None  # faiss: lists an ivf16 search scans (None: the index's default)
    search_threads: int = 1  # faiss: OpenMP threads per search
    qdrant_url: str | None = None  # qdrant: a server, ":memory:", or None for embedded under data_dir
    qdrant_api_key: str | None = field(default=None, repr=False)  # qdrant: the server's, if it asks for one
    qdrant_collection: str = "clips"
    qdrant_window_quantization: Literal["none", "int8"] = "none"  # qdrant: of a windows collection created

    @property
    def name(self) -> str:
        """Names this store among others in the same data directory (the bulk loader's ledger, the folder's
        list of stores): `faiss`, `qdrant-<collection>` embedded, `qdrant-<collection>-<server>` on a
        server (another server's collection of that name is another store)."""
        if self.backend == "faiss":
            return FAISS_STORE
        server = self.qdrant_url
        where = "" if server is None else "-" + re.sub(r"[^A-Za-z0-9.]+", "_", server).strip("_")
        return f"qdrant-{self.qdrant_collection}{where}"


class NoCollection(RetrievalError):
    """A command that reads a collection was pointed at a data directory that holds none."""


def refuse_unfinished_restore(data_dir: Path) -> None:
    """NoCollection for a data directory a restore was moving into when it was stopped: half of it is the
    backup's (its uploads would be taken for orphans, a backup would hold the old, empty store)."""
    if (Path(data_dir) / RESTORE_MOVING).is_file():
        raise NoCollection(f"a restore into {data_dir} was stopped while it moved into place: run "
                           "`retrieval restore` again (with any backup file) to finish it")


def require_store(config: StoreConfig) -> None:
    """NoCollection unless the configured store is there already (a Qdrant server is asked for it): a
    mistyped data directory is said, not made into a new, empty collection by a search or a backup; nor is a
    folder a stopped restore left half moved in."""
    refuse_unfinished_restore(Path(config.data_dir))
    if config.backend == "qdrant" and config.qdrant_url is not None:
        from index.qdrant.open import MEMORY, on_server

        if config.qdrant_url != MEMORY and not on_server(config.qdrant_url, config.qdrant_collection,
                                                                  api_key=config.qdrant_api_key):
            raise NoCollection(f"no Qdrant collection {config.qdrant_collection!r} on the server at "
                               f"{config.qdrant_url} (RETRIEVAL_QDRANT_COLLECTION): `retrieval index add "
                               "FOLDER` makes one, `retrieval restore FILE` brings one back")
        return
    where = config.data_dir / (CLIP_DB if config.backend == "faiss" else QDRANT_DIR)
    if not where.exists():
        raise NoCollection(f"no collection in {config.data_dir} (RETRIEVAL_DATA_DIR; {where.name} is not "
                           "there): `retrieval index add FOLDER` makes one, `retrieval restore FILE` brings "
                           "one back")
    held = qdrant_collections(config.data_dir) if config.backend == "qdrant" else set()
    if config.backend == "qdrant" and config.qdrant_collection not in held:
        raise NoCollection(f"no Qdrant collection {config.qdrant_collection!r} in {where} "
                           f"(RETRIEVAL_QDRANT_COLLECTION; it holds {', '.join(sorted(held)) or 'none'}): "
                           "`retrieval index add FOLDER` makes one")

def open_store(config: StoreConfig, spec: ModelSpec, *, check: bool = True) -> VectorStore:
    """Open (or create) the store for vectors of the model `spec`.

    check=False accepts a store made with another model (to re-project it); otherwise a mismatch raises
    retrieval.errors.CheckpointMismatch. A data directory a restore was moving into when it was stopped is
    refused (NoCollection): half of it is the backup's, and its uploads would be taken for orphans.
    """
    refuse_unfinished_restore(Path(config.data_dir))
    if config.backend == "faiss":
        from index.faiss.store import FaissStore

        return FaissStore(config.data_dir, spec, kind=config.index_kind, check=check,
                          search_threads=config.search_threads, window_kind=config.window_index_kind,
                          nprobe=config.ivf_nprobe)
    if config.backend == "qdrant":
        from index.qdrant.open import open_qdrant_store

        return open_qdrant_store(url=config.qdrant_url, data_dir=config.data_dir,
                                 collection=config.qdrant_collection, spec=spec, check=check,
                                 window_quantization=config.qdrant_window_quantization,
                                 api_key=config.qdrant_api_key)
    raise ValueError(f"store backend {config.backend!r} is not one of {BACKENDS}")


def open_as_it_is(config: StoreConfig) -> VectorStore:
    """The configured store as it is, with the model its vectors were made with and no model loaded: for
    the commands that only read what it holds (`index stats`, `index export-metadata`). NoCollection where
    there is none; nothing is created."""
    require_store(config)
    if config.backend == "qdrant":
        from index.qdrant.open import open_existing

        store = open_existing(url=config.qdrant_url, data_dir=Path(config.data_dir),
                              collection=config.qdrant_collection, api_key=config.qdrant_api_key)
        if store is None:
            raise NoCollection(f"no Qdrant collection {config.qdrant_collection!r} at {config.qdrant_url} "
                               "(RETRIEVAL_QDRANT_COLLECTION): `retrieval index add FOLDER` makes one")
        return store
    from index.faiss.clip_db import ClipDB
    from index.faiss.store import stored_spec

    db = ClipDB(Path(config.data_dir) / CLIP_DB)
    try:
        spec = stored_spec(db) or ModelSpec()  # none recorded: an empty store, which takes the next model
    finally:
        db.close()
    return open_store(config, spec, check=False)

