"""`retrieval backup`: one file holding a whole collection, taken while the service and `index add` write.

The file (format ``retrieval-backup/2``; its ZIP seal is the container's own, unchanged since
``retrieval-backup/1``) is a ZIP of stored, uncompressed members (:mod:`index.backups.archive`), so
`unzip` lists it and pandas, DuckDB or pyarrow read its tables once unzipped:

    manifest.json               what the backup holds (below) and every other member's size and sha256
    clips.parquet               one row per clip: id, name, location, sha256, duration, sample_rate, added_at,
                                stored_copy, tags (list of {label, probability}), logits (527 float32),
                                vector (D float32), member (the member holding its bytes, or null),
                                description, user_tags (list of strings), fields (map of strings); a
                                ``retrieval-backup/1`` file has no such last three columns
    jobs.parquet                acknowledged uploads still waiting for PaSST (the ingest queue's queued and
                                running jobs): id, status, name, sha256, location, created, windows_total,
                                attempts, fields (JSON), member
    audio/<sha256>.<ext>        the bytes of every uploaded clip (left out with ``with_audio=False``)
    incoming/<sha256>.upload    the bytes of every waiting job (left out with ``with_audio=False``)
    referenced/<sha256><suffix> files indexed where they lie, only with ``with_referenced=True``; otherwise
                                the manifest lists their paths and sha256

The manifest: ``format``, ``created_at`` (unix time the backup started), ``source`` (backend, data dir,
Qdrant collection), ``model_spec`` (the :class:`ModelSpec` of the vectors), ``clips``, ``next_id`` (the id the
source would give its next clip), ``jobs``, ``with_audio``, ``with_referenced``, ``referenced`` (id,
location, sha256, member), ``problems`` (uploads found missing or changed while backing up), ``tables`` and
``members``.

Consistency. The ingest queue is copied first with SQLite's online backup API and the bytes of its waiting
jobs are read; then the clip database is copied the same way (one read transaction: a consistent point in
time, while writers go on beside it in WAL mode). Everything else is read from those private copies. An
upload's bytes are on disk before its record commits and are removed only after its record is deleted, so
every clip of the copy has its bytes, except one deleted since the copy was taken, which is then left out
whole. A job finishes (its clip committed) before its bytes go, so an upload is in the backup either as a
waiting job or as a clip. On Qdrant (no snapshot across points) each clip is one point, wholly in or out.

Durable: written to a temporary file beside the target, fsynced and renamed (:func:`atomic_path`); any
failure, a full disk included, leaves no file behind and the store untouched.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from index.backups.archive import ArchiveWriter, BackupError, MemberWriter
from index.faiss.clip_db import ClipDB
from index.faiss.store import stored_spec
from index.ingest.queue import ACTIVE, Job, JobQueue
from index.layout import AUDIO_DIR, CLIP_DB, INCOMING_DIR, QUEUE_FILE
from index.sqlite_conn import BUSY_TIMEOUT_S
from index.store.contract import Chunk, ClipRecord
from index.stores import StoreConfig
from retrieval.config import N_TAGS
from retrieval.durable import atomic_path
from retrieval.model_spec import ModelSpec

log = logging.getLogger(__name__)

FORMAT = "retrieval-backup/2"  # 2: the clips' user metadata (description, user_tags, fields)
READABLE = ("retrieval-backup/1", FORMAT)  # what a restore reads (1: clips without user metadata)
METADATA_COLUMNS = ("description", "user_tags", "fields")
MANIFEST = "manifest.json"
CLIPS = "clips.parquet"
JOBS = "jobs.parquet"
AUDIO_PREFIX = f"{AUDIO_DIR}/"  # members of a backup are named as in the data directory
INCOMING_PREFIX = f"{INCOMING_DIR}/"
REFERENCED_PREFIX = "referenced/"
ROW_GROUP = 8192  # clips per Parquet row group (and per restore write)
SUFFIX_RE = re.compile(r"\.[A-Za-z0-9]{1,10}")
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"


def clips_schema(dim: int, *, fmt: str = FORMAT) -> pa.Schema:
    """The columns of clips.parquet in a backup of format `fmt`."""
    tag = pa.struct([("label", pa.string()), ("probability", pa.float64())])
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("location", pa.string()),
                        ("sha256", pa.string()), ("duration", pa.float64()), ("sample_rate", pa.int64()),
                        ("added_at", pa.float64()), ("stored_copy", pa.bool_()), ("tags", pa.list_(tag)),
                        ("logits", pa.list_(pa.float32(), N_TAGS)), ("vector", pa.list_(pa.float32(), dim)),
                        ("member", pa.string())])
    if fmt == READABLE[0]:
        return schema
    return (schema.append(pa.field("description", pa.string()))
            .append(pa.field("user_tags", pa.list_(pa.string())))
            .append(pa.field("fields", pa.map_(pa.string(), pa.string()))))


JOBS_SCHEMA = pa.schema([("id", pa.int64()), ("status", pa.string()), ("name", pa.string()),
                         ("sha256", pa.string()), ("location", pa.string()), ("created", pa.float64()),
                         ("windows_total", pa.int64()), ("attempts", pa.int64()), ("fields", pa.string()),
                         ("member", pa.string())])


@dataclass
class BackupReport:
    path: Path
    clips: int = 0
    jobs: int = 0
    uploads: int = 0  # uploaded clips whose bytes are in the backup
    referenced: int = 0  # clips indexed from folders (copied only with_referenced)
    referenced_copied: int = 0
    left_out: int = 0  # clips deleted while the backup ran
    problems: list[dict] = field(default_factory=list)
    size: int = 0
    seconds: float = 0.0


@dataclass
class _Source:
    """What a backup reads: the model, the next id, every clip (in id order) and whether one still exists."""

    backend: str
    spec: ModelSpec
    next_id: int
    count: int
    chunks: Callable[[], Iterator[Chunk]]
    records: Callable[[], Iterator[list[ClipRecord]]]  # the same clips without vectors and logits
    still_there: Callable[[int], bool]
    describe: dict
    close: Callable[[], None]
    verify: Callable[[], None] = lambda: None  # raises if the source changed under the backup


def snapshot_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (its online backup API, in one step: one read
    transaction, so writers in WAL mode go on meanwhile)."""
    with closing(sqlite3.connect(src, timeout=BUSY_TIMEOUT_S)) as source, \
            closing(sqlite3.connect(dst)) as copy:
        copy.execute("PRAGMA synchronous=OFF")  # a private copy, gone after the backup: no fsync needed
        source.backup(copy)


