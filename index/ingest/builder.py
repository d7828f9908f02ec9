"""Fill a collection from files and folders: hash, skip what is stored, decode, tag, project, add.

It runs the ingest worker's own loop (:func:`index.ingest.worker.ingest`): `batch_clips` files at a time,
their windows together through PaSST. Every add commits on its own, so an interrupted run keeps what it did
and the next run skips it (by content hash) and goes on where it stopped. A file that fails is reported with
its reason and the run goes on. The progress bar counts PaSST windows (the work), with clips/s and an ETA;
a long recording (hours) is read and tagged window by window, so the bar moves through its windows too, and
it is stored whole once its last window is tagged (an interrupted file is indexed again by the next run).

Each file may come with the user's metadata (`metadata(path)`): a new clip is stored with it laid over what
the file says; a file already stored gets it laid over what the clip holds (index/store/metadata.py
`Metadata.over`). A file that changed where it lies (retagged in a librarian's tool, re-edited: other
bytes, so another sha256) is decoded: if its audio is what a clip from that path holds (the same
`audio_sha256`: retagged, re-wrapped), that clip is kept, with the file's sha256 and what the user set over
what the file says now (Collection.take_file_metadata), and PaSST does not run
(:func:`index.ingest.worker.ingest`); otherwise (re-edited audio) it
is indexed as the clip it is now, which then replaces the clip indexed from that path before
(:func:`replace_changed`). Either way a library re-run after retagging holds each file once. A file moved or
renamed (the same bytes; its old path gone, or holding other bytes now) keeps its clip, whose location, name
and UCS fields follow it.

A clip's name is its file's name as :func:`index.store.names.clip_name` stores it (an upload of the file
is named the same); its location is the file's path as it is, so that a rerun finds the file where it was. A
file whose path is not UTF-8 text is listed as failed (MISNAMED): its place could not be stored.
"""

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from index.collection import Collection
from index.ingest.ahead import FilesAhead, Ready
from index.ingest.embedded import file_metadata
from index.ingest.worker import MISNAMED, Item, Result, ingest, left_its_path
from index.store.metadata import Metadata, MetaLayers
from index.store.names import is_text
from index.store.records import ClipRecord, FileNow
from retrieval.durable import sha256_file
from retrieval.errors import (
    AudioTooLong,
    CheckpointMismatch,
    ModelNotFound,
    RetrievalError,
    TooManyChannels,
    refuse_one_for_many,
)
from retrieval.extract import AudioLimits, probe
from retrieval.file_types import is_audio_name

log = logging.getLogger(__name__)

