"""The backup's writer: the waiting jobs with their bytes, the clips with theirs, the clips' windows and
peaks, the tables and the manifest, into one archive (:mod:`index.backups.format`).

The clips and their windows are read in one pass, a page at a time (never all windows at once): each chunk of
clips, then the windows of its clips a page of about WINDOW_PAGE windows at a time, from the same snapshot;
windows.parquet is written into the archive as they are read, clips.parquet beside it in the work folder,
then copied in (an archive is written one member at a time, and the clips are the smaller table).

The data directory changes while it is read: every file of it may appear or vanish at any step. Sizing the
audio folder counts a file that vanishes as nothing. A waiting job whose bytes vanish has finished (its clip
is in the clip copy taken after) or was cancelled: it is left out. A clip whose stored upload vanishes
before it is copied was deleted meanwhile (its record goes first, then its bytes): it is left out whole,
never held without its audio; only an upload missing while its clip is still stored is a problem.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from index.backups.archive import ArchiveWriter, MemberWriter
from index.backups.format import (
    AUDIO_PREFIX,
    AUDIO_SHA256,
    CLIPS,
    FORMAT,
    INCOMING_PREFIX,
    JOBS,
    JOBS_SCHEMA,
    MANIFEST,
    META_LAYERS,
    REFERENCED_PREFIX,
    ROW_GROUP,
    SUFFIX_RE,
    WINDOW_PAGE,
    WINDOWS,
    clips_schema,
    inside,
    windows_schema,
)
from index.backups.reports import BackupReport
from index.backups.sources import Source, open_source, waiting_jobs
from index.ingest.queue import Job
from index.layout import AUDIO_DIR
from index.store.records import ClipRecord, Timeline
from index.stores import StoreConfig
from retrieval.config import N_TAGS

log = logging.getLogger(__name__)

# for the progress bar's estimate: a row's bytes beside its vector and logits (names, tags, fields), and the
# manifest's and the Parquet footers' (measured: a backup of 22 small clips writes 17.7 KB beyond its floats)
ROW_EXTRA, FIXED_EXTRA = 600, 8192
# float16 vectors and logits and float64 spans go into windows.parquet unencoded and uncompressed (noise does
# not compress; statistics of float16 are slow to write and of no use)
RAW_WINDOW_COLUMNS = ["starts", "ends", "vectors", "logits"]


def write(config: StoreConfig, f: BinaryIO, work: Path, report: BackupReport, *, jobs_db: Path | None,
          with_audio: bool, with_referenced: bool, bar: tqdm, started: float) -> None:
    """The backup of `config`'s store and the queue `jobs_db`, written to the new file `f` (the folder
    `work` holds the private copies of the databases); on any failure nothing more is written to `f`."""
    stamp = time.gmtime(started)
    when = (max(stamp.tm_year, 1980), stamp.tm_mon, stamp.tm_mday, stamp.tm_hour, stamp.tm_min, stamp.tm_sec)
    out = ArchiveWriter(f, date_time=when, on_bytes=bar.update)
    try:
        _fill(out, config, work, report, jobs_db=jobs_db, with_audio=with_audio,
              with_referenced=with_referenced, bar=bar, started=started)
    except BaseException:
        out.abort()
        raise


def _fill(out: ArchiveWriter, config: StoreConfig, work: Path, report: BackupReport, *, jobs_db: Path | None,
          with_audio: bool, with_referenced: bool, bar: tqdm, started: float) -> None:
    data_dir = Path(config.data_dir)
    # 1. the waiting jobs and their bytes, before the clips (a job finishes into a clip, then loses its bytes)
    waiting = waiting_jobs(jobs_db, work, store=config.name)  # this store's: the folder's queue is shared
    jobs, job_members = _copy_jobs(out, waiting, data_dir, with_audio=with_audio)

    # 2. the clips, from one consistent copy
    source = open_source(config, work)
    try:
        snapshot_at = time.time()
        bar.total = _estimate(source, data_dir, with_audio, with_referenced) + bar.n
        bar.refresh()
        members: dict[int, str | None] = {}
        dropped: set[int] = set()
        referenced: list[dict] = []
        for records in source.records():
            for r in records:
                members[r.id] = _copy_bytes(out, r, data_dir, source, report, dropped, referenced,
                                            with_audio=with_audio, with_referenced=with_referenced)
        clips_file = work / CLIPS  # written beside, while windows.parquet goes into the archive
        with out.stream(WINDOWS) as dest, open(clips_file, "xb") as clips_dest:
            report.clips = _write_clips(clips_dest, dest, source, members, dropped, report)
        source.verify()
        with open(clips_file, "rb") as src:
            out.add_fileobj(CLIPS, src)
        clips_file.unlink()
    finally:
        source.close()
    report.jobs = len(jobs)
    report.left_out = len(dropped)
    with out.stream(JOBS) as dest:
        _write_jobs(dest, jobs, job_members)

    manifest = {
        "format": FORMAT, "created_at": started, "snapshot_at": snapshot_at,
        "created_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "source": source.describe, "model_spec": source.spec.to_dict(), "model_id": source.spec.id,
        "clips": report.clips, "next_id": source.next_id, "jobs": report.jobs,
        "with_audio": with_audio, "with_referenced": with_referenced,
        "uploads": report.uploads, "referenced": referenced, "problems": report.problems,
        "tables": {CLIPS: {"rows": report.clips, "dim": source.spec.dim}, JOBS: {"rows": report.jobs},
                   WINDOWS: {"rows": report.clips_with_windows, "windows": report.windows,
                             "dim": source.spec.dim}},
        "members": {m.name: {"size": m.size, "sha256": m.sha256} for m in out.members.values()},
    }
    out.add_bytes(MANIFEST, json.dumps(manifest, sort_keys=True).encode())  # one line: the C encoder
    out.close()
    bar.total = bar.n  # the estimate's error settled: the bar ends full
    bar.refresh()


def _copy_jobs(out: ArchiveWriter, jobs: list[Job], data_dir: Path, *,
               with_audio: bool) -> tuple[list[Job], dict[int, str | None]]:
    """The jobs still waiting once their bytes are read, and the member holding each one's bytes (None
    without audio)."""
    if not with_audio:
        return jobs, {job.id: None for job in jobs}
    kept: list[Job] = []
    members: dict[int, str | None] = {}
    for job in jobs:
        try:
            src = open(data_dir / job.location, "rb")
        except FileNotFoundError:
            log.info("job %d finished (its clip is in the backup) or was cancelled meanwhile", job.id)
            continue
        with src:
            members[job.id] = out.add_fileobj(f"{INCOMING_PREFIX}{job.sha256}.upload", src).name
        kept.append(job)
    return kept, members


def _estimate(source: Source, data_dir: Path, with_audio: bool, with_referenced: bool) -> int:
    """Bytes the backup will write, roughly (for the progress bar): the rows, the windows and peaks, the
    uploads with `with_audio`, the indexed files the clips reference with `with_referenced`."""
    rows = source.count * ((int(source.spec.dim or 0) + N_TAGS) * 4 + ROW_EXTRA) + FIXED_EXTRA
    rows += source.window_bytes()
    uploads = _folder_bytes(data_dir / AUDIO_DIR) if with_audio else 0
    referenced = sum(_path_bytes(Path(r.location)) for records in source.records() for r in records
                     if not r.stored_copy) if with_referenced else 0
    return rows + uploads + referenced


def _folder_bytes(folder: Path) -> int:
    """The bytes of the files listed in `folder` (0 when there is none); one removed meanwhile counts 0."""
    try:
        listing = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    with listing:
        return sum(_file_bytes(e) for e in listing if not e.name.startswith("."))


def _path_bytes(path: Path) -> int:
    """The file's bytes; 0 when it is not there (the copy reports it)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _file_bytes(entry: os.DirEntry) -> int:
    try:
        return entry.stat().st_size if entry.is_file() else 0
    except FileNotFoundError:
        return 0