def _faiss_source(config: StoreConfig, work: Path) -> _Source:
    live = Path(config.data_dir) / CLIP_DB
    if not live.is_file():
        raise BackupError(f"there is no collection in {config.data_dir} (no {CLIP_DB}); nothing to back up")
    copy = work / CLIP_DB
    snapshot_sqlite(live, copy)
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

    return _Source("faiss", spec, db.next_id(), db.count(), lambda: db.export(dim=int(spec.dim or 0),
                                                                                chunk=ROW_GROUP),
                   records, still_there, {"backend": "faiss", "data_dir": str(config.data_dir),
                                 "index_kind": config.index_kind}, close)


def _qdrant_source(config: StoreConfig) -> _Source:
    from index.qdrant.store import open_existing

    try:
        store = open_existing(url=config.qdrant_url, data_dir=Path(config.data_dir),
                              collection=config.qdrant_collection)
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

    return _Source("qdrant", spec, store.next_id(), store.count(), lambda: store.export(chunk=ROW_GROUP),
                   lambda: (records for records, _, _ in store.export(chunk=ROW_GROUP)),
                   lambda id_: store.get(id_) is not None,
                   {"backend": "qdrant", "data_dir": str(config.data_dir),
                    "qdrant_collection": config.qdrant_collection, "qdrant_server": bool(config.qdrant_url)},
                   store.close, verify)


