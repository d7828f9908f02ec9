"""Ingestion: audio -> PaSST (windows of several clips in each forward pass) -> the collection, each clip with
its windows and waveform peaks.

:func:`ingest` is the one way a clip is added to a collection: the service's ingest worker (jobs of
:mod:`index.ingest.queue`) and `retrieval index add` both run it. :class:`IngestWorker` is the worker: it
claims queued jobs, ingests their stored bytes and marks each job done (with its clip) or failed (with the
reason), removing the bytes either way.

A new clip's metadata is what the user gave laid over what the file says inside and in its UCS name
(:mod:`index.ingest.embedded`), read once, after the clip decoded and before it is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from index.collection import Analysis, Collection
from index.ingest.ahead import Ready
from index.ingest.embedded import file_metadata
from index.ingest.queue import Job, JobQueue
from index.store.metadata import Metadata, MetaLayers
from index.store.names import clip_name, is_text
from index.store.records import ClipRecord, FileNow
from retrieval.audio import DecodedAudio, LongWave
from retrieval.durable import sha256_file
from retrieval.errors import AudioDecodeError, CheckpointMismatch, RetrievalError, disk_full
from retrieval.extract import AudioLimits, decode

log = logging.getLogger(__name__)

METADATA_FIELD = "metadata"  # a job's field holding the upload's Metadata.to_dict()
MISNAMED = ("its name is not UTF-8 text (a clip's name and place are stored as text): rename it, for example "
            "with `convmv -f latin1 -t utf-8 --notest`")


@dataclass(frozen=True)
class Item:
    key: Any  # the caller's handle (a job id, a path)
    name: str  # as given: kept as the clip's name is stored (index/store/names.py clip_name)
    source: Path | bytes  # a file indexed where it lies, or an upload's bytes (kept under audio/)
    sha256: str
    meta: Metadata = Metadata()  # the user's description, tags and fields for the new clip (over the file's)
    found: Metadata = Metadata()  # what the file and its name say (read by ingest)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", clip_name(self.name))  # the same name whichever way it came in

    @property
    def layers(self) -> MetaLayers:
        """A new clip's metadata: the user's (`meta`) over the file's (`found`), kept apart."""
        return MetaLayers(self.found, self.meta)


@dataclass
class Result:
    item: Item
    record: ClipRecord | None = None
    created: bool = False
    error: Exception | None = None
    retagged: bool = False  # the clip of a file whose bytes changed but not its audio: kept, no PaSST
    moved: bool = False  # ... and whose file was moved too (its clip's location and name follow it)


WindowsDone = Callable[[Item, int, int], None]  # (item, windows done, windows in all)


def ingest(collection: Collection, items: Sequence[Item], *, on_windows: WindowsDone | None = None,
           limits: AudioLimits | None = None, ready: Mapping[Any, Ready] | None = None) -> list[Result]:
    """Decode every item, tag all their windows together (`batch_windows` per forward pass), then project
    and store each clip. Content already stored costs no PaSST, nor does the same audio in other bytes (a
    retagged file keeps its clip; another file's copy of a stored clip's audio takes its analysis); an item
    that fails (bad audio, a full disk) has its error in its result and the others go on. Results are in
    the items' order; a decoded item in its result carries what its file said (`found`).

    `limits` (default: the collection's, the uploads') is what a clip may be: `index add` passes its own.
    `ready`: items decoded ahead (index/ingest/ahead.py), by key; the others are decoded here.
    A long clip (longer than `limits.whole_up_to_s`) is read and tagged window by window, on its own, and
    stored in one write with all its windows once its last window is tagged: an exception before (from
    `on_windows` too) leaves nothing of it stored, and a rerun indexes it from the start."""
    items = list(items)
    results = {i: Result(it) for i, it in enumerate(items)}
    decoded: list[tuple[int, DecodedAudio]] = []
    later: list[tuple[int, DecodedAudio, str]] = []  # the same audio as an item of this batch before it
    tagging: set[str] = set()  # the fingerprints of `decoded`
    for i, it in enumerate(items):
        if isinstance(it.source, Path) and not is_text(str(it.source)):  # its place could not be stored
            results[i].error = RetrievalError(MISNAMED)
            continue
        existing = collection.store.get_by_sha256(it.sha256)
        if existing is not None:
            results[i].record = existing
            continue
        done = ready.get(it.key) if ready else None
        try:
            audio = (done.decoded() if done else
                     decode(it.source, limits=limits or collection.limits, name=it.name))
        except AudioDecodeError as e:
            results[i].error = e
            continue
        found = done.found if done else file_metadata(it.source, it.name)
        items[i] = results[i].item = replace(it, found=found)
        fingerprint = _fingerprint(collection, audio)
        if fingerprint is not None and _without_passt(collection, results[i], audio, fingerprint):
            continue
        if fingerprint in tagging:
            later.append((i, audio, fingerprint))
            continue
        if fingerprint is not None:
            tagging.add(fingerprint)
        decoded.append((i, audio))
    if decoded:
        _tag_and_store(collection, items, decoded, results, on_windows)
    again = [(i, audio) for i, audio, fingerprint in later  # tagged above, unless that failed
             if not _without_passt(collection, results[i], audio, fingerprint)]
    if again:
        _tag_and_store(collection, items, again, results, on_windows)
    return [results[i] for i in range(len(items))]


