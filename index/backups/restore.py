"""`retrieval restore`: a backup (:mod:`index.backups.backup`) back into an empty store of either backend.

1. The whole file is verified before anything else (:func:`open_backup`): the ZIP, its digest, the manifest,
   every member's size and sha256, the tables' schemas and ids, every path a member would be written to.
   A truncated, damaged or foreign file raises :class:`BackupInvalid` naming what is wrong.
2. The backup's model must be the configured one (vectors belong to one head and its encoders).
3. A target that holds clips, uploads or waiting jobs is refused (:class:`RestoreRefused`): never a merge.
4. The store is built in a staging folder beside the target (``.<name>.restore-<pid>`` in the target's
   parent; for a Qdrant server, a collection ``<collection>-restoring``) and moved into place at the end,
   each entry by one rename, the clip database last. Until then the target is untouched, so a restore
   killed midway (SIGKILL) leaves it as it was; the next restore removes the dead one's staging folder.

Ids, times added and the source's next id are kept: the restored store answers every query as the source
did and never hands out an id the source had used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from index.backups.archive import Archive, BackupError, BackupInvalid, open_archive
from index.backups.backup import (
    AUDIO_PREFIX,
    BAR_FORMAT,
    CLIPS,
    FORMAT,
    INCOMING_PREFIX,
    JOBS,
    JOBS_SCHEMA,
    MANIFEST,
    METADATA_COLUMNS,
    READABLE,
    ROW_GROUP,
    clips_schema,
)
from index.faiss.clip_db import stored_clips
from index.ingest.queue import JobQueue
from index.layout import AUDIO_DIR, CLIP_DB, FAISS_DIR, INCOMING_DIR, QDRANT_DIR, QUEUE_FILE
from index.store.contract import ClipRecord, Tag, VectorStore
from index.store.metadata import Metadata
from index.stores import StoreConfig
from retrieval.config import N_TAGS
from retrieval.durable import fsync_path
from retrieval.model_spec import PASST_FIELDS, ModelSpec

log = logging.getLogger(__name__)

STAGING_TAG = ".restore-"
STAGED_ALIAS_SUFFIX = "-restoring"


class RestoreRefused(BackupError):
    """The target cannot take this backup (it holds clips, or another model is configured); nothing was
    changed."""


@dataclass
class RestoreReport:
    target: str
    clips: int = 0
    uploads: int = 0
    jobs: int = 0
    jobs_without_bytes: int = 0
    referenced_missing: list[int] = field(default_factory=list)  # clip ids whose indexed file is not here
    referenced_written: int = 0
    problems: list[dict] = field(default_factory=list)  # what the backup itself recorded
    seconds: float = 0.0


# -- reading a backup ----------------------------------------------------------------------------------------
@dataclass
class Backup:
    """A verified backup, open (its members are read from a memory map of the file)."""

    path: Path
    archive: Archive
    manifest: dict
    spec: ModelSpec

    @property
    def next_id(self) -> int:
        return int(self.manifest.get("next_id") or 1)

    @property
    def format(self) -> str:
        return str(self.manifest["format"])

    def _table(self, name: str) -> pq.ParquetFile:
        return pq.ParquetFile(pa.BufferReader(pa.py_buffer(self.archive.view(name))))

    def clips(self) -> Iterator[tuple[list[ClipRecord], np.ndarray, np.ndarray, list[str | None]]]:
        """(records, vectors (n, D), logits (n, 527), the member holding each clip's bytes or None)."""
        dim = int(self.spec.dim or 0)
        for batch in self._table(CLIPS).iter_batches(batch_size=ROW_GROUP):
            cols = {name: batch.column(name) for name in batch.schema.names}
            py = {k: cols[k].to_pylist() for k in ("id", "name", "location", "sha256", "duration",
                                                  "sample_rate", "added_at", "stored_copy", "tags", "member",
                                                  *(c for c in METADATA_COLUMNS if c in cols))}
            records = [ClipRecord(id=int(py["id"][i]), name=py["name"][i], location=py["location"][i],
                                  sha256=py["sha256"][i], duration=float(py["duration"][i]),
                                  sample_rate=int(py["sample_rate"][i]), added_at=float(py["added_at"][i]),
                                  stored_copy=bool(py["stored_copy"][i]),
                                  tags=tuple(Tag(t["label"], float(t["probability"])) for t in py["tags"][i]),
                                  meta=_metadata(py, i))
                       for i in range(batch.num_rows)]
            vectors = cols["vector"].flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
            logits = cols["logits"].flatten().to_numpy(zero_copy_only=False).reshape(-1, N_TAGS)
            yield records, vectors.astype(np.float32), logits.astype(np.float32), py["member"]

    def jobs(self) -> list[dict]:
        return self._table(JOBS).read().to_pylist()

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Backup:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _metadata(py: dict, i: int) -> Metadata:
    """Row i's user metadata (none in a backup of the first format)."""
    if "description" not in py:
        return Metadata()
    return Metadata.of(description=py["description"][i] or "", tags=py["user_tags"][i] or (),
                       fields=dict(py["fields"][i] or ()))


def open_backup(path: Path, *, progress: bool = False) -> Backup:
    """The backup at `path`, all of it verified (see the module docstring), or BackupInvalid."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else 0
    with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc="verify", bar_format=BAR_FORMAT,
              disable=not progress) as bar:
        archive = open_archive(path, on_bytes=bar.update)
    try:
        manifest = _manifest(path, archive)
        spec = _spec(path, manifest)
        backup = Backup(path, archive, manifest, spec)
        _check_tables(backup)
    except BaseException:
        archive.close()
        raise
    return backup


def _manifest(path: Path, archive: Archive) -> dict:
    if MANIFEST not in archive.members:
        raise BackupInvalid(f"{path} is a ZIP file sealed like a backup but holds no {MANIFEST}")
    try:
        manifest = json.loads(archive.read(MANIFEST))
        listed = manifest["members"]
        fmt = manifest["format"]
        if not isinstance(listed, dict):
            raise TypeError("members is not an object")
    except (ValueError, KeyError, TypeError) as e:
        raise BackupInvalid(f"{path}: {MANIFEST} is damaged ({e})") from None
    if fmt not in READABLE:
        newer = isinstance(fmt, str) and fmt.startswith(FORMAT.split("/")[0] + "/")
        raise BackupInvalid(f"{path} is a backup of format {fmt!r}, " + (
            f"made by a newer version; this one reads {' and '.join(READABLE)}" if newer
            else "not one this project writes"))
    missing = sorted(set(listed) - set(archive.members))
    extra = sorted(set(archive.members) - set(listed) - {MANIFEST})
    if missing:
        raise BackupInvalid(f"{path} lacks members its manifest lists: {', '.join(missing[:5])}"
                            f"{' ...' if len(missing) > 5 else ''} (the file is incomplete)")
    if extra:
        raise BackupInvalid(f"{path} holds members its manifest does not list: {', '.join(extra[:5])}")
    for name, want in sorted(listed.items()):
        got = archive.members[name]
        if not isinstance(want, dict) or got.size != want.get("size") or got.sha256 != want.get("sha256"):
            raise BackupInvalid(f"{path}: member {name} is damaged (its bytes do not have the size and "
                                "sha256 the manifest records)")
    if not archive.intact:
        raise BackupInvalid(f"{path} was changed after it was written: every member is intact but the file's "
                            "digest does not match (its ZIP headers are damaged)")
    return manifest


def _spec(path: Path, manifest: dict) -> ModelSpec:
    try:
        spec = ModelSpec.from_dict(manifest["model_spec"])
    except (KeyError, TypeError, ValueError) as e:
        raise BackupInvalid(f"{path}: the manifest's model_spec is unreadable ({e})") from None
    if not spec.dim:
        raise BackupInvalid(f"{path}: the manifest's model_spec has no vector size")
    return spec


def _check_tables(b: Backup) -> None:
    """Schemas, row counts, ids, and every path a member would be written to, before anything is written."""
    for name, schema in ((CLIPS, clips_schema(int(b.spec.dim or 0), fmt=b.format)), (JOBS, JOBS_SCHEMA)):
        if name not in b.archive.members:
            raise BackupInvalid(f"{b.path} holds no {name}")
        try:
            got = b._table(name).schema_arrow
        except (pa.ArrowException, OSError) as e:
            raise BackupInvalid(f"{b.path}: {name} is not a readable Parquet file ({e})") from None
        if not got.equals(schema):
            raise BackupInvalid(f"{b.path}: {name} does not have the columns of {b.format} "
                                f"(vectors of {b.spec.dim} floats)")
    table = b._table(CLIPS).read(columns=["id", "sha256", "location", "stored_copy", "member"])
    if table.num_rows != b.manifest.get("clips"):
        raise BackupInvalid(f"{b.path}: {CLIPS} has {table.num_rows} rows, the manifest says "
                            f"{b.manifest.get('clips')}")
    ids = table.column("id").to_numpy()
    if len(ids) and (ids[0] < 1 or (np.diff(ids) <= 0).any()):
        raise BackupInvalid(f"{b.path}: the clip ids are not ascending and distinct")
    if len(set(table.column("sha256").to_pylist())) != len(ids):
        raise BackupInvalid(f"{b.path}: two clips have the same sha256")
    for id_, location, stored, member in zip(ids.tolist(), table.column("location").to_pylist(),
                                             table.column("stored_copy").to_pylist(),
                                             table.column("member").to_pylist(), strict=True):
        if member is not None and member not in b.archive.members:
            raise BackupInvalid(f"{b.path}: clip {id_}'s bytes should be member {member}, which is not there")
        if stored and member is not None and (member != location or not _inside(location, AUDIO_PREFIX)):
            raise BackupInvalid(f"{b.path}: clip {id_}'s stored copy {location!r} is not a file under audio/")
    for job in b.jobs():
        if not _inside(job["location"], INCOMING_PREFIX):
            raise BackupInvalid(f"{b.path}: job {job['id']}'s bytes {job['location']!r} are not under "
                                "incoming/")
        if job["member"] is not None and job["member"] not in b.archive.members:
            raise BackupInvalid(f"{b.path}: job {job['id']}'s bytes should be member {job['member']}")


def _inside(location: str, prefix: str) -> bool:
    """A two-part relative path under `prefix` (what the store and the queue write), nothing that escapes."""
    p = PurePosixPath(location)
    return (isinstance(location, str) and location.startswith(prefix) and len(p.parts) == 2
            and ".." not in p.parts and "\\" not in location and not p.is_absolute())


# -- the model and the target --------------------------------------------------------------------------------
def require_model(b: Backup, configured: ModelSpec) -> None:
    """CheckpointMismatch, saying what to configure, unless the backup's vectors belong to `configured`."""
    if b.spec.diff(configured, only=PASST_FIELDS):
        fix = ("its logits come from another PaSST tagger: configure the tagger it was made with "
               "(RETRIEVAL_PASST_WEIGHTS) to restore it")
    else:
        fix = ("configure the text model and head it was made with (RETRIEVAL_TEXT_MODEL, "
               "RETRIEVAL_CHECKPOINT) to restore it; afterwards `retrieval index reproject --checkpoint "
               "CKPT` moves it to another head")
    b.spec.require_match(configured, what=f"the backup {b.path}", fix=fix)


def target_holds(config: StoreConfig, *, jobs_file: str = QUEUE_FILE) -> list[str]:
    """What the target holds that a restore would have to merge or overwrite (nothing: [])."""
    data_dir = Path(config.data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        return [f"{data_dir} is a file, not a folder"]
    holds = []
    if config.backend == "faiss":
        n = stored_clips(data_dir / CLIP_DB)
        if n:
            holds.append(f"{n} clips")
    else:
        holds += _qdrant_holds(config)
    audio = data_dir / AUDIO_DIR
    if audio.is_dir():
        files = [p for p in audio.iterdir() if not p.name.startswith(".")]
        if files:
            holds.append(f"{len(files)} files in {AUDIO_DIR}/")
    queue_path = data_dir / jobs_file
    if queue_path.is_file():
        queue = JobQueue(queue_path)
        try:
            if depth := queue.depth():
                holds.append(f"{depth} uploads waiting in the ingest queue")
        finally:
            queue.close()
    return holds


def _qdrant_holds(config: StoreConfig) -> list[str]:
    from index.qdrant.store import connect
    from index.qdrant.windows import SUFFIX as WINDOWS_SUFFIX

    if not config.qdrant_url and not (Path(config.data_dir) / QDRANT_DIR).is_dir():
        return []
    try:
        client = connect(config.qdrant_url, data_dir=Path(config.data_dir))
    except RuntimeError as e:  # the embedded engine's folder lock
        raise RestoreRefused(f"the embedded Qdrant store in {config.data_dir} is open in another process "
                             f"(stop the service first): {e}") from None
    try:
        names = [c.name for c in client.get_collections().collections]
        alias = config.qdrant_collection
        aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        ours = {aliases[a] for a in (alias, alias + WINDOWS_SUFFIX) if a in aliases}  # clips, windows
        holds = []
        if alias in names:
            holds.append(f"a Qdrant collection named {alias!r} that is not an alias of this store")
        if alias in aliases and (n := client.count(aliases[alias], exact=True).count):
            holds.append(f"{n} clips")
        others = [n for n in names if n not in ours and not n.startswith(alias + STAGED_ALIAS_SUFFIX)]
        if not config.qdrant_url and others:  # the folder moves as a whole: other collections would go
            holds.append(f"other Qdrant collections in {QDRANT_DIR}/ ({', '.join(sorted(others))})")
        return holds
    finally:
        client.close()


# -- restoring -----------------------------------------------------------------------------------------------
def restore(path: Path, config: StoreConfig, *, configured: ModelSpec | Callable[[], ModelSpec] | None,
            progress: bool = False, restore_referenced: bool = False,
            jobs_file: str = QUEUE_FILE) -> RestoreReport:
    """Restore the backup at `path` into the empty store of `config` (see the module docstring).
    `configured`: the model the store will be served with, or what builds it once the file is verified
    (None: not checked)."""
    t0 = time.time()
    data_dir = Path(config.data_dir)
    if config.backend == "qdrant" and config.qdrant_url == ":memory:":  # index.qdrant.store.MEMORY
        raise RestoreRefused("a restore into Qdrant ':memory:' would vanish with this process; "
                             "restore into a server or the embedded store (RETRIEVAL_QDRANT_URL unset)")
    with open_backup(path, progress=progress) as b:
        if configured is not None:
            require_model(b, configured() if callable(configured) else configured)
        holds = target_holds(config, jobs_file=jobs_file)
        qdrant = config.backend == "qdrant"
        where = f"Qdrant collection {config.qdrant_collection!r} with {data_dir}" if qdrant else str(data_dir)
        if holds:
            other = "another RETRIEVAL_QDRANT_COLLECTION or " if qdrant else ""
            raise RestoreRefused(f"{where} already holds {', '.join(holds)}; a restore never merges into or "
                                 f"overwrites a collection: restore into {other}a new, empty "
                                 "RETRIEVAL_DATA_DIR, or move this one away first (nothing was changed)")
        report = RestoreReport(target=where, problems=list(b.manifest.get("problems") or []))
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(data_dir)
        staging = data_dir.parent / f".{data_dir.name}{STAGING_TAG}{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            store = _build(b, staging, config, report, progress=progress, jobs_file=jobs_file)
            _commit(staging, data_dir, config, store, jobs_file=jobs_file)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _referenced(b, report, write=restore_referenced)
    report.seconds = time.time() - t0
    log.info("restored %d clips, %d uploads and %d waiting jobs into %s in %.1f s", report.clips,
             report.uploads, report.jobs, where, report.seconds)
    return report


def _remove_dead_staging(data_dir: Path) -> None:
    """Staging folders of restores that were killed (their process is gone)."""
    for path in data_dir.parent.glob(f".{data_dir.name}{STAGING_TAG}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            log.info("removing %s, left by a restore that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open_staged(staging: Path, config: StoreConfig, spec: ModelSpec) -> VectorStore:
    if config.backend == "faiss":
        from index.faiss.store import FaissStore

        # written once, at close: a file per chunk would rewrite the whole index again and again
        return FaissStore(staging, spec, kind=config.index_kind, persist_every=1 << 62,
                          search_threads=config.search_threads)
    from index.qdrant.store import open_qdrant_store

    if config.qdrant_url:  # a server: the collection is staged beside the target's, under another alias
        alias = config.qdrant_collection + STAGED_ALIAS_SUFFIX
        store = open_qdrant_store(url=config.qdrant_url, data_dir=staging, collection=alias, spec=spec,
                                  check=False)
        if store.count():  # left by a restore that was killed: start again
            store.remove(store.ids().tolist())
        return store
    return open_qdrant_store(url=None, data_dir=staging, collection=config.qdrant_collection, spec=spec)


def _build(b: Backup, staging: Path, config: StoreConfig, report: RestoreReport, *, progress: bool,
           jobs_file: str) -> VectorStore:
    store = _open_staged(staging, config, b.spec)
    try:
        (staging / AUDIO_DIR).mkdir(exist_ok=True)
        total = int(b.manifest.get("clips") or 0)
        with tqdm(total=total, unit="clip", desc="restore", disable=not progress) as bar:
            for records, vectors, logits, members in b.clips():
                for r, member in zip(records, members, strict=True):
                    if r.stored_copy and member is not None:
                        _write_member(b, member, staging / r.location)
                        report.uploads += 1
                store.restore_many(records, vectors, logits)
                report.clips += len(records)
                bar.update(len(records))
        store.restore_many([], np.empty((0, store.dim), np.float32), np.empty((0, N_TAGS), np.float32),
                           next_id=b.next_id)
        _restore_jobs(b, staging, report, jobs_file=jobs_file)
    except BaseException:
        store.close()
        raise
    if config.backend == "qdrant" and config.qdrant_url:
        return store  # committed (and closed) by moving the alias
    store.close()
    return store


def _write_member(b: Backup, member: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "xb") as f:
        f.write(b.archive.view(member))
        f.flush()
        os.fsync(f.fileno())


def _restore_jobs(b: Backup, staging: Path, report: RestoreReport, *, jobs_file: str) -> None:
    jobs = b.jobs()
    if not jobs:
        return
    queue = JobQueue(staging / jobs_file)
    try:
        for job in jobs:  # in id order: the queue keeps its order (job ids are the new queue's own)
            if job["member"] is None:
                report.jobs_without_bytes += 1
                continue
            _write_member(b, job["member"], staging / job["location"])
            queue.enqueue(name=job["name"], sha256=job["sha256"], location=job["location"],
                          windows_total=int(job["windows_total"]), fields=json.loads(job["fields"]))
            report.jobs += 1
    finally:
        queue.close()


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


def _commit(staging: Path, data_dir: Path, config: StoreConfig, store: VectorStore, *,
            jobs_file: str) -> None:
    """Move the staged store into place: the whole folder in one rename where the target is absent or
    empty, else entry by entry (what the target had of them is set aside and removed), the clip database
    last. A Qdrant server's staged collection then takes the configured name, in one alias update."""
    server = config.backend == "qdrant" and bool(config.qdrant_url)
    try:
        _fsync_tree(staging)
        try:
            os.rename(staging, data_dir)  # the target is absent or an empty folder: one step
        except OSError:
            aside = staging / ".replaced"
            aside.mkdir()
            for name in (AUDIO_DIR, INCOMING_DIR, jobs_file, QDRANT_DIR, FAISS_DIR, CLIP_DB):
                if not (staging / name).exists():
                    continue
                companions = [f"{name}-wal", f"{name}-shm"] if name.endswith(".sqlite") else []
                for part in [name, *companions]:  # a stale WAL must never meet the new database
                    if (data_dir / part).exists():
                        os.rename(data_dir / part, aside / part)
                os.rename(staging / name, data_dir / name)
            fsync_path(data_dir)
        fsync_path(data_dir.parent)
        if server:
            from index.qdrant.store import QdrantStore

            assert isinstance(store, QdrantStore)
            store.rename(config.qdrant_collection)
    finally:
        if server:
            store.close()


def _referenced(b: Backup, report: RestoreReport, *, write: bool) -> None:
    """Files indexed where they lie: say which are not on this machine; with `write`, put the backup's copy
    where one is missing (never over an existing file)."""
    for entry in b.manifest.get("referenced") or []:
        location = Path(entry["location"])
        if location.is_file():
            continue
        if write and entry.get("member") and location.is_absolute():
            try:
                _write_member(b, entry["member"], location)
                report.referenced_written += 1
                continue
            except OSError as e:
                log.warning("could not write %s back: %s", location, e)
        report.referenced_missing.append(int(entry["id"]))


def describe_problems(problems: list[dict]) -> list[str]:
    return [f"clip {p.get('id')}: {p.get('location')}: {p.get('problem')}" for p in problems]

