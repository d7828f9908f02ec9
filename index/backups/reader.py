"""A backup file, opened for a restore: the whole file verified before anything of it is used.

:func:`open_backup` checks the ZIP, its digest, the manifest, every member's size and sha256, the tables'
schemas and ids (windows.parquet's: ascending, each a clip's, each row's spans and peaks whole), and every
path a member would be written to; a truncated, damaged or foreign file raises :class:`BackupInvalid` naming
what is wrong. A row of windows whose vectors or logits are not as many as its spans (which a file whose
every byte its manifest vouches for cannot hold unless it was made so) is refused as it is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from index.backups.archive import Archive, BackupInvalid, open_archive
from index.backups.format import (
    AUDIO_PREFIX,
    AUDIO_SHA256,
    BAR_FORMAT,
    CLIPS,
    FORMAT,
    INCOMING_PREFIX,
    JOBS,
    JOBS_SCHEMA,
    MANIFEST,
    META_LAYERS,
    METADATA_COLUMNS,
    READABLE,
    ROW_GROUP,
    WINDOWS,
    WITHOUT_WINDOWS,
    clips_schema,
    inside,
    windows_schema,
)
from index.store.checks import check_spans
from index.store.metadata import Metadata, MetaLayers
from index.store.records import ClipRecord, Tag, Timeline, Windows
from retrieval.config import N_TAGS
from retrieval.durable import write_bytes_atomically
from retrieval.model_spec import ModelSpec
from retrieval.waveform import MAX_PEAKS


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
            optional = (c for c in (*METADATA_COLUMNS, AUDIO_SHA256, META_LAYERS) if c in cols)  # by format
            py = {k: cols[k].to_pylist() for k in ("id", "name", "location", "sha256", "duration",
                                                  "sample_rate", "added_at", "stored_copy", "tags", "member",
                                                  *optional)}
            audio = py.get(AUDIO_SHA256) or [None] * batch.num_rows  # none before format 3
            meta_layers = py.get(META_LAYERS) or [None] * batch.num_rows  # none before format 4
            records = [ClipRecord(id=int(py["id"][i]), name=py["name"][i], location=py["location"][i],
                                  sha256=py["sha256"][i], duration=float(py["duration"][i]),
                                  sample_rate=int(py["sample_rate"][i]), added_at=float(py["added_at"][i]),
                                  stored_copy=bool(py["stored_copy"][i]),
                                  tags=tuple(Tag(t["label"], float(t["probability"])) for t in py["tags"][i]),
                                  meta=_metadata(py, i), audio_sha256=audio[i],
                                  meta_layers=None if meta_layers[i] is None
                                  else MetaLayers.from_json_text(meta_layers[i]))
                       for i in range(batch.num_rows)]
            vectors = cols["vector"].flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
            logits = cols["logits"].flatten().to_numpy(zero_copy_only=False).reshape(-1, N_TAGS)
            yield records, vectors.astype(np.float32), logits.astype(np.float32), py["member"]

    @property
    def has_windows(self) -> bool:
        """Whether the backup holds its clips' windows and peaks (format 5 on)."""
        return self.format not in WITHOUT_WINDOWS

    def timelines(self) -> Iterator[tuple[int, Timeline]]:
        """(clip id, its windows (float16 vectors, float32 logits of float16 values) and peaks) of every clip
        that has windows, in id order, one row group of windows.parquet in memory at a time; none before
        format 5."""
        if not self.has_windows:
            return
        table = self._table(WINDOWS)
        dim = int(self.spec.dim or 0)
        for g in range(table.metadata.num_row_groups):
            group = table.read_row_group(g)
            ids = group.column("id").to_pylist()
            starts, ends = (group.column(c).to_pylist() for c in ("starts", "ends"))
            vectors = _values(group.column("vectors"), dim)
            logits = _values(group.column("logits"), N_TAGS)
            peaks = group.column("peaks").to_pylist()
            rows = zip(*(pc.list_value_length(group.column(c)).to_pylist() for c in ("vectors", "logits")),
                       strict=True)
            at = 0
            for i, (id_, (n_vectors, n_logits)) in enumerate(zip(ids, rows, strict=True)):
                w = len(starts[i])
                if not w == n_vectors == n_logits:
                    raise BackupInvalid(f"{self.path}: clip {id_}'s row of {WINDOWS} has {n_vectors} vectors "
                                        f"and {n_logits} logits for {w} windows")
                spans = (np.asarray(starts[i], np.float64), np.asarray(ends[i], np.float64))
                yield id_, Timeline(Windows(*spans, vectors[at:at + w], logits[at:at + w].astype(np.float32)),
                                    np.asarray(peaks[i], np.uint8))
                at += w

    def jobs(self) -> list[dict]:
        return self._table(JOBS).read().to_pylist()

    def extract(self, member: str, dest: Path) -> None:
        """Write the member's bytes to the new file `dest` (its folder made as needed), durably and whole
        (never over an existing file: FileExistsError)."""
        write_bytes_atomically(dest, self.archive.view(member), exclusive=True)

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Backup:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _values(column: pa.ChunkedArray, width: int) -> np.ndarray:
    """A list<fixed_size_list<float16>> column's rows, all of them one after the other: (n, width) float16."""
    flat = [chunk.flatten().flatten().to_numpy(zero_copy_only=False) for chunk in column.chunks]
    return np.concatenate(flat).astype(np.float16).reshape(-1, width) if flat else np.empty((0, width),
                                                                                         np.float16)


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
        bar.update(size - bar.n)  # the digest's comment at the end, which is not hashed
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
                            "digest does not match (its manifest or its ZIP headers were changed)")
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
    tables = [(CLIPS, clips_schema(int(b.spec.dim or 0), fmt=b.format)), (JOBS, JOBS_SCHEMA)]
    if b.has_windows:
        tables.append((WINDOWS, windows_schema(int(b.spec.dim or 0))))
    for name, schema in tables:
        if name not in b.archive.members:
            raise BackupInvalid(f"{b.path} holds no {name}")
        try:
            got = b._table(name).schema_arrow
        except (pa.ArrowException, OSError) as e:
            raise BackupInvalid(f"{b.path}: {name} is not a readable Parquet file ({e})") from None
        if not got.equals(schema):
            raise BackupInvalid(f"{b.path}: {name} does not have the columns of {b.format} "
                                f"(vectors of {b.spec.dim} floats)")
    table = b._table(CLIPS).read(columns=["id", "sha256", "location", "stored_copy", "member", "duration"])
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
        if stored and member is not None and (member != location or not inside(location, AUDIO_PREFIX)):
            raise BackupInvalid(f"{b.path}: clip {id_}'s stored copy {location!r} is not a file under "
                                f"{AUDIO_PREFIX}")
    if b.has_windows:
        _check_windows(b, dict(zip(ids.tolist(), table.column("duration").to_pylist(), strict=True)))
    for job in b.jobs():
        if not inside(job["location"], INCOMING_PREFIX):
            raise BackupInvalid(f"{b.path}: job {job['id']}'s bytes {job['location']!r} are not under "
                                f"{INCOMING_PREFIX}")
        if job["member"] is not None and job["member"] not in b.archive.members:
            raise BackupInvalid(f"{b.path}: job {job['id']}'s bytes should be member {job['member']}")


