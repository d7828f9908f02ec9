"""What a backup file holds: its members' names, its tables' columns, the paths its bytes may be written to.

The file (format ``retrieval-backup/5``; its ZIP seal is the container's own, unchanged since
``retrieval-backup/1``) is a ZIP of stored, uncompressed members (:mod:`index.backups.archive`), so
`unzip` lists it and pandas, DuckDB or pyarrow read its tables once unzipped:

    manifest.json               what the backup holds (below) and every other member's size and sha256
    clips.parquet               one row per clip: id, name, location, sha256, duration, sample_rate, added_at,
                                stored_copy, tags (list of {label, probability}), logits (527 float32),
                                vector (D float32), member (the member holding its bytes, or null),
                                description, user_tags (list of strings), fields (map of strings),
                                audio_sha256 (the audio's fingerprint, or null), meta_layers (JSON of what
                                the clip's file said when last read, what the user set and what of the
                                file's the user took off, {"file": ..., "own": ..., "dropped": ...} each
                                of description, tags and fields, "dropped" absent in files written before
                                it was kept; or null); a
                                ``retrieval-backup/3`` file has no meta_layers, a ``retrieval-backup/2`` file
                                no audio_sha256 either, a ``retrieval-backup/1`` file none of the last five
    windows.parquet             one row per clip that has windows (a clip's PaSST windows and waveform peaks,
                                as the store keeps them): id, starts and ends (W seconds each, float64),
                                vectors (W x D float16: the head's projections, stored as float16), logits
                                (W x 527 float16: PaSST's, stored as float16), peaks (the waveform overview,
                                uint8 list); in id order, one Parquet row group per page of about
                                WINDOW_PAGE windows; clips without windows have no row. Files of formats 1
                                to 4 have no windows.parquet: their clips restore without windows
                                (`retrieval index backfill-windows` makes them)
    jobs.parquet                acknowledged uploads still waiting for PaSST (the ingest queue's queued and
                                running jobs): id, status, name, sha256, location, created, windows_total,
                                attempts, fields (JSON), member
    audio/<sha256>.<ext>        the bytes of every uploaded clip (left out with ``with_audio=False``)
    incoming/<sha256>.<store>.upload  the bytes of every waiting job (left out with ``with_audio=False``)
    referenced/<sha256><suffix> files indexed where they lie, only with ``with_referenced=True``; otherwise
                                the manifest lists their paths and sha256

The manifest: ``format``, ``created_at`` (unix time the backup started), ``source`` (backend, data dir,
Qdrant collection), ``model_spec`` (the :class:`ModelSpec` of the vectors), ``clips``, ``next_id`` (the id the
source would give its next clip), ``jobs``, ``with_audio``, ``with_referenced``, ``referenced`` (id,
location, sha256, member), ``problems`` (uploads found missing or changed while backing up), ``tables`` (each
table's rows; windows.parquet's also its ``windows``) and ``members``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pyarrow as pa

from index.layout import AUDIO_DIR, INCOMING_DIR
from retrieval.config import N_TAGS

# 2: the clips' user metadata (description, user_tags, fields); 3: audio_sha256; 4: meta_layers; 5: the
# clips' windows and peaks (windows.parquet)
FORMAT = "retrieval-backup/5"
# what a restore reads (1: clips without user metadata; 2: without audio fingerprints; 3: without their files'
# metadata kept apart; 1 to 4: without windows and peaks)
READABLE = ("retrieval-backup/1", "retrieval-backup/2", "retrieval-backup/3", "retrieval-backup/4", FORMAT)
WITHOUT_WINDOWS = READABLE[:4]  # formats whose clips restore without windows
METADATA_COLUMNS = ("description", "user_tags", "fields")
AUDIO_SHA256 = "audio_sha256"
META_LAYERS = "meta_layers"
MANIFEST = "manifest.json"
CLIPS = "clips.parquet"
JOBS = "jobs.parquet"
WINDOWS = "windows.parquet"
AUDIO_PREFIX = f"{AUDIO_DIR}/"  # members of a backup are named as in the data directory
INCOMING_PREFIX = f"{INCOMING_DIR}/"
REFERENCED_PREFIX = "referenced/"
ROW_GROUP = 8192  # clips per Parquet row group (and per restore write)
# windows per page read from the source and per row group of windows.parquet, about (a page is cut at a clip's
# end, estimated from durations; one long clip is a page of its own): 4096 x (768 + 527) x 2 bytes ~ 11 MB
WINDOW_PAGE = 4096
SUFFIX_RE = re.compile(r"\.[A-Za-z0-9]{1,10}")  # a referenced file's suffix kept in its member's name
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
    schema = (schema.append(pa.field("description", pa.string()))
              .append(pa.field("user_tags", pa.list_(pa.string())))
              .append(pa.field("fields", pa.map_(pa.string(), pa.string()))))
    if fmt == READABLE[1]:
        return schema
    schema = schema.append(pa.field(AUDIO_SHA256, pa.string()))
    return schema if fmt == READABLE[2] else schema.append(pa.field(META_LAYERS, pa.string()))


def windows_schema(dim: int) -> pa.Schema:
    """The columns of windows.parquet (format 5 on): float16 vectors and logits, as the stores keep them."""
    return pa.schema([("id", pa.int64()), ("starts", pa.list_(pa.float64())),
                      ("ends", pa.list_(pa.float64())), ("vectors", pa.list_(pa.list_(pa.float16(), dim))),
                      ("logits", pa.list_(pa.list_(pa.float16(), N_TAGS))),
                      ("peaks", pa.list_(pa.uint8()))])


JOBS_SCHEMA = pa.schema([("id", pa.int64()), ("status", pa.string()), ("name", pa.string()),
                         ("sha256", pa.string()), ("location", pa.string()), ("created", pa.float64()),
                         ("windows_total", pa.int64()), ("attempts", pa.int64()), ("fields", pa.string()),
                         ("member", pa.string())])


def inside(location: object, prefix: str) -> bool:
    """A two-part relative path under `prefix` (what the store and the queue write), nothing that escapes."""
    if not isinstance(location, str):
        return False
    p = PurePosixPath(location)
    return (location.startswith(prefix) and len(p.parts) == 2 and ".." not in p.parts and "\\" not in location
            and not p.is_absolute())
