"""A restore's staging: the store built in a folder beside the target (for a Qdrant server, a collection
under another alias), then moved into place.

The staging folder is ``.<name>.restore-<pid>`` in the target's parent; a restore killed midway leaves only
it, and the next restore removes it. The move is one rename per entry, the clip database last.

The clips are read a row group (ROW_GROUP clips) at a time, and their windows and peaks from windows.parquet
(in the same id order) a row group at a time; they are stored together, clips and windows, in writes of
about WINDOW_PAGE windows (`restore_many` with their timelines), without PaSST.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index.backups.archive import BackupError, BackupInvalid
from index.backups.format import CLIPS, WINDOW_PAGE, WINDOWS
from index.backups.reader import Backup
from index.backups.reports import RestoreReport
from index.ingest.queue import JobQueue
from index.layout import (
    AUDIO_DIR,
    CLIP_DB,
    FAISS_DIR,
    INCOMING_DIR,
    INGEST_LOCKS,
    QDRANT_DIR,
    QDRANT_STAGED,
    RESTORE_MOVING,
)
from index.store.contract import VectorStore
from index.store.records import ClipRecord, Timeline
from index.stores import StoreConfig
from retrieval.config import N_TAGS
from retrieval.durable import (
    fsync_path,
    fsync_tree,
    lock_held,
    process_alive,
    remove_dead_writer_folders,
    write_text_atomically,
)
from retrieval.model_spec import ModelSpec

log = logging.getLogger(__name__)

STAGING_TAG = ".restore-"


def build_and_move_in(b: Backup, config: StoreConfig, report: RestoreReport, *, progress: bool,
                      jobs_file: str) -> None:
    """Build the store of the backup `b` in a staging folder, then move it into `config`'s place."""
    data_dir = Path(config.data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(data_dir)
    staging = data_dir.parent / f".{data_dir.name}{STAGING_TAG}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        store = _build(b, staging, config, report, progress=progress, jobs_file=jobs_file)
        _commit(staging, data_dir, config, store, jobs_file=jobs_file, backup=b.archive.digest)
    finally:
        if not (data_dir / RESTORE_MOVING).is_file():  # a move stopped midway: the next restore finishes it
            shutil.rmtree(staging, ignore_errors=True)


def _move_entries(staging: Path, data_dir: Path, jobs_file: str) -> None:
    """The staged entries into the target, the clip database last; what the target had of them set aside
    (and removed with the staging folder). Run again after a kill, it moves what is left."""
    aside = staging / ".replaced"
    aside.mkdir(exist_ok=True)
    for name in (AUDIO_DIR, INCOMING_DIR, jobs_file, QDRANT_DIR, FAISS_DIR, CLIP_DB):
        if not (staging / name).exists():
            continue
        companions = [f"{name}-wal", f"{name}-shm"] if name.endswith(".sqlite") else []
        for part in [name, *companions]:  # a stale WAL must never meet the new database
            if (data_dir / part).exists():
                if (aside / part).exists():  # the target's own, set aside by the run that was killed
                    _remove(data_dir / part)
                else:
                    os.rename(data_dir / part, aside / part)
        os.rename(staging / name, data_dir / name)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def finish_move(data_dir: Path, jobs_file: str) -> str | None:
    """A restore killed while it moved its entries into `data_dir` finished (its staging folder is whole:
    the move starts once it is built): the digest of the backup it restored ("" where its journal does not
    say), None when there was none. Refused while that restore still runs."""
    marker = Path(data_dir) / RESTORE_MOVING
    if not marker.is_file():
        return None
    journal = _journal(marker.read_text(encoding="utf-8"))
    prefix = f".{Path(data_dir).name}{STAGING_TAG}"
    name = journal["staging"]
    pid = name.removeprefix(prefix)
    if not (name.startswith(prefix) and pid.isdigit()):  # never a folder of another's to move from, or remove
        raise BackupError(f"{marker} names {name!r}, which is no restore's staging folder of {data_dir}: the "
                          "file is damaged; move the folder aside and restore into a new one")
    staging = Path(data_dir).parent / name
    if int(pid) != os.getpid() and process_alive(int(pid)):  # this process's failed
        raise BackupError(f"a restore (process {pid}) is moving into {data_dir} now: let it finish")
    if staging.is_dir():
        log.warning("finishing the restore into %s that was stopped while moving into place", data_dir)
    _move_in(staging, Path(data_dir), jobs_file)
    shutil.rmtree(staging, ignore_errors=True)
    return journal["backup"]


def _journal(text: str) -> dict[str, str]:
    """RESTORE_MOVING's {"staging": folder name, "backup": digest} (the first ones held the name alone)."""
    try:
        journal = json.loads(text)
    except ValueError:
        journal = None
    if isinstance(journal, dict) and isinstance(journal.get("staging"), str):
        return {"staging": journal["staging"], "backup": str(journal.get("backup") or "")}
    return {"staging": text.strip(), "backup": ""}


def _move_in(staging: Path, data_dir: Path, jobs_file: str) -> None:
    """The journaled move: the entries moved and made durable, then the journal (RESTORE_MOVING) removed."""
    if staging.is_dir():
        _move_entries(staging, data_dir, jobs_file)
        fsync_path(data_dir)
    (data_dir / RESTORE_MOVING).unlink()
    fsync_path(data_dir)


def held_locks(data_dir: Path) -> list[Path]:
    """The ingest workers' locks of the data directory that a process holds now (a service is running on
    it: a restore would move its database away under it, and lose the uploads it acknowledges after)."""
    return [p for p in sorted(data_dir.glob(INGEST_LOCKS)) if lock_held(p)] if data_dir.is_dir() else []


def _remove_dead_staging(data_dir: Path) -> None:
    """Staging folders of restores that were killed (their process is gone) before they moved into place
    (one named by the target's RESTORE_MOVING is finished instead, by finish_move)."""
    if (data_dir / RESTORE_MOVING).is_file():
        return
    staged = rf"\.{re.escape(data_dir.name)}{re.escape(STAGING_TAG)}(?P<pid>\d+)"
    remove_dead_writer_folders(data_dir.parent, staged, left_by="a restore")


def _open_staged(staging: Path, config: StoreConfig, spec: ModelSpec) -> VectorStore:
    if config.backend == "faiss":
        from index.faiss.store import FaissStore

        # written once, at close: a file per chunk would rewrite the whole index again and again
        return FaissStore(staging, spec, kind=config.index_kind, persist_every=1 << 62,
                          search_threads=config.search_threads, window_kind=config.window_index_kind,
                          nprobe=config.ivf_nprobe)
    from index.qdrant.open import open_qdrant_store

    if config.qdrant_url:  # a server: the collection is staged beside the target's, under another alias
        alias = config.qdrant_collection + QDRANT_STAGED
        store = open_qdrant_store(url=config.qdrant_url, data_dir=staging, collection=alias, spec=spec,
                                  check=False, window_quantization=config.qdrant_window_quantization,
                                  api_key=config.qdrant_api_key)
        if store.count():  # left by a restore that was killed: start again
            store.remove(store.ids().tolist())
        return store
    return open_qdrant_store(url=None, data_dir=staging, collection=config.qdrant_collection, spec=spec,
                             window_quantization=config.qdrant_window_quantization)


def _build(b: Backup, staging: Path, config: StoreConfig, report: RestoreReport, *, progress: bool,
           jobs_file: str) -> VectorStore:
    store = _open_staged(staging, config, b.spec)
    try:
        (staging / AUDIO_DIR).mkdir(exist_ok=True)
        total = int(b.manifest.get("clips") or 0)
        if not b.has_windows:
            report.without_windows = b.format
        timelines = _Timelines(b)
        with tqdm(total=total, unit="clip", desc="restore", disable=not progress) as bar:
            for records, vectors, logits, members in b.clips():
                for r, member in zip(records, members, strict=True):
                    if r.stored_copy and member is not None:
                        b.extract(member, staging / r.location)
                        report.uploads += 1
                    elif r.stored_copy:  # a backup --without-audio: the record without its bytes
                        report.uploads_without_audio.append(r.id)
                for start, end, page in _pages(records, timelines):  # a page of windows a write
                    try:
                        store.restore_many(records[start:end], vectors[start:end], logits[start:end],
                                           timelines=page)
                    except ValueError as e:  # the store's own checks (finite values, shapes)
                        raise BackupInvalid(f"{b.path}: the clips {records[start].id}-{records[end - 1].id} "
                                            f"or their windows in {WINDOWS} cannot be stored: {e}") from None
                    report.clips_with_windows += sum(t is not None for t in page)
                    report.windows += sum(len(t.windows.starts) for t in page if t is not None)
                report.clips += len(records)
                bar.update(len(records))
            timelines.finish()
        store.restore_many([], np.empty((0, store.dim), np.float32), np.empty((0, N_TAGS), np.float32),
                           next_id=b.next_id)
        _restore_jobs(b, staging, report, jobs_file=jobs_file, store_name=config.name)
    except BaseException:
        store.close()
        raise
    if config.backend == "qdrant" and config.qdrant_url:
        return store  # committed (and closed) by moving the alias
    store.close()
    return store


class _Timelines:
    """windows.parquet's timelines handed out clip by clip, as the clips are restored (both in id order)."""

    def __init__(self, b: Backup) -> None:
        self.path = b.path
        self._source = b.timelines()
        self._next = next(self._source, None)

    def take(self, id_: int) -> Timeline | None:
        """Clip `id_`'s timeline, None when it has none; windows of a clip before it are of no clip."""
        if self._next is not None and self._next[0] < id_:
            self.finish()
        if self._next is None or self._next[0] != id_:
            return None
        timeline = self._next[1]
        self._next = next(self._source, None)
        return timeline

    def finish(self) -> None:
        """Every timeline handed out, or BackupInvalid."""
        if self._next is not None:
            raise BackupInvalid(f"{self.path}: {WINDOWS} holds windows of clip {self._next[0]}, which is not "
                                f"in {CLIPS}")


Page = tuple[int, int, list["Timeline | None"]]  # a page of clips: start, end, and their timelines


def _pages(records: list[ClipRecord], timelines: _Timelines) -> Iterator[Page]:
    """(start, end, their timelines): consecutive clips of `records` holding about WINDOW_PAGE windows (one
    clip at least), each page's timelines read only when it is reached."""
    start = 0
    while start < len(records):
        page: list[Timeline | None] = []
        count = 0
        while start + len(page) < len(records) and (not page or count < WINDOW_PAGE):
            timeline = timelines.take(records[start + len(page)].id)
            count += 0 if timeline is None else len(timeline.windows.starts)
            page.append(timeline)
        yield start, start + len(page), page
        start += len(page)


def _restore_jobs(b: Backup, staging: Path, report: RestoreReport, *, jobs_file: str,
                  store_name: str) -> None:
    """The backup's waiting uploads queued again, as jobs of the store restored (`store_name`)."""
    jobs = b.jobs()
    if not jobs:
        return
    queue = JobQueue(staging / jobs_file, store=store_name)
    try:
        for job in jobs:  # in id order: the queue keeps its order (job ids are the new queue's own)
            if job["member"] is None:
                report.jobs_without_bytes += 1
                continue
            b.extract(job["member"], staging / job["location"])
            queue.enqueue(name=job["name"], sha256=job["sha256"], location=job["location"],
                          windows_total=int(job["windows_total"]), fields=json.loads(job["fields"]))
            report.jobs += 1
    finally:
        queue.close()


def _commit(staging: Path, data_dir: Path, config: StoreConfig, store: VectorStore, *,
            jobs_file: str, backup: str) -> None:
    """Move the staged store into place: the whole folder in one rename where the target is absent or
    empty, else entry by entry (what the target had of them is set aside and removed), the clip database
    last. A Qdrant server's staged collection then takes the configured name, in one alias update."""
    server = config.backend == "qdrant" and bool(config.qdrant_url)
    try:
        if locks := held_locks(data_dir):  # a service started while the store was built: it would lose
            raise BackupError(f"a service or ingest worker started on {data_dir} while the restore ran "
                              f"({locks[0].name} is held): stop it and restore again (nothing was changed)")
        fsync_tree(staging)
        try:
            os.rename(staging, data_dir)  # the target is absent or an empty folder: one step
        except OSError:
            # entry by entry, journaled: a restore killed midway is finished by the next (finish_move), and
            # no store opens the folder meanwhile (index/stores.py)
            write_text_atomically(data_dir / RESTORE_MOVING,
                                  json.dumps({"staging": staging.name, "backup": backup}))
            _move_in(staging, data_dir, jobs_file)
        fsync_path(data_dir.parent)
        if server:
            from index.qdrant.store import QdrantStore

            assert isinstance(store, QdrantStore)
            store.rename(config.qdrant_collection)
    finally:
        if server:
            store.close()