# what a folder walk picks up; files named on the command line are tried whatever their name
APPLE_DOUBLE = "._"  # what macOS writes beside each file on a volume without its attributes (._take.wav)
# per-file failures; anything else (the database, a missing model) stops the run
FILE_ERRORS = (RetrievalError, OSError, ValueError, RuntimeError)
FATAL_ERRORS = (ModelNotFound, CheckpointMismatch)
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} windows [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


@dataclass
class BuildReport:
    added: int = 0
    skipped: int = 0  # already indexed (same content)
    updated: int = 0  # of those, how many got new metadata
    replaced: int = 0  # clips of files that changed where they lie, replaced by the clips they are now
    retagged: int = 0  # clips of files whose bytes changed but not their audio, kept with their new metadata
    moved: int = 0  # clips whose file was moved or renamed (skipped, or retagged too): their place follows it
    retagged_moved: int = 0  # of those, the retagged ones (counted in both)
    # (file, clip) of the skipped files that are copies of a clip indexed from another file still there: one
    # clip a sound, which keeps its own file's metadata (the run's for the copy is not laid over it)
    copies: list[tuple[str, ClipRecord]] = field(default_factory=list)
    held: list[tuple[ClipRecord, str]] = field(default_factory=list)  # (the clip each file is, its path)
    arrived: set[int] = field(default_factory=set)  # clips moved this run to where their files are now
    files: list[Path] = field(default_factory=list)  # the audio files the run found (resolved)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    folders: int = 0  # sub-folders of the folders given that were not walked (not recursive)
    windows: int = 0  # PaSST windows of the clips added (from their headers)
    seconds: float = 0.0

    @property
    def seen(self) -> int:
        return self.added + self.skipped + len(self.failed)


@dataclass
class FoundAudio:
    """What a walk over the files and folders given found."""
    files: list[Path]  # to index, resolved, in a stable order without repeats
    missing: list[Path]  # given, or linked to from a folder walked, but not there
    misnamed: list[Path]  # audio files whose names are not UTF-8 (a clip's name and place are text)
    folders: int = 0  # sub-folders not walked (not recursive)


def find_audio(paths: Iterable[Path], *, recursive: bool = False) -> FoundAudio:
    """The files to index under `paths`: folders give their audio files (by suffix; not macOS's `._` sidecar
    files), with sub-folders when recursive (symbolic links to folders followed); a file named is tried
    whatever its name; a link to an audio file that is not there is missing."""
    found: dict[Path, None] = {}
    walk = FoundAudio([], [], [])
    for path in map(Path, paths):
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            for f in _entries(path, recursive=recursive):
                if f.name.startswith(APPLE_DOUBLE):  # a Mac's sidecar of a file's attributes, not audio
                    continue
                audio = is_audio_name(f.name)
                if audio and f.is_file():
                    found[f.resolve()] = None
                elif audio and f.is_symlink() and not f.exists():
                    walk.missing.append(f)
                elif not recursive and f.is_dir():
                    walk.folders += 1
        else:
            walk.missing.append(path)
    for f in found:
        (walk.misnamed if not is_text(str(f)) else walk.files).append(f)
    return walk


def _entries(folder: Path, *, recursive: bool) -> list[Path]:
    """What `folder` holds, sorted; recursive: and all its sub-folders hold, those reached through symbolic
    links too (a library's folders are often links to other disks), each real folder walked once, so that a
    link back up does not loop."""
    if not recursive:
        return sorted(folder.iterdir())
    walked: set[Path] = set()
    entries: list[Path] = []
    for top, folders, files in os.walk(folder, followlinks=True):
        real = Path(top).resolve()
        if real in walked:
            folders.clear()
            continue
        walked.add(real)
        entries.extend(Path(top) / name for name in (*folders, *files))
    return sorted(entries)


def shown_path(path: Path | str) -> str:
    """A path (or a message naming one) as text that prints on one line: bytes of its name that are not
    UTF-8 written as \\xNN, and characters that do not print (a newline in a file's name) as their escape,
    so that a line of a report is one line a script can read."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


MetadataOf = Callable[[Path], Metadata]  # a file's (resolved path's) metadata, Metadata() for none


def index_paths(collection: Collection, paths: Iterable[Path], *, recursive: bool = False,
                progress: bool = True, batch_clips: int = 1, metadata: MetadataOf | None = None,
                limits: AudioLimits | None = None, decoders: int = 0) -> BuildReport:
    """Add every audio file under `paths` to the collection; see the module docstring. `limits`: what a
    file may be (the composition root passes `index add`'s own, longer, limit; default the collection's).
    `decoders`: processes that decode the next files while PaSST tags these (index/ingest/ahead.py; 0:
    each file decoded where it is tagged)."""
    refuse_one_for_many(paths, (str, Path), "the paths to index")
    limits = limits or collection.limits
    walk = find_audio(paths, recursive=recursive)
    files = walk.files
    report = BuildReport(failed=[(shown_path(p), "no such file or folder") for p in walk.missing],
                         files=files, folders=walk.folders)
    for path in walk.misnamed:
        report.failed.append((shown_path(path), MISNAMED))
        log.warning("skipping %s: %s", shown_path(path), MISNAMED)
    start = time.perf_counter()
    windowing = collection.retriever.spec.windowing
    planned = {}  # path -> windows, from the headers (a file whose header is refused fails here)
    short = set()  # the files read whole (not streamed): those decoded ahead, with `decoders`
    for path in files:
        try:
            info = probe(path, limits=limits, name=path.name)
            planned[path] = windowing.n_windows(round(info.duration_s * windowing.sample_rate))
            if limits.whole_up_to_s is None or info.duration_s <= limits.whole_up_to_s:
                short.add(path)
        except (AudioTooLong, TooManyChannels) as e:
            if _stored(collection, path):  # indexed under a wider limit: skipped as any file indexed
                planned[path] = 0
            else:
                _failed(report, path, e)
        except FILE_ERRORS as e:
            _failed(report, path, e)
    paths_left = list(planned)
    chunks = [paths_left[i:i + max(1, batch_clips)] for i in range(0, len(paths_left), max(1, batch_clips))]
    with logging_redirect_tqdm(), tqdm(total=sum(planned.values()), unit="window", desc="index",
                                       bar_format=BAR_FORMAT, disable=not progress) as bar, \
            FilesAhead(decoders, limits) if decoders else contextlib.nullcontext() as ahead:
        upcoming = _items(collection, chunks[0], report, metadata, ahead, short) if chunks else ([], {})
        for k in range(len(chunks)):
            items, futures = upcoming
            if k + 1 < len(chunks):  # the next files decode while these are tagged
                upcoming = _items(collection, chunks[k + 1], report, metadata, ahead, short)
            shown: dict[Path, int] = {}  # windows the bar has counted, per file
            ready = FilesAhead.collect(futures) if futures else None
            for result in _ingest(collection, items, bar, shown, limits, ready):
                skipped, added = report.skipped, report.added
                _count(collection, report, result)
                report.windows += planned[result.item.key] if report.added > added else 0
                left = planned[result.item.key] - shown.get(result.item.key, 0)
                if report.skipped > skipped:  # indexed already: its windows were never work to wait for
                    bar.total -= left
                    bar.refresh()
                else:
                    bar.update(left)  # failed, or counted short
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(clips_s=f"{report.added / elapsed:.2f}", added=report.added,
                            skipped=report.skipped, failed=len(report.failed), refresh=False)
        _index_again(collection, report, bar, metadata, limits)
    seen = {record.sha256 for record, _ in report.held}
    for record, location in report.held:  # once every file is hashed: a copy of an old version is seen
        report.replaced += replace_changed(collection, record, location, seen, report.arrived)
    report.seconds = time.perf_counter() - start
    log.info("indexed %d new clips, skipped %d already indexed, %d failed, in %.1f s",
             report.added, report.skipped, len(report.failed), report.seconds)
    return report


def _stored(collection: Collection, path: Path) -> bool:
    """Whether the file's bytes are a clip of the collection's."""
    try:
        return collection.store.get_by_sha256(sha256_file(path)) is not None
    except OSError:
        return False


def _items(collection: Collection, chunk: list[Path], report: BuildReport, metadata: MetadataOf | None,
           ahead: FilesAhead | None = None, short: set[Path] | frozenset = frozenset()
           ) -> tuple[list[Item], dict[Any, Future[Ready]]]:
    """The chunk's files hashed, with the user's metadata; those not stored yet and read whole handed to
    `ahead` to decode (their futures by path)."""
    items = []
    for path in chunk:
        try:
            meta = metadata(path) if metadata is not None else Metadata()
            items.append(Item(path, path.name, path, sha256_file(path), meta))
        except OSError as e:
            _failed(report, path, e)
    if ahead is None:
        return items, {}
    new = [(it.key, it.key, it.name) for it in items
           if it.key in short and collection.store.get_by_sha256(it.sha256) is None]
    return items, ahead.submit(new)


def _ingest(collection: Collection, items: list[Item], bar: tqdm, shown: dict[Path, int], limits: AudioLimits,
            ready: dict[Any, Ready] | None = None) -> list[Result]:
    """Ingest the items together; the bar moves as PaSST's windows are done."""
    def windows_done(item: Item, done: int, total: int) -> None:
        bar.update(done - shown.get(item.key, 0))
        shown[item.key] = done

    return ingest(collection, items, on_windows=windows_done, limits=limits, ready=ready)


def _index_again(collection: Collection, report: BuildReport, bar: tqdm, metadata: MetadataOf | None,
                 limits: AudioLimits) -> None:
    """Files of this run found to be a clip whose file was then retagged (a copy of the old version, walked
    before it): that clip holds the retagged file's bytes now, so they are indexed as the files they are."""
    now = {r.id: r.sha256 for r, _ in report.held}  # each clip's sha256 as the run left it
    lost = [Path(path) for r, path in report.held if now[r.id] != r.sha256]
    if not lost:
        return
    report.held = [(r, path) for r, path in report.held if now[r.id] == r.sha256]
    report.skipped -= len(lost)
    for result in _ingest(collection, _items(collection, lost, report, metadata)[0], bar, {}, limits):
        _count(collection, report, result)


def _count(collection: Collection, report: BuildReport, result: Result) -> None:
    if result.error is not None:
        if isinstance(result.error, FATAL_ERRORS):
            raise result.error
        _failed(report, result.item.key, result.error)
    elif result.created:
        report.added += 1
    elif result.retagged:
        report.retagged += 1
        report.moved += result.moved
        report.retagged_moved += result.moved
        if result.moved and result.record is not None:
            report.arrived.add(result.record.id)
    else:
        report.skipped += 1
        stored, given, path = result.record, result.item.meta, str(result.item.source)
        if stored is not None and moved_from(stored, path):
            result.record = move_here(collection, stored, path, result.item.name, given)
            report.updated += not given.empty and given.over(stored.meta) != stored.meta
            report.moved += 1
            report.arrived.add(stored.id)
        elif stored is not None and stored.location != path:
            report.copies.append((path, stored))
        elif stored is not None and not given.empty:  # the run's metadata made the user's
            result.record = collection.give_metadata(stored.id, given) or stored
            report.updated += result.record != stored
    if result.record is not None:
        report.held.append((result.record, str(result.item.source)))


def moved_from(record: ClipRecord, path: str) -> bool:
    """Whether the stored clip whose bytes the file at `path` holds was indexed from a path that no longer
    holds them (the library reorganised: moved, renamed, two names swapped, another file moved over it). A
    clip whose file is still there, unchanged, stays where it is (the file at `path` is a copy: one clip per
    content)."""
    return record.location != path and left_its_path(record)


def replace_changed(collection: Collection, record: ClipRecord, location: str, seen: set[str],
                    arrived: set[int]) -> int:
    """The clips stored from this path before its file changed (retagged, re-edited: other bytes) are
    replaced by the clip its bytes are now (`record`), then removed; returns how many. What the user set on
    them goes into it as into a file read again (Collection.take_file_metadata): under what the run gave,
    over what the file says now; what their file said then and says no more is left out, and what the user
    took off stays off while the file says it (a clip stored before the two were kept apart gives all it
    held, under the file's values now). A clip moved here this run (`arrived`: another file moved over this
    one) keeps its own metadata: the replaced clip's was another sound's. One whose bytes are another file's
    of this run (`seen`: the run's sha256s; a copy made before the change) stays."""
    stale = [r for r in collection.store.at_location(location)
             if r.id != record.id and not r.stored_copy and r.sha256 not in seen]
    if not stale:
        return 0
    if record.location == location and record.id not in arrived:
        layers = record.meta_layers or MetaLayers()
        own, dropped, before = layers.own, layers.dropped, Metadata()
        for old in reversed(stale):  # the latest first
            if old.meta_layers is not None:
                own, dropped = own.over(old.meta_layers.own), dropped.over(old.meta_layers.dropped)
            else:  # stored before the two were kept apart: all it held, under the file's values now
                before = before.over(old.meta)
        collection.take_file_metadata(record.id, layers.file, given=own, dropped=dropped)
        if not before.empty:
            collection.edit_metadata(record.id, before.under)
    collection.remove([r.id for r in stale])
    log.info("%s changed since it was indexed: clip %s replaced by clip %d", location,
             ", ".join(str(r.id) for r in stale), record.id)
    return len(stale)


def move_here(collection: Collection, stored: ClipRecord, path: str, name: str,
              given: Metadata = Metadata()) -> ClipRecord:
    """The clip whose bytes the file at `path` holds, moved there: the file's own metadata now (its new
    name's UCS fields) over the clip's, `given` (the run's) over both, and its new place, in one write."""
    return collection.take_file_metadata(stored.id, file_metadata(Path(path), name), given=given,
                                         file_first=True, file=FileNow(location=path, name=name)) or stored


def _failed(report: BuildReport, path: Path, e: BaseException) -> None:
    reason = str(e) if isinstance(e, RetrievalError) else f"{type(e).__name__}: {e}"
    log.warning("skipping %s: %s", path, reason)
    report.failed.append((str(path), reason))
