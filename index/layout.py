"""The data directory's layout (RETRIEVAL_DATA_DIR): every file and folder the service keeps there is named
here, once; every other module asks this one.

    index.sqlite[-wal,-shm]  the clip database of the FAISS backend (records, vectors, logits, windows, words)
    faiss/                   its FAISS caches: clips' index files, and faiss/windows/ for the windows'
    qdrant/                  embedded Qdrant's folder (when no Qdrant server is configured)
    audio/<sha256>.<ext>     the stored copies of uploaded clips (a clip's location, relative to the folder)
    incoming/<sha256>.<store>.upload  uploads acknowledged and waiting for PaSST (their jobs: jobs.sqlite)
    jobs.sqlite              the ingest queue (of every store of the folder; each job names its store)
    ingest-<store>.lock      held by the one ingest worker of a store of the folder
    cache/                   derived files (tag-name embeddings, exported ONNX text models)
    loaded-shards-<store>.json  the bulk loader's ledger of shards loaded into one store
    loaded-shards-<store>.loading  its journal of the clips a stopped load had yet to replace for
    reread-metadata-<store>.log `index reread-metadata`'s ledger of clips whose files it read, one store
    stores.txt               every store that has opened the folder, a line each (they share audio/)
    .restore-moving          while a restore moves its staged entries in: the staging folder's name
"""

import logging
import re
from pathlib import Path

from retrieval.durable import append_line, write_text_atomically

log = logging.getLogger(__name__)

CLIP_DB = "index.sqlite"
FAISS_DIR = "faiss"
FAISS_WINDOWS_DIR = "windows"  # inside FAISS_DIR
QDRANT_DIR = "qdrant"
AUDIO_DIR = "audio"
INCOMING_DIR = "incoming"
QUEUE_FILE = "jobs.sqlite"
CACHE_DIR = "cache"
STORES_FILE = "stores.txt"
FAISS_STORE = "faiss"  # the FAISS store's name (StoreConfig.name); a Qdrant store's is qdrant-<collection>
# a Qdrant store's collections: its clips' alias `<name>` names a generation `<name>-g<N>`, its windows' alias
# `<name>-windows` one `<name>-windows-g<N>`
QDRANT_WINDOWS = "-windows"
# on a Qdrant server, a restore builds the store `<name>` beside it under the alias `<name>-restoring`
QDRANT_STAGED = "-restoring"
QDRANT_GENERATION = re.compile(r"(?P<alias>.*)-g(?P<n>\d+)")


def upload_location(sha256: str, extension: str) -> str:
    """Where a stored upload copy lies, relative to the data directory (its clip's `location`)."""
    return f"{AUDIO_DIR}/{sha256}.{extension}"


def audio_file(data_dir: Path, location: str, stored_copy: bool) -> Path:
    """Where a clip's audio is read: an upload's stored copy (its location relative to the data directory),
    or the file it was indexed from, where it lies."""
    return Path(data_dir) / location if stored_copy else Path(location)


def incoming_location(sha256: str, store_name: str) -> str:
    """Where an upload acknowledged for the store `store_name` waits for its worker, relative to the data
    directory (another store's upload of the same bytes is another file: each job removes its own)."""
    return f"{INCOMING_DIR}/{sha256}.{store_name}.upload"


RESTORE_MOVING = ".restore-moving"  # names the staging folder of a restore moving its entries into place
INGEST_LOCKS = "ingest-*.lock"  # every store's worker lock (a glob in the data directory)


def ingest_lock(data_dir: Path, store_name: str) -> Path:
    """The lock the one ingest worker of the store `store_name` holds in its data directory."""
    return Path(data_dir) / INGEST_LOCKS.replace("*", store_name)


def shard_ledger(data_dir: Path, store_name: str) -> Path:
    """The bulk loader's record of the shards loaded into the store called `store_name`."""
    return Path(data_dir) / f"loaded-shards-{store_name}.json"


def temporary_folders(data_dir: Path) -> list[Path]:
    """The folders of the data directory, besides those of the stores and uploads, where whole files are
    written beside their name (retrieval.durable.atomic_path: the ledgers, stores.txt, the tag-name cache),
    so that a writer killed mid-write leaves a hidden `.NAME.*.tmp` there."""
    return [Path(data_dir), Path(data_dir) / CACHE_DIR]


def shard_journal(ledger: Path) -> Path:
    """Beside a bulk loader's ledger, its journal of the clips a load holds for replacement
    (index.ingest.bulk_load.Journal)."""
    return Path(ledger).with_suffix(".loading")


def metadata_ledger(data_dir: Path, store_name: str) -> Path:
    """`retrieval index reread-metadata`'s record of the clips of the store `store_name` it has read."""
    return Path(data_dir) / f"reread-metadata-{store_name}.log"


def qdrant_generation(alias: str, n: int) -> str:
    """The physical Qdrant collection of generation `n` of the alias `alias`."""
    return f"{alias}-g{int(n)}"


def split_generation(name: str) -> tuple[str, int] | None:
    """(alias, N) of a physical Qdrant collection `<alias>-g<N>`; None for another name."""
    m = QDRANT_GENERATION.fullmatch(name)
    return (m["alias"], int(m["n"])) if m else None


def qdrant_name_taken(name: str) -> bool:
    """Whether a collection named `name` would be another's windows (`-windows`), generation (`-g<N>`) or
    restore in progress (`-restoring`, emptied by the next restore of the store it stages)."""
    return name.endswith((QDRANT_WINDOWS, QDRANT_STAGED)) or split_generation(name) is not None


def stores_of(data_dir: Path, name: str | None = None) -> set[str]:
    """The stores that keep their clips in this data directory: `name` registered among them first (a line
    of STORES_FILE, once), unless None. Stored uploads are named by their content (audio/<sha256>.<ext>),
    so with more than one store an upload's copy may be another store's clip too: none may be removed as
    an orphan, or with a clip. A folder from before the file was kept starts with the stores found in it."""
    path = Path(data_dir) / STORES_FILE
    fresh = not path.is_file()
    known = (_found_stores(Path(data_dir)) if fresh
             else set(path.read_text(encoding="utf-8").splitlines()) - {""})
    if name is None or (name in known and not fresh):
        return known
    try:
        if fresh:
            write_text_atomically(path, "".join(f"{store}\n" for store in sorted(known | {name})))
        else:
            append_line(path, name)
    except OSError as e:  # a folder this process may not write: the store is counted, not listed
        log.warning("cannot list the store %s in %s: %s", name, path, e)
    return known | {name}


def _found_stores(data_dir: Path) -> set[str]:
    """The stores a data directory holds on disk: the FAISS store's database, embedded Qdrant's
    collections."""
    found = {FAISS_STORE} if (data_dir / CLIP_DB).is_file() else set()
    return found | {f"qdrant-{name}" for name in qdrant_collections(data_dir)}


def qdrant_collections(data_dir: Path) -> set[str]:
    """The clips' collections of embedded Qdrant in the data directory: its folders `<name>-g<N>` (or
    `<name>`), less their windows' (`<name>-windows-g<N>`)."""
    folder = Path(data_dir) / QDRANT_DIR / "collection"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    bases = {(split_generation(n) or (n, 0))[0] for n in names}
    return {b for b in bases if not (b.endswith(QDRANT_WINDOWS) and b.removesuffix(QDRANT_WINDOWS) in bases)}