def _check_windows(b: Backup, durations: dict[int, float]) -> None:
    """windows.parquet: rows as the manifest counts them, ids ascending, each a clip of the backup, every
    row's spans whole and in time order within its clip's duration (index.store.checks.check_spans) and 1 to
    MAX_PEAKS peaks; read a row group at a time, without the vectors and logits."""
    table = b._table(WINDOWS)
    want = (b.manifest.get("tables") or {}).get(WINDOWS) or {}
    if table.metadata.num_rows != want.get("rows"):
        raise BackupInvalid(f"{b.path}: {WINDOWS} has {table.metadata.num_rows} rows, the manifest says "
                            f"{want.get('rows')}")
    last, windows = 0, 0
    for g in range(table.metadata.num_row_groups):
        group = table.read_row_group(g, columns=["id", "starts", "ends", "peaks"])
        ids = group.column("id").to_numpy()
        if len(ids) and (ids[0] <= last or (np.diff(ids) <= 0).any()):
            raise BackupInvalid(f"{b.path}: the clip ids of {WINDOWS} are not ascending and distinct")
        strangers = [i for i in ids.tolist() if i not in durations]
        if strangers:
            raise BackupInvalid(f"{b.path}: {WINDOWS} holds windows of clips that are not in {CLIPS}: "
                                f"{strangers[:5]}")
        columns = (group.column(c).to_pylist() for c in ("starts", "ends", "peaks"))
        for id_, starts, ends, peaks in zip(ids.tolist(), *columns, strict=True):
            try:
                check_spans(starts or [], ends or [], duration=durations[id_])
            except ValueError as e:
                raise BackupInvalid(f"{b.path}: clip {id_}'s windows in {WINDOWS}: {e}") from None
            if peaks is None or not 1 <= len(peaks) <= MAX_PEAKS:
                raise BackupInvalid(f"{b.path}: clip {id_}'s row of {WINDOWS} has no peaks or too many")
            windows += len(starts)
        last = int(ids[-1]) if len(ids) else last
    if windows != want.get("windows"):
        raise BackupInvalid(f"{b.path}: {WINDOWS} holds {windows} windows, the manifest says "
                            f"{want.get('windows')}")