def _copy_bytes(out: ArchiveWriter, r: ClipRecord, data_dir: Path, source: Source, report: BackupReport,
                dropped: set[int], referenced: list[dict], *, with_audio: bool,
                with_referenced: bool) -> str | None:
    """Put the clip's bytes in the backup when they belong there; the member's name, or None. A clip whose
    stored upload vanished because it was deleted meanwhile goes into `dropped`."""
    if not r.stored_copy:
        report.referenced += 1
        entry: dict = {"id": r.id, "location": r.location, "sha256": r.sha256, "member": None}
        referenced.append(entry)
        if with_referenced:
            suffix = Path(r.location).suffix
            name = f"{REFERENCED_PREFIX}{r.sha256}{suffix if SUFFIX_RE.fullmatch(suffix) else ''}"
            entry["member"] = _copy_file(out, name, Path(r.location), r, report, deleted=lambda: False)
            if entry["member"] is not None:
                report.referenced_copied += 1
        return entry["member"]
    if not with_audio:
        return None
    if not inside(r.location, AUDIO_PREFIX):
        _problem(report, r, "not under audio/")
        return None

    def deleted() -> bool:
        if source.still_there(r.id):
            return False
        dropped.add(r.id)
        return True

    member = _copy_file(out, r.location, data_dir / r.location, r, report, deleted=deleted)
    if member is not None:
        report.uploads += 1
    return member


def _copy_file(out: ArchiveWriter, name: str, path: Path, r: ClipRecord, report: BackupReport, *,
               deleted: Callable[[], bool]) -> str | None:
    """Copy the clip's file at `path` into the member `name`, its bytes checked against the clip's sha256;
    the member's name, or None when the file cannot be opened. A file that is not there is a problem unless
    `deleted()` says its clip was removed meanwhile."""
    if name in out.members:  # the same content indexed twice cannot be: sha256 is unique
        return name
    try:
        src = open(path, "rb")
    except FileNotFoundError:
        if not deleted():
            _problem(report, r, "missing")
        return None
    except OSError as e:
        _problem(report, r, f"unreadable: {e.strerror}")
        return None
    with src:  # once open, the bytes are read whole even if the file is removed meanwhile
        member = out.add_fileobj(name, src)
    if member.sha256 != r.sha256:
        _problem(report, r, "changed")
    return member.name


