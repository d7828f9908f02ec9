"""`retrieval backup`: one file holding a whole collection (:mod:`index.backups.format`), taken while the
service and `index add` write.

Consistency. The ingest queue is copied first with SQLite's online backup API and the bytes of its waiting
jobs are read; then the clip database is copied the same way (one read transaction: a consistent point in
time, while writers go on beside it in WAL mode). Everything else is read from those private copies
(:mod:`index.backups.sources`). An upload's bytes are on disk before its record commits and are removed only
after its record is deleted, so every clip of the copy has its bytes, except one deleted since the copy was
taken, which is then left out whole (:mod:`index.backups.writer`). A job finishes (its clip committed)
before its bytes go, so an upload is in the backup either as a waiting job or as a clip. On Qdrant (no
snapshot across points) each clip is one point, wholly in or out.

Durable: written to a temporary file beside the target, fsynced and renamed (:func:`atomic_path`); any
failure, a full disk included, leaves no file behind and the store untouched.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from pathlib import Path

from tqdm import tqdm

from index.backups.archive import BackupError
from index.backups.format import BAR_FORMAT
from index.backups.reports import BackupReport
from index.backups.writer import write
from index.stores import StoreConfig
from retrieval.durable import atomic_path, backup_work_folder, make_parent, remove_dead_writers
from retrieval.errors import disk_full

log = logging.getLogger(__name__)


def backup(config: StoreConfig, path: Path, *, jobs_db: Path | None = None, with_audio: bool = True,
           with_referenced: bool = False, progress: bool = False) -> BackupReport:
    """Write the collection of `config` (and the waiting jobs of the queue `jobs_db`) to the new file `path`.

    Refuses an existing `path`. On any failure nothing is left at `path` and the store is as it was."""
    path = Path(path)
    if path.exists():
        raise BackupError(f"{path} exists; a backup never overwrites a file: choose a new name")
    t0 = time.time()
    report = BackupReport(path)
    if path.parent.is_dir():  # what backups killed before left here (a partial file, a work folder)
        remove_dead_writers(path.parent)
    work = backup_work_folder(path)
    try:
        make_parent(path)
        work.mkdir()
        with atomic_path(path) as tmp, open(tmp, "xb") as f, \
                tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="backup", disable=not progress,
                     bar_format=BAR_FORMAT) as bar:
            write(config, f, work, report, jobs_db=jobs_db, with_audio=with_audio,
                  with_referenced=with_referenced, bar=bar, started=t0)
            f.flush()
            report.size = f.tell()
            if path.exists():
                raise BackupError(f"{path} appeared while the backup was written; it was left alone")
    except OSError as e:
        if disk_full(e):
            raise BackupError(f"no space left on the device of {path}: {e.strerror}; no backup was written "
                              "(nothing partial is left) and the store is untouched") from e
        raise
    except sqlite3.OperationalError as e:
        if disk_full(e):
            raise BackupError(f"no space left for the snapshot beside {path}: {e}; no backup was written and "
                              "the store is untouched") from e
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.time() - t0
    log.info("backed up %d clips and %d waiting uploads to %s (%.1f MB) in %.1f s", report.clips, report.jobs,
             path, report.size / 1e6, report.seconds)
    return report
