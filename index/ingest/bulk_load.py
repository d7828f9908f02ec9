"""Load Parquet shards of PaSST logits (index.ingest.ray_shards) into the configured store: project each
clip's logits and its windows' through the head, take its top tags, add it with its windows and peaks. No
PaSST runs here. Shards written before windows existed load without them, and those written before the
metadata column (the metadata inside the files) without it.

Resumable at two levels: a ledger in the data directory names the shards already loaded into this store
(they are skipped whole), and inside a shard a clip whose content (sha256) is stored is skipped, so a run
stopped half-way through a shard goes on where it stopped.

A library changed since an earlier load is followed as `index add` follows it (index.ingest.builder): a
stored clip whose file moved (its bytes now at the row's path, no longer at its own) moves there, and a clip
added for a file that changed where it lies replaces the clips stored from that path before, taking what
the user set on them. Both only where the file holds the row's bytes now: a shard older than the library
changes nothing that a later run made.

A run stopped (killed) between storing a shard's clips and replacing what they replace ends as a whole run
would: before each write that a replacement follows (a clip added, moved or retagged), the clip is noted in a
journal beside the ledger (index/layout.py ``shard_journal``), and the next run of that shard replaces for
the clips it notes as for its own, though it finds them stored.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from index.collection import TOP_TAGS, Collection
from index.ingest.builder import move_here, moved_from, replace_changed
from index.ingest.embedded import file_metadata
from index.ingest.ray_shards import (
    AUDIO_COLUMN,
    MANIFEST,
    METADATA_COLUMN,
    RECORD_COLUMNS,
    WINDOW_COLUMNS,
    manifest_spec,
    reading_shard,
    shard_failures,
)
from index.ingest.worker import Item, retagged
from index.layout import shard_journal
from index.store.contract import VectorStore
from index.store.metadata import Metadata, MetaLayers
from index.store.names import clip_name
from index.store.records import Added, ClipRecord, NewClip, Tag, Timeline
from retrieval.config import N_TAGS
from retrieval.durable import append_line, sha256_file, write_json_atomically, write_text_atomically
from retrieval.errors import RetrievalError
from retrieval.model_spec import PASST_FIELDS
from retrieval.pipeline import Retriever
from retrieval.windows import WindowLogits

log = logging.getLogger(__name__)

CHUNK = 512  # rows projected and added at a time
COLUMNS = [*RECORD_COLUMNS, "logits"]


@dataclass
class LoadReport:
    shards_loaded: int = 0
    shards_skipped: int = 0  # done by an earlier run
    added: int = 0
    skipped: int = 0  # content already stored
    moved: int = 0  # clips whose file was moved or renamed since (some retagged too): their place follows it
    retagged: int = 0  # clips of files retagged since (other bytes, the same audio): kept, with metadata
    replaced: int = 0  # clips of files that changed where they lie, replaced by the clips they are now
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) from extraction
    seconds: float = 0.0


class Journal:
    """The clips that loads of shards hold for replacement, noted before each write (the shard, the clip's
    sha256 and path, whether it arrives there from another path), so that a run stopped before a shard's
    replacements is finished by the next run of that shard. A line cut short by a kill is skipped: nothing
    was written after it."""

    def __init__(self, path: Path):
        self.path = path
        self.noted: dict[tuple[str, str, str], bool] = {}  # (shard, sha256, path): arrived
        for line in path.read_text(encoding="utf-8").split("\n") if path.is_file() else []:
            try:
                shard, sha, location, arrived = json.loads(line)
            except (ValueError, TypeError):
                continue
            self.noted[(shard, sha, location)] = bool(arrived)

    def note(self, shard: Path, entries: list[tuple[str, str, bool]]) -> None:
        if not self.path.is_file():
            write_text_atomically(self.path, "")
        append_line(self.path, "\n".join(json.dumps([str(shard), sha, path, arrived])
                                          for sha, path, arrived in entries))

    def prune(self, loaded) -> None:
        """Keep only what stopped runs noted of shards not `loaded` since that are still there (all of this
        run's are loaded): nothing left, no journal."""
        kept = [key for key in self.noted if key[0] not in loaded and Path(key[0]).is_file()]
        if not kept:
            self.path.unlink(missing_ok=True)
            return
        write_text_atomically(self.path, "".join(json.dumps([*key, self.noted[key]]) + "\n" for key in kept))

    def held(self, shard: Path, record: ClipRecord, path: str) -> bool | None:
        """Whether a stopped run of the shard held the clip stored at `path` and arrived it there; None when
        it held no such clip."""
        return self.noted.get((str(shard), record.sha256, path)) if record.location == path else None


@dataclass
class Held:
    """What a shard added or moved, (the clip, its path) each, and the ids of the clips the run moved."""

    shards: list[Path]
    follows: bool  # the store held clips before the run: files may have moved, been retagged or changed
    clips: list[tuple[ClipRecord, str]] = field(default_factory=list)
    arrived: set[int] = field(default_factory=set)
    journal: Journal | None = None  # where a run that follows notes what it holds (in `shard`)
    shard: Path = Path()

    def note(self, entries: list[tuple[str, str, bool]]) -> None:
        if self.journal is not None:
            self.journal.note(self.shard, entries)

    def stopped(self, record: ClipRecord, path: str) -> bool | None:
        """Whether a stopped run of the shard held this stored clip, and arrived it (None: it did not)."""
        return None if self.journal is None else self.journal.held(self.shard, record, path)

    def copied(self, record: ClipRecord) -> bool:
        """Whether a file of the folder's shards other than the clip's holds its bytes now (a copy made
        before its own file changed): the clip stays. Read only for clips about to be replaced (rare)."""
        for shard in self.shards:
            rows = pq.read_table(shard, columns=["path", "sha256"],
                                 filters=[("sha256", "=", record.sha256)]).column("path").to_pylist()
            if any(path != record.location and _holds(path, record.sha256) for path in rows):
                return True
        return False


def read_manifest(shard_dir: Path, retriever: Retriever) -> dict:
    """The shard folder's manifest, refused when its logits come from another tagger than the model's."""
    path = Path(shard_dir) / MANIFEST
    if not path.is_file():
        raise RetrievalError(f"{shard_dir} has no {MANIFEST}: not a folder written by `index extract-ray`")
    manifest = json.loads(path.read_text())
    manifest_spec(manifest).require_match(
        retriever.spec, only=PASST_FIELDS, what=f"the shard folder {shard_dir}",
        fix="its logits come from another PaSST tagger than the configured one: extract them again with "
            "the configured tagger, or configure the tagger they were made with")
    return manifest


def load_shards(collection: Collection, shard_dir: Path, *, ledger: Path, redo: bool = False,
                progress: bool = True) -> LoadReport:
    """Add every clip of the shards in shard_dir to the collection; see the module docstring. redo=True
    ignores the ledger."""
    store, retriever = collection.store, collection.retriever
    shard_dir = Path(shard_dir).resolve()
    manifest = read_manifest(shard_dir, retriever)
    done = {} if redo or not ledger.is_file() else json.loads(ledger.read_text())
    if done and store.count() == 0:
        log.warning("%s lists shards loaded before, but the store is empty (made anew since?): loading them "
                    "all again", ledger)
        done = {}
    shards = [shard_dir / name for name in manifest["shards"]]
    todo = [s for s in shards if str(s) not in done]
    report = LoadReport(shards_skipped=len(shards) - len(todo))
    # the files of shards loaded before that failed extraction: listed on every run, not on the first alone
    report.failed += shard_failures(shard_dir, [s.name for s in shards if str(s) in done])
    rows = 0
    for shard in todo:
        with reading_shard(shard):
            rows += pq.ParquetFile(shard).metadata.num_rows
    start = time.perf_counter()
    held = Held(shards, follows=store.count() > 0)  # into an empty store (a first load) nothing is followed
    journal = Journal(shard_journal(ledger)) if held.follows else None
    if journal is None:  # an empty store: what a stopped load noted is gone with its clips
        shard_journal(ledger).unlink(missing_ok=True)
    with tqdm(total=rows, unit="clip", desc="load", disable=not progress) as bar:
        for shard in todo:
            before = (report.added, report.skipped, len(report.failed))
            held.journal, held.shard = journal, shard
            with reading_shard(shard):
                _load_shard(collection, shard, report, bar, held)
            if held.follows:  # before the ledger says the shard is done
                _replace_changed(collection, held, report)
            held.clips.clear()
            done[str(shard)] = {"added": report.added - before[0], "skipped": report.skipped - before[1],
                                "failed": len(report.failed) - before[2]}
            write_json_atomically(ledger, done)
            report.shards_loaded += 1
    if journal is not None:
        journal.prune(done.keys())
    report.seconds = time.perf_counter() - start
    log.info("loaded %d shards (%d done before): %d clips added, %d already stored, %d failed extraction",
             report.shards_loaded, report.shards_skipped, report.added, report.skipped, len(report.failed))
    return report


def _load_shard(collection: Collection, shard: Path, report: LoadReport, bar: tqdm, held: Held) -> None:
    store, retriever = collection.store, collection.retriever
    names = set(pq.ParquetFile(shard).schema_arrow.names)
    windowed = set(WINDOW_COLUMNS) <= names  # shards written before windows have none
    extra = [*(WINDOW_COLUMNS if windowed else ()),
             *(c for c in (METADATA_COLUMN, AUDIO_COLUMN) if c in names)]  # each missing in older shards
    table = pq.read_table(shard, columns=COLUMNS + extra)
    seen = set()  # a shard may hold the same content twice
    for batch in table.to_batches(max_chunksize=CHUNK):
        rows = batch.to_pydict()
        keep = []
        for i, (path, error, sha) in enumerate(zip(rows["path"], rows["error"], rows["sha256"], strict=True)):
            if error:
                report.failed.append((path, error))
            elif sha in seen:
                report.skipped += 1
            elif (stored := store.get_by_sha256(sha)) is not None:
                report.skipped += 1
                seen.add(sha)
                if moved_from(stored, path) and _holds(path, sha):
                    held.note([(sha, path, True)])
                    moved = move_here(collection, stored, path, rows["name"][i])
                    held.clips.append((moved, path))
                    held.arrived.add(moved.id)
                    report.moved += 1
                elif (arrived := held.stopped(stored, path)) is not None:
                    held.clips.append((stored, path))  # added, moved or retagged by a run stopped since
                    held.arrived.update([stored.id] if arrived else [])
            elif held.follows and (kept := _retagged(collection, rows, i, held)) is not None:  # its audio
                seen.add(sha)
                held.clips.append((kept[0], path))
                held.arrived.update([kept[0].id] if kept[1] else [])
                report.retagged += 1
                report.moved += kept[1]
            else:
                keep.append(i)
                seen.add(sha)
        if keep:
            held.note([(rows["sha256"][i], rows["path"][i], False) for i in keep])
            logits = np.asarray([rows["logits"][i] for i in keep], dtype=np.float32)  # (n, 527)
            timelines = [_timeline(rows, i, retriever) if windowed else None for i in keep]
            clips = [_clip(rows, i, logits[j], retriever) for j, i in enumerate(keep)]
            for clip, added in zip(clips, _add(store, retriever, clips, logits, timelines), strict=True):
                report.added += added.created
                held.clips.append((added.record, clip.location))
        bar.update(batch.num_rows)


def _retagged(collection: Collection, rows: dict, i: int, held: Held) -> tuple[ClipRecord, bool] | None:
    """Row i's file retagged (or retagged and moved) since its clip was stored: other bytes, the same audio
    (`audio_sha256`) as a clip stored from its path, or as one whose file is gone. That clip is kept, with
    the file's sha256, place and metadata, as `index add` keeps it (:func:`index.ingest.worker.retagged`),
    when the file holds the row's bytes now; whether it moved. None otherwise (shards written before
    fingerprints, or a sound not stored)."""
    fingerprint = rows[AUDIO_COLUMN][i] if AUDIO_COLUMN in rows else ""
    path, name, sha = rows["path"][i], rows["name"][i], rows["sha256"][i]
    if not fingerprint or not collection.store.with_audio(fingerprint) or not _holds(path, sha):
        return None
    text = rows[METADATA_COLUMN][i] if METADATA_COLUMN in rows else ""
    found = Metadata.from_json_text(text) if text else file_metadata(Path(path), name)
    # whether it will move (worker.retagged: no clip of this audio stored from its path), noted before
    here = any(r.audio_sha256 == fingerprint and not r.stored_copy
               for r in collection.store.at_location(path))
    held.note([(sha, path, not here)])
    return retagged(collection, Item(path, name, Path(path), sha, found=found), fingerprint)


def _holds(path: str, sha256: str) -> bool:
    """Whether the file at `path` holds the bytes `sha256` now (a shard may be older than the library)."""
    try:
        return sha256_file(path) == sha256
    except OSError:
        return False


def _replace_changed(collection: Collection, held: Held, report: LoadReport) -> None:
    """The clips of files changed where they lie replaced by the clips loaded for them now, where the file
    holds what was loaded (:func:`index.ingest.builder.replace_changed`; a moved clip keeps its metadata)."""
    for record, location in held.clips:
        stale = [r for r in collection.store.at_location(location) if r.id != record.id and not r.stored_copy]
        if stale and _holds(location, record.sha256):
            copies = {r.sha256 for r in stale if held.copied(r)}
            report.replaced += replace_changed(collection, record, location, copies, held.arrived)


def _clip(rows: dict, i: int, logits: np.ndarray, retriever: Retriever) -> NewClip:
    tags = tuple(Tag(label, p) for label, p in retriever.top_tags(logits, TOP_TAGS))
    # the file's own metadata (the clip's, and kept apart as its file's); shards written before it have none
    text = rows[METADATA_COLUMN][i] if METADATA_COLUMN in rows else None
    meta = None if text is None else Metadata.from_json_text(text) if text else Metadata()
    audio = rows.get(AUDIO_COLUMN, [""] * (i + 1))[i]  # nor before fingerprints
    return NewClip(name=clip_name(rows["name"][i]), location=rows["path"][i], sha256=rows["sha256"][i],
                   duration=float(rows["duration"][i]), sample_rate=int(rows["sample_rate"][i]), tags=tags,
                   meta=meta or Metadata(), meta_layers=None if meta is None else MetaLayers(file=meta),
                   audio_sha256=audio or None)


def _timeline(rows: dict, i: int, retriever: Retriever) -> Timeline:
    logits = np.asarray(rows["window_logits"][i], dtype=np.float32).reshape(-1, N_TAGS)  # (W, 527)
    windows = WindowLogits(logits, np.asarray(rows["window_starts"][i]), np.asarray(rows["window_ends"][i]))
    return Timeline.projected(windows, retriever.project, np.asarray(rows["peaks"][i], dtype=np.uint8))


def _add(store: VectorStore, retriever: Retriever, clips: list[NewClip], logits: np.ndarray,
         timelines: list[Timeline | None]) -> list[Added]:
    """Project and add; the store's answer for each clip."""
    vectors = retriever.project(logits)  # (n, D)
    return store.add_many(clips, vectors, logits, timelines)