def _problem(report: BackupReport, r: ClipRecord, problem: str) -> None:
    log.warning("clip %d: %s: %s", r.id, r.location, problem)
    report.problems.append({"id": r.id, "location": r.location, "problem": problem})


def _write_clips(clips_dest: BinaryIO, windows_dest: MemberWriter, source: Source,
                 members: dict[int, str | None], dropped: set[int], report: BackupReport) -> int:
    """clips.parquet and windows.parquet: the clips whose bytes were settled, less the dropped ones (and those
    found gone once their windows were read, added to them), each with its windows where it has them; how
    many clips were written."""
    dim = int(source.spec.dim or 0)
    schema = clips_schema(dim)
    codecs = {name: ("none" if name in ("logits", "vector") else "snappy") for name in schema.names}
    wschema = windows_schema(dim)
    n = 0
    with pq.ParquetWriter(pa.PythonFile(clips_dest, mode="w"), schema, compression=codecs,
                          use_dictionary=["name", "location", "member"]) as writer, \
            pq.ParquetWriter(pa.PythonFile(windows_dest, mode="w"), wschema,
                             compression={name: ("none" if name in RAW_WINDOW_COLUMNS else "snappy")
                                          for name in wschema.names},
                             use_dictionary=False, write_statistics=["id"],
                             column_encoding=dict.fromkeys(RAW_WINDOW_COLUMNS, "PLAIN")) as windows:
        for records, vectors, logits in source.chunks():
            keep = [i for i, r in enumerate(records) if r.id in members and r.id not in dropped]
            for page in _window_pages([records[i] for i in keep], source.spec.hop_s):
                found = source.timelines(page)
                gone = set(page) - source.present(page)  # deleted since its record was read: left out whole
                dropped |= gone
                ids = [i for i in page if i in found and i not in gone]
                if ids:
                    windows.write_table(windows_table(ids, [found[i] for i in ids], wschema))
                    report.clips_with_windows += len(ids)
                    report.windows += sum(len(found[i].windows.starts) for i in ids)
            keep = [i for i in keep if records[i].id not in dropped]
            if not keep:
                continue
            writer.write_table(clips_table([records[i] for i in keep], vectors[keep], logits[keep],
                                           [members[records[i].id] for i in keep], schema), ROW_GROUP)
            n += len(keep)
        if n == 0:
            writer.write_table(schema.empty_table())
        if report.clips_with_windows == 0:
            windows.write_table(wschema.empty_table())
    return n


def _window_pages(records: list[ClipRecord], hop_s: float) -> list[list[int]]:
    """The clips' ids in pages of about WINDOW_PAGE windows, each clip's estimated from its duration (a clip
    longer than a page is a page of its own)."""
    pages: list[list[int]] = []
    page: list[int] = []
    windows = 0.0
    for r in records:
        estimate = float(r.duration) / max(float(hop_s), 1e-3) + 1
        if page and windows + estimate > WINDOW_PAGE:
            pages.append(page)
            page, windows = [], 0.0
        page.append(r.id)
        windows += estimate
    return [*pages, page] if page else pages


def windows_table(ids: list[int], timelines: list[Timeline], schema: pa.Schema) -> pa.Table:
    """Rows of windows.parquet: each clip's windows (float16 vectors and logits, as stored) and peaks."""
    dim = schema.field("vectors").type.value_type.list_size
    counts = [len(t.windows.starts) for t in timelines]
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))

    def spans(values: list[np.ndarray]) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(values).astype(np.float64)))

    def rows(values: list[np.ndarray | None], width: int) -> pa.Array:
        if any(v is None for v in values):
            raise ValueError("windows read for a backup carry their logits")
        flat = np.concatenate([np.asarray(v).astype(np.float16).reshape(-1) for v in values])
        return pa.ListArray.from_arrays(offsets, pa.FixedSizeListArray.from_arrays(pa.array(flat), width))

    columns = [pa.array(ids, pa.int64()), spans([t.windows.starts for t in timelines]),
               spans([t.windows.ends for t in timelines]), rows([t.windows.vectors for t in timelines], dim),
               rows([t.windows.logits for t in timelines], N_TAGS),
               pa.array([np.asarray(t.peaks, np.uint8) for t in timelines], pa.list_(pa.uint8()))]
    return pa.table(columns, schema=schema)


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
        AUDIO_SHA256: [r.audio_sha256 for r in records],
        META_LAYERS: [None if r.meta_layers is None else r.meta_layers.to_json() for r in records],
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
