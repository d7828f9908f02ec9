"""What a backup reads: the clips of either backend with their windows and peaks, and the ingest queue's
waiting jobs.

FAISS: the clip database is copied with SQLite's online backup (one read transaction: a consistent point in
time while writers go on in WAL mode) and everything, windows and peaks included, is read from that private
copy. Qdrant (no snapshot across points): the live collection, each clip one point, wholly in or out; a
clip's windows are read after its point, and a clip no longer there once they are read (deleted meanwhile:
its windows may be gone) is left out whole (:attr:`Source.present`); a re-projection meanwhile (every vector
and window changed) fails the backup (:attr:`Source.verify`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from index.backups.archive import BackupError
from index.backups.format import ROW_GROUP
from index.faiss.clip_db import ClipDB
from index.faiss.schema import MIGRATIONS
from index.faiss.store import stored_spec
from index.ingest.jobs import SCHEMA_VERSION
from index.ingest.queue import ACTIVE, Job, JobQueue
from index.layout import CLIP_DB, QUEUE_FILE
from index.sqlite_conn import copy_live, refuse_newer
from index.store.records import Chunk, ClipRecord, Timeline
from index.stores import StoreConfig
from retrieval.config import N_TAGS
from retrieval.model_spec import ModelSpec
from retrieval.waveform import PEAKS


@dataclass
class Source:
    """What a backup reads: the model, the next id, every clip (in id order) and whether one still exists."""

    backend: str
    spec: ModelSpec
    next_id: int
    count: int
    chunks: Callable[[], Iterator[Chunk]]
    records: Callable[[], Iterator[list[ClipRecord]]]  # the same clips without vectors and logits
    still_there: Callable[[int], bool]  # in the live store now
    describe: dict
    close: Callable[[], None]
    # the windows (with their logits) and peaks of the ids that have windows, read as the clips are
    timelines: Callable[[list[int]], dict[int, Timeline]]
    window_bytes: Callable[[], int]  # the windows' and peaks' bytes as stored, about (the progress bar's)
    verify: Callable[[], None] = lambda: None  # raises if the source changed under the backup
    # of these ids (whose windows were just read), those whose clip is still in the source: a snapshot's all
    present: Callable[[list[int]], set[int]] = set


def open_source(config: StoreConfig, work: Path) -> Source:
    """The clips of `config`'s store (a FAISS store's from a copy of its database in the folder `work`)."""
    return _faiss_source(config, work) if config.backend == "faiss" else _qdrant_source(config)


def _faiss_source(config: StoreConfig, work: Path) -> Source:
    live = Path(config.data_dir) / CLIP_DB
    if not live.is_file():
        raise BackupError(f"there is no collection in {config.data_dir} (no {CLIP_DB}); nothing to back up")
    refuse_newer(live, len(MIGRATIONS))  # named as the user knows it, not as its copy
    copy = work / CLIP_DB
    copy_live(live, copy)
    db = ClipDB(copy)
    spec = stored_spec(db)
    if spec is None or not spec.dim:
        db.close()
        raise BackupError(f"the collection in {config.data_dir} records no model; open it once with "
                          "`retrieval index stats`, then back it up")
    live_db: list[ClipDB] = []

    def still_there(id_: int) -> bool:
        if not live_db:
            live_db.append(ClipDB(live))
        return live_db[0].get(id_) is not None

    def close() -> None:
        db.close()
        for d in live_db:
            d.close()

    def records() -> Iterator[list[ClipRecord]]:  # the copy does not change: pages by position are exact
        offset = 0
        while page := db.page(offset=offset, limit=ROW_GROUP):
            yield page
            offset += len(page)

    def timelines(ids: list[int]) -> dict[int, Timeline]:  # from the copy: the clips' own state
        windows = db.windows_of(ids, int(spec.dim or 0), logits=True)
        peaks = db.peaks_of(list(windows))
        return {i: Timeline(w, peaks[i]) for i, w in windows.items() if i in peaks}

    return Source("faiss", spec, db.next_id(), db.count(),
                  lambda: db.export(dim=int(spec.dim or 0), chunk=ROW_GROUP), records, still_there,
                  {"backend": "faiss", "data_dir": str(config.data_dir), "index_kind": config.index_kind},
                  close, timelines, db.window_bytes)


def _qdrant_source(config: StoreConfig) -> Source:
    from index.qdrant.open import open_existing

    try:
        store = open_existing(url=config.qdrant_url, data_dir=Path(config.data_dir),
                              collection=config.qdrant_collection, api_key=config.qdrant_api_key)
    except RuntimeError as e:  # the embedded engine's folder lock
        raise BackupError(f"cannot open the embedded Qdrant store in {config.data_dir}: {e} (embedded mode "
                          "serves one process at a time: stop the service for the backup, or use a Qdrant "
                          "server)") from None
    if store is None:
        raise BackupError(f"there is no Qdrant collection {config.qdrant_collection!r} to back up")
    spec, before = store.spec, store.stats()["collection"]

    def verify() -> None:
        if store.stats()["collection"] != before:
            raise BackupError("the collection was re-projected while the backup ran; run the backup again")

    def window_bytes() -> int:  # float16 vectors and logits and two float64 spans a window, PEAKS a clip
        return store.window_count() * ((int(spec.dim or 0) + N_TAGS) * 2 + 16) + store.count() * PEAKS

    return Source("qdrant", spec, store.next_id(), store.count(), lambda: store.export(chunk=ROW_GROUP),
                  lambda: (records for records, _, _ in store.export(chunk=ROW_GROUP)),
                  lambda id_: store.get(id_) is not None,
                  {"backend": "qdrant", "data_dir": str(config.data_dir),
                   "qdrant_collection": config.qdrant_collection, "qdrant_server": bool(config.qdrant_url)},
                  store.close, lambda ids: store.timelines(ids, logits=True), window_bytes, verify,
                  lambda ids: set(store.records(ids)))


def waiting_jobs(jobs_db: Path | None, work: Path, *, store: str | None = None) -> list[Job]:
    """The queue's queued and running jobs (of the store `store`, and those queued before jobs named one;
    None: every store's), in id order, from a copy of it in the folder `work` (none when it does not
    exist)."""
    if jobs_db is None or not Path(jobs_db).is_file():
        return []
    refuse_newer(Path(jobs_db), SCHEMA_VERSION)
    copy = work / QUEUE_FILE
    copy_live(Path(jobs_db), copy)
    queue = JobQueue(copy, store=store)
    try:
        jobs: list[Job] = []
        for status in ACTIVE:
            offset = 0
            while page := queue.list(status=status, offset=offset, limit=1000):
                jobs.extend(page)
                offset += len(page)
        return sorted(jobs, key=lambda j: j.id)
    finally:
        queue.close()