def _waiting_jobs(jobs_db: Path | None, work: Path) -> list[Job]:
    """The queue's queued and running jobs, from a consistent copy of it (none when it does not exist)."""
    if jobs_db is None or not Path(jobs_db).is_file():
        return []
    copy = work / QUEUE_FILE
    snapshot_sqlite(Path(jobs_db), copy)
    queue = JobQueue(copy)
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


def _safe_relative(location: str, prefix: str) -> bool:
    p = PurePosixPath(location)
    return (location.startswith(prefix) and len(p.parts) == 2 and ".." not in p.parts and "\\" not in location
            and not p.is_absolute())


def backup(config: StoreConfig, path: Path, *, jobs_db: Path | None = None, with_audio: bool = True,
           with_referenced: bool = False, progress: bool = False) -> BackupReport:
    """Write the collection of `config` (and the waiting jobs of the queue `jobs_db`) to the new file `path`.

    Refuses an existing `path`. On any failure nothing is left at `path` and the store is as it was."""
    path = Path(path)
    if path.exists():
        raise BackupError(f"{path} exists; a backup never overwrites a file: choose a new name")
    t0 = time.time()
    report = BackupReport(path)
    work = path.parent / f".{path.name}.{os.getpid()}.work"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        work.mkdir()
        with atomic_path(path) as tmp, open(tmp, "xb") as f, \
                tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="backup", disable=not progress,
                     bar_format=BAR_FORMAT) as bar:
            _write(config, f, work, report, jobs_db=jobs_db, with_audio=with_audio,
                   with_referenced=with_referenced, on_bytes=bar.update, bar=bar, started=t0)
            f.flush()
            report.size = f.tell()
            if path.exists():
                raise BackupError(f"{path} appeared while the backup was written; it was left alone")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise BackupError(f"no space left on the device of {path}: {e.strerror}; no backup was written "
                              "(nothing partial is left) and the store is untouched") from e
        raise
    except sqlite3.OperationalError as e:
        if "disk is full" in str(e) or getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            raise BackupError(f"no space left for the snapshot beside {path}: {e}; no backup was written and "
                              "the store is untouched") from e
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.time() - t0
    log.info("backed up %d clips and %d waiting uploads to %s (%.1f MB) in %.1f s", report.clips, report.jobs,
             path, report.size / 1e6, report.seconds)
    return report


def _write(config: StoreConfig, f, work: Path, report: BackupReport, *, jobs_db: Path | None,
           with_audio: bool, with_referenced: bool, on_bytes, bar, started: float) -> None:
    stamp = time.gmtime(started)
    when = (max(stamp.tm_year, 1980), stamp.tm_mon, stamp.tm_mday, stamp.tm_hour, stamp.tm_min, stamp.tm_sec)
    out = ArchiveWriter(f, date_time=when, on_bytes=on_bytes)
    try:
        _fill(out, config, work, report, jobs_db=jobs_db, with_audio=with_audio,
              with_referenced=with_referenced, bar=bar, started=started)
    except BaseException:
        out.abort()
        raise