def _without_passt(collection: Collection, result: Result, audio: DecodedAudio, fingerprint: str) -> bool:
    """Whether the item's audio, stored already, made its result with no PaSST: a retagged (or moved and
    retagged) file keeps its clip; the same audio in other bytes is a clip that takes the stored analysis."""
    kept = retagged(collection, result.item, fingerprint)
    if kept is not None:
        result.record, result.moved = kept
        result.retagged = True
        return True
    same = _same_audio(collection, result.item, fingerprint)
    if same is None:
        return False
    it = result.item
    _store(result, partial(collection.add_analysed, audio, same, source=it.source, sha256=it.sha256,
                           name=it.name, layers=it.layers))
    return True


def _fingerprint(collection: Collection, audio: DecodedAudio) -> str | None:
    """The audio's fingerprint (`audio_sha256`), when a stored clip could hold the same samples. A short
    file's costs about a millisecond per 10 s; a long file's one more pass of decoding, so it is taken only
    when a clip exactly as long as it is has one (the same samples at the same rate last as long)."""
    if isinstance(audio.wave, LongWave) and not any(
            r.audio_sha256 for r in collection.store.lasting(audio.duration_s)):
        return None
    return audio.fingerprint


def retagged(collection: Collection, item: Item, fingerprint: str) -> tuple[ClipRecord, bool] | None:
    """A file indexed where it lies whose bytes changed but not its audio (retagged, re-wrapped: the same
    `audio_sha256`, `fingerprint`, as a clip stored from that path), or one retagged and moved (the same
    audio as a clip whose file is gone): that clip, now with the file's sha256, place and metadata
    (Collection.take_file_metadata), in one write, and whether it moved; no PaSST. None when no such clip
    holds this audio."""
    if not isinstance(item.source, Path):
        return None
    path = str(item.source)
    same = [r for r in collection.store.at_location(path)
            if r.audio_sha256 == fingerprint and not r.stored_copy]
    moved = not same
    if moved:  # moved and retagged: a clip of this audio whose file is no longer where it was
        same = [r for r in collection.store.with_audio(fingerprint) if left_its_path(r)]
    if not same:
        return None
    file = FileNow(sha256=item.sha256, location=path if moved else None, name=item.name if moved else None)
    kept = collection.take_file_metadata(same[-1].id, item.found, given=item.meta, file_first=True,
                                         file=file)  # the latest
    if kept is None:
        return None
    log.info("%s: %s, its audio unchanged: clip %d kept with its new metadata", item.name,
             "moved and retagged" if moved else "retagged", kept.id)
    return kept, moved


def _same_audio(collection: Collection, item: Item, fingerprint: str) -> Analysis | None:
    """The analysis of a stored clip whose samples these are (the same sound in other bytes: a copy in
    another pack, tagged otherwise; an upload retagged), so that PaSST does not run again for it."""
    found = collection.analysis_of_audio(fingerprint)
    if found is None:
        return None
    log.info("%s: the same audio as clip %d, whose analysis it takes (no PaSST)", item.name, found[0])
    return found[1]


def left_its_path(record: ClipRecord) -> bool:
    """Whether a clip indexed where its file lay no longer finds its bytes there (the file moved, renamed, or
    another file took its path); an upload's stored copy never moves."""
    if record.stored_copy:
        return False
    try:
        return sha256_file(record.location) != record.sha256
    except OSError:  # gone, or no longer readable there
        return True


def _tag_and_store(collection: Collection, items: Sequence[Item], decoded: list[tuple[int, DecodedAudio]],
                   results: dict[int, Result], on_windows: WindowsDone | None) -> None:
    windowing = collection.retriever.spec.windowing
    totals = [windowing.n_windows(len(audio.wave)) for _, audio in decoded]
    done = [0] * len(decoded)

    def progress(clips: list[int]) -> None:
        for c in clips:
            done[c] += 1
        if on_windows is not None:
            for c in sorted(set(clips)):
                on_windows(items[decoded[c][0]], done[c], totals[c])

    held = [c for c, (_, audio) in enumerate(decoded) if not isinstance(audio.wave, LongWave)]
    extracted = dict(zip(held, collection.extract([decoded[c][1] for c in held],
                                                  on_batch=lambda clips: progress([held[c] for c in clips])),
                         strict=True))
    for c, (i, audio) in enumerate(decoded):
        if c not in extracted:  # a long clip: alone, read as it is tagged (its bad samples are found then)
            def told(clips: list[int], c: int = c) -> None:
                progress([c] * len(clips))

            try:
                extracted[c] = collection.extract([audio], on_batch=told)[0]
            except AudioDecodeError as e:
                results[i].error = e
    for c, (i, _) in enumerate(decoded):
        if c not in extracted:
            continue
        ex, it = extracted[c], items[i]
        _store(results[i], partial(collection.add_extracted, ex, source=it.source, sha256=it.sha256,
                                   name=it.name, layers=it.layers))


