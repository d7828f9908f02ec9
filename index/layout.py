"""The data directory's layout (RETRIEVAL_DATA_DIR): every file and folder the service keeps there is named
here, once; every other module asks this one.

    index.sqlite[-wal,-shm]  the clip database of the FAISS backend (records, vectors, logits, windows, words)
    faiss/                   its FAISS caches: clips' index files, and faiss/windows/ for the windows'
    qdrant/                  embedded Qdrant's folder (when no Qdrant server is configured)
    audio/<sha256>.<ext>     the stored copies of uploaded clips (a clip's location, relative to the folder)
    incoming/<sha256>.upload uploads acknowledged and waiting for PaSST (their jobs are in jobs.sqlite)
    jobs.sqlite              the ingest queue
    ingest.lock              held by the one ingest worker of the folder
    cache/                   derived files (tag-name embeddings, exported ONNX text models)
    loaded-shards-<store>.json  the bulk loader's ledger of shards loaded into one store
    reread-metadata-<store>.log `index reread-metadata`'s ledger of clips whose files it read, one store
"""

from pathlib import Path

CLIP_DB = "index.sqlite"
FAISS_DIR = "faiss"
FAISS_WINDOWS_DIR = "windows"  # inside FAISS_DIR
QDRANT_DIR = "qdrant"
AUDIO_DIR = "audio"
INCOMING_DIR = "incoming"
QUEUE_FILE = "jobs.sqlite"
INGEST_LOCK = "ingest.lock"
CACHE_DIR = "cache"


def upload_location(sha256: str, extension: str) -> str:
    """Where a stored upload copy lies, relative to the data directory (its clip's `location`)."""
    return f"{AUDIO_DIR}/{sha256}.{extension}"


def incoming_location(sha256: str) -> str:
    """Where an acknowledged upload waits for the worker, relative to the data directory."""
    return f"{INCOMING_DIR}/{sha256}.upload"


def shard_ledger(data_dir: Path, store_name: str) -> Path:
    """The bulk loader's record of the shards loaded into the store called `store_name`."""
    return Path(data_dir) / f"loaded-shards-{store_name}.json"


def metadata_ledger(data_dir: Path, store_name: str) -> Path:
    """`retrieval index reread-metadata`'s record of the clips of the store `store_name` it has read."""
    return Path(data_dir) / f"reread-metadata-{store_name}.log"
