"""`retrieval restore`: a backup (:mod:`index.backups.backup`) back into an empty store of either backend.

1. The whole file is verified before anything else (:func:`index.backups.reader.open_backup`).
2. The backup's model must be the configured one (vectors belong to one head and its encoders).
3. A target that holds clips, uploads or waiting jobs is refused (:class:`RestoreRefused`): never a merge.
4. The store is built in a staging folder beside the target (for a Qdrant server, a collection
   ``<collection>-restoring``) and moved into place at the end (:mod:`index.backups.staging`). Until then the
   target is untouched, so a restore killed midway (SIGKILL) leaves it as it was.

Ids, times added and the source's next id are kept: the restored store answers every query as the source
did and never hands out an id the source had used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from index.backups.reader import Backup, open_backup
from index.backups.reports import RestoreReport
from index.backups.staging import build_and_move_in, finish_move, held_locks
from index.backups.target import RestoreRefused, require_model, target_holds
from index.layout import QUEUE_FILE
from index.stores import StoreConfig
from retrieval.model_spec import ModelSpec

log = logging.getLogger(__name__)


def restore(path: Path, config: StoreConfig, *, configured: ModelSpec | Callable[[], ModelSpec] | None,
            progress: bool = False, restore_referenced: bool = False,
            jobs_file: str = QUEUE_FILE) -> RestoreReport:
    """Restore the backup at `path` into the empty store of `config` (see the module docstring).
    `configured`: the model the store will be served with, or what builds it once the file is verified
    (None: not checked)."""
    t0 = time.time()
    data_dir = Path(config.data_dir)
    if config.backend == "qdrant" and config.qdrant_url == ":memory:":  # index.qdrant.open.MEMORY
        raise RestoreRefused("a restore into Qdrant ':memory:' would vanish with this process; "
                             "restore into a server or the embedded store (RETRIEVAL_QDRANT_URL unset)")
    if locks := held_locks(data_dir):  # its database moved away under it, the uploads it takes lost
        raise RestoreRefused(f"a service or ingest worker is running on {data_dir} ({locks[0].name} is "
                             "held): stop it, then restore (nothing was changed)")
    finished = finish_move(data_dir, jobs_file)  # a restore killed while it moved in, whatever the file
    qdrant = config.backend == "qdrant"
    where = f"Qdrant collection {config.qdrant_collection!r} with {data_dir}" if qdrant else str(data_dir)
    with open_backup(path, progress=progress) as b:
        holds = target_holds(config, jobs_file=jobs_file)
        if finished is not None and holds:
            if finished == b.archive.digest:  # this backup's restore, stopped while it moved in: done now
                report = RestoreReport(target=where, finished=", ".join(holds))
                report.seconds = time.time() - t0
                return report
            if not finished:  # a journal of an earlier version names no backup
                raise RestoreRefused(f"finished the restore into {data_dir} that was stopped while it moved "
                                     f"into place (its journal does not say of which backup): the folder "
                                     f"holds {', '.join(holds)} now; {path} was not restored again (if it is "
                                     "that backup, its restore is complete)")
            raise RestoreRefused(f"finished the restore of another backup into {data_dir}, which was stopped "
                                 f"while it moved into place: the folder holds {', '.join(holds)} now; "
                                 f"{path} was not restored (a restore never merges into a collection)")
        if configured is not None:
            require_model(b, configured() if callable(configured) else configured)
        if holds:
            other = "another RETRIEVAL_QDRANT_COLLECTION or " if qdrant else ""
            raise RestoreRefused(f"{where} already holds {', '.join(holds)}; a restore never merges into or "
                                 f"overwrites a collection: restore into {other}a new, empty "
                                 "RETRIEVAL_DATA_DIR, or move this one away first (nothing was changed)")
        report = RestoreReport(target=where, problems=list(b.manifest.get("problems") or []))
        build_and_move_in(b, config, report, progress=progress, jobs_file=jobs_file)
        _referenced(b, report, write=restore_referenced)
    report.seconds = time.time() - t0
    log.info("restored %d clips, %d uploads and %d waiting jobs into %s in %.1f s", report.clips,
             report.uploads, report.jobs, where, report.seconds)
    return report


def _referenced(b: Backup, report: RestoreReport, *, write: bool) -> None:
    """Files indexed where they lie: say which are not on this machine; with `write`, put the backup's copy
    where one is missing (never over an existing file)."""
    for entry in b.manifest.get("referenced") or []:
        location = Path(entry["location"])
        if location.is_file():
            continue
        if write and entry.get("member") and location.is_absolute():
            try:
                b.extract(entry["member"], location)
                report.referenced_written += 1
                continue
            except OSError as e:
                log.warning("could not write %s back: %s", location, e)
        report.referenced_missing.append(int(entry["id"]))