def _store(result: Result, add: Callable[[], tuple[ClipRecord, bool]]) -> None:
    """A new clip stored by `add` into its result; a store error fails this clip, not the run. A full disk
    and a store re-projected by another process are raised: no clip can be stored until there is room, or
    until this process runs the model the store now holds, and the clip is not at fault."""
    try:
        result.record, result.created = add()
    except (OSError, RetrievalError) as e:
        if disk_full(e) or isinstance(e, CheckpointMismatch):
            raise
        log.warning("could not store %s: %s", result.item.name, e)
        result.error = e


def job_metadata(job: Job) -> Metadata:
    """The metadata an upload came with (kept in its job's fields under `metadata`)."""
    return Metadata.from_dict(job.fields.get(METADATA_FIELD))


FULL_DISK_WAIT_S = 10.0  # between tries of a worker whose disk is full


class IngestWorker:
    """Claims queued jobs (up to `max_clips` at a time, so one forward pass can hold windows of several),
    ingests them and records the outcome. Only one worker may run per store of a data directory (the
    caller holds its lock), which is what makes :meth:`JobQueue.recover` at its start safe."""

    def __init__(self, queue: JobQueue, collection: Collection, *, name: str, max_clips: int = 8,
                 on_job: Callable[[Job], None] | None = None,
                 status_of: Callable[[Exception], int] = lambda error: 500):
        self.queue = queue
        self.collection = collection
        self.name = name
        self.max_clips = max(1, max_clips)
        self.on_job = on_job  # told about every job that ended (metrics)
        self.status_of = status_of  # what a request waiting on a job that failed answers (the service's)

    def bytes_path(self, job: Job) -> Path:
        return self.collection.data_dir / job.location

    def run_once(self) -> int:
        """Claim and ingest one batch of jobs; returns how many were claimed (0: the queue is empty)."""
        jobs = self.queue.claim(worker=self.name, limit=self.max_clips)
        items, by_key = [], {}
        for job in jobs:
            try:
                data = self.bytes_path(job).read_bytes()
            except OSError as e:
                self._fail(job, RetrievalError(f"the stored upload is gone: {e}"))
                continue
            items.append(Item(job.id, job.name, data, job.sha256, job_metadata(job)))
            by_key[job.id] = job

        def progress(item: Item, done: int, total: int) -> None:
            self.queue.progress(item.key, windows_done=done, windows_total=total)

        for result in ingest(self.collection, items, on_windows=progress):
            job = by_key[result.item.key]
            if result.record is not None:
                self._end(self.queue.finish(job.id, clip_id=result.record.id))
            else:
                self._fail(job, result.error or RetrievalError("ingestion failed"))
            self.bytes_path(job).unlink(missing_ok=True)
        return len(jobs)

    def _fail(self, job: Job, error: Exception) -> None:
        log.info("job %d (%s) failed: %s", job.id, job.name, error)
        self._end(self.queue.fail(job.id, error=str(error), http_status=self.status_of(error)))
        self.bytes_path(job).unlink(missing_ok=True)

    def _end(self, job: Job) -> None:
        if self.on_job is not None:
            self.on_job(job)

    def serve(self, stop: threading.Event, *, idle_s: float = 0.2) -> None:
        """Work until `stop` is set: the queue is polled every `idle_s` while empty."""
        self.queue.recover()
        while not stop.is_set():
            try:
                claimed = self.run_once()
            except Exception as e:  # keep the worker alive
                claimed = 0
                if disk_full(e):  # its jobs back to the queue, their bytes kept, tried when there is room
                    log.warning("the disk is full: uploads wait in the queue (%s); trying again in %g s", e,
                                FULL_DISK_WAIT_S)
                    self._release()
                    stop.wait(FULL_DISK_WAIT_S)
                elif isinstance(e, CheckpointMismatch):  # `index reproject` ran beside this service
                    log.error("%s: uploads wait in the queue, with their bytes, for the service's restart", e)
                    self._release()
                    return
                else:  # the jobs stay running and are recovered at restart
                    log.exception("the ingest worker's batch failed")
            if not claimed:
                stop.wait(idle_s)

    def _release(self) -> None:
        try:
            self.queue.release()
        except (OSError, RetrievalError) as e:  # still full: they are recovered at the next start
            log.warning("the queue could not be written either: %s", e)