def _fill(out: ArchiveWriter, config: StoreConfig, work: Path, report: BackupReport, *, jobs_db: Path | None,
          with_audio: bool, with_referenced: bool, bar, started: float) -> None:
    data_dir = Path(config.data_dir)
    stamp = time.gmtime(started)

    # 1. the waiting jobs and their bytes, before the clips (a job finishes into a clip, then loses its bytes)
    jobs = _waiting_jobs(jobs_db, work)
    job_rows, job_members = [], {}
    for job in jobs:
        member = None
        if with_audio:
            try:
                with open(data_dir / job.location, "rb") as src:
                    member = out.add_fileobj(f"{INCOMING_PREFIX}{job.sha256}.upload", src).name
            except FileNotFoundError:
                log.info("job %d finished while the backup ran; its clip is in the backup", job.id)
                continue
        job_members[job.id] = member
        job_rows.append(job)

    # 2. the clips, from one consistent copy
    source = _faiss_source(config, work) if config.backend == "faiss" else _qdrant_source(config)
    try:
        snapshot_at = time.time()
        bar.total = _estimate(source, data_dir, with_audio) + bar.n
        bar.refresh()
        members: dict[int, str | None] = {}
        dropped: set[int] = set()
        referenced: list[dict] = []
        for records in source.records():
            for r in records:
                members[r.id] = _copy_bytes(out, r, data_dir, source, report, dropped, referenced,
                                            with_audio=with_audio, with_referenced=with_referenced)
        with out.stream(CLIPS) as dest:
            report.clips = _write_clips(dest, source, members, dropped)
        source.verify()
    finally:
        source.close()
    report.jobs = len(job_rows)
    report.left_out = len(dropped)
    with out.stream(JOBS) as dest:
        _write_jobs(dest, job_rows, job_members)

    manifest = {
        "format": FORMAT, "created_at": started, "snapshot_at": snapshot_at,
        "created_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp),
        "source": source.describe, "model_spec": source.spec.to_dict(), "model_id": source.spec.id,
        "clips": report.clips, "next_id": source.next_id, "jobs": report.jobs,
        "with_audio": with_audio, "with_referenced": with_referenced,
        "uploads": report.uploads, "referenced": referenced, "problems": report.problems,
        "tables": {CLIPS: {"rows": report.clips, "dim": source.spec.dim}, JOBS: {"rows": report.jobs}},
        "members": {m.name: {"size": m.size, "sha256": m.sha256} for m in out.members.values()},
    }
    out.add_bytes(MANIFEST, json.dumps(manifest, sort_keys=True).encode())  # one line: the C encoder
    out.close()


def _estimate(source: _Source, data_dir: Path, with_audio: bool) -> int:
    """Bytes the backup will write, roughly (for the progress bar)."""
    rows = source.count * ((int(source.spec.dim or 0) + N_TAGS) * 4 + 300)
    if with_audio and (data_dir / AUDIO_DIR).is_dir():
        with os.scandir(data_dir / AUDIO_DIR) as it:
            rows += sum(e.stat().st_size for e in it if e.is_file() and not e.name.startswith("."))
    return rows


def _copy_bytes(out: ArchiveWriter, r: ClipRecord, data_dir: Path, source: _Source, report: BackupReport,
                dropped: set[int], referenced: list[dict], *, with_audio: bool,
                with_referenced: bool) -> str | None:
    """Put the clip's bytes in the backup when they belong there; the member's name, or None."""
    if not r.stored_copy:
        report.referenced += 1
        entry: dict = {"id": r.id, "location": r.location, "sha256": r.sha256, "member": None}
        referenced.append(entry)
        if with_referenced:
            suffix = Path(r.location).suffix
            name = f"{REFERENCED_PREFIX}{r.sha256}{suffix if SUFFIX_RE.fullmatch(suffix) else ''}"
            entry["member"] = _add_file(out, name, Path(r.location), r, report)
            if entry["member"] is not None:
                report.referenced_copied += 1
        return entry["member"]
    if not with_audio:
        return None
    if not _safe_relative(r.location, AUDIO_PREFIX):
        report.problems.append({"id": r.id, "location": r.location, "problem": "not under audio/"})
        return None
    try:
        src = open(data_dir / r.location, "rb")
    except FileNotFoundError:
        if not source.still_there(r.id):  # deleted after the snapshot: left out whole
            dropped.add(r.id)
            return None
        log.warning("clip %d: its stored upload %s is missing", r.id, r.location)
        report.problems.append({"id": r.id, "location": r.location, "problem": "missing"})
        return None
    except OSError as e:
        log.warning("clip %d: its stored upload %s cannot be read: %s", r.id, r.location, e)
        report.problems.append({"id": r.id, "location": r.location, "problem": f"unreadable: {e.strerror}"})
        return None
    with src:
        member = out.add_fileobj(r.location, src)
    if member.sha256 != r.sha256:
        log.warning("clip %d: its stored upload %s has changed (sha256 %s)", r.id, r.location, member.sha256)
        report.problems.append({"id": r.id, "location": r.location, "problem": "changed"})
    report.uploads += 1
    return member.name


def _add_file(out: ArchiveWriter, name: str, file: Path, r: ClipRecord, report: BackupReport) -> str | None:
    if name in out.members:  # the same content indexed twice cannot be: sha256 is unique
        return name
    try:
        with open(file, "rb") as src:
            member = out.add_fileobj(name, src)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise
        report.problems.append({"id": r.id, "location": r.location, "problem": f"unreadable: {e.strerror}"})
        return None
    if member.sha256 != r.sha256:
        report.problems.append({"id": r.id, "location": r.location, "problem": "changed"})
    return member.name


def _write_clips(dest: MemberWriter, source: _Source, members: dict[int, str | None],
                 dropped: set[int]) -> int:
    schema = clips_schema(int(source.spec.dim or 0))
    codecs = {name: ("none" if name in ("logits", "vector") else "snappy") for name in schema.names}
    n = 0
    with pq.ParquetWriter(pa.PythonFile(dest, mode="w"), schema, compression=codecs,
                          use_dictionary=["name", "location", "member"]) as writer:
        for records, vectors, logits in source.chunks():
            keep = [i for i, r in enumerate(records) if r.id in members and r.id not in dropped]
            if not keep:
                continue
            writer.write_table(clips_table([records[i] for i in keep], vectors[keep], logits[keep],
                                           [members[records[i].id] for i in keep], schema), ROW_GROUP)
            n += len(keep)
        if n == 0:
            writer.write_table(schema.empty_table())
    return n


def clips_table(records: list[ClipRecord], vectors, logits, members: list[str | None],
                schema: pa.Schema) -> pa.Table:
    dim = schema.field("vector").type.list_size
    cols = {
        "id": [r.id for r in records], "name": [r.name for r in records],
        "location": [r.location for r in records], "sha256": [r.sha256 for r in records],
        "duration": [float(r.duration) for r in records],
        "sample_rate": [int(r.sample_rate) for r in records],
        "added_at": [float(r.added_at) for r in records],
        "stored_copy": [bool(r.stored_copy) for r in records],
        "tags": [[{"label": t.label, "probability": float(t.probability)} for t in r.tags] for r in records],
        "member": members,
        "description": [r.meta.description for r in records],
        "user_tags": [list(r.meta.tags) for r in records],
        "fields": [list(r.meta.fields) for r in records],
    }
    arrays = {k: pa.array(v, type=schema.field(k).type) for k, v in cols.items()}
    arrays["logits"] = pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1), pa.float32()), N_TAGS)
    arrays["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)
    return pa.table([arrays[name] for name in schema.names], schema=schema)


def _write_jobs(dest: MemberWriter, jobs: list[Job], members: dict[int, str | None]) -> None:
    table = pa.table({
        "id": [j.id for j in jobs], "status": [j.status for j in jobs], "name": [j.name for j in jobs],
        "sha256": [j.sha256 for j in jobs], "location": [j.location for j in jobs],
        "created": [j.created for j in jobs], "windows_total": [j.windows_total for j in jobs],
        "attempts": [j.attempts for j in jobs], "fields": [json.dumps(j.fields) for j in jobs],
        "member": [members[j.id] for j in jobs]}, schema=JOBS_SCHEMA)
    pq.write_table(table, pa.PythonFile(dest, mode="w"))
