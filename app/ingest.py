"""The service's ingestion: an upload is judged at once from its header, its bytes and a job are committed
durably, and one worker (a process at lower scheduling priority, or a thread) tags it later.

Files in the data directory (named in :mod:`index.layout`): the queue (:mod:`index.ingest.queue`), the
uploads acknowledged and waiting, the lock held by the one worker of this data directory.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from app.compose import audio_limits, build_retriever, open_collection, store_config
from app.errors import job_status
from app.settings import Settings, configure_logging
from index.collection import Collection
from index.ingest.queue import Job, JobQueue
from index.ingest.worker import METADATA_FIELD, IngestWorker
from index.layout import INCOMING_DIR, QUEUE_FILE, incoming_location, ingest_lock, temporary_folders
from index.store.metadata import Metadata
from index.store.records import ClipRecord
from retrieval.durable import old_enough, remove_stale_tmp, sha256_bytes, try_lock, write_bytes_atomically
from retrieval.errors import StorageFull, disk_full
from retrieval.extract import probe

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Submitted:
    """What became of an upload: already indexed (`record`), or a job (new, or the one already queued)."""

    record: ClipRecord | None = None
    job: Job | None = None
    created: bool = False


def worker_mode(settings: Settings) -> str:
    """`process` or `thread`: embedded Qdrant is owned by one process, so its worker is a thread."""
    if settings.ingest_worker != "auto":
        return settings.ingest_worker
    embedded_qdrant = settings.store_backend == "qdrant" and not settings.qdrant_url
    return "thread" if embedded_qdrant or settings.qdrant_url == ":memory:" else "process"


class Ingest:
    def __init__(self, settings: Settings, collection: Collection):
        self.settings = settings
        self.collection = collection
        self.data_dir = Path(settings.data_dir)
        self.incoming = self.data_dir / INCOMING_DIR
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.store_name = store_config(settings).name
        self.queue = JobQueue(self.data_dir / QUEUE_FILE, store=self.store_name)
        self.limits = audio_limits(settings)
        self.mode = worker_mode(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    # -- requests -----------------------------------------------------------------------------------------
    def submit(self, data: bytes, name: str, meta: Metadata = Metadata()) -> Submitted:
        """Judge the upload from its header (AudioDecodeError, AudioTooLong: nothing is written), then
        answer the indexed clip, the job already queued for these bytes, or a new job once its bytes and
        its row (with the clip's metadata to be) are durable (StorageFull when the disk is full: nothing is
        left behind). Content already indexed or queued keeps the metadata it has."""
        info = probe(data, limits=self.limits, name=name)
        self.collection.store.check_current()  # re-projected beside this service: nothing could be stored
        sha = sha256_bytes(data)
        record = self.collection.store.get_by_sha256(sha)
        if record is not None:
            return Submitted(record=record)
        active = self.queue.find_active(sha)
        if active is not None:
            return Submitted(job=active)
        location = incoming_location(sha, self.store_name)
        path = self.data_dir / location
        try:
            write_bytes_atomically(path, data)
        except OSError as e:
            if disk_full(e):
                raise StorageFull(f"no space left to store the upload: {e}; nothing was stored") from e
            raise
        windowing = self.collection.retriever.spec.windowing
        windows = windowing.n_windows(round(info.duration_s * windowing.sample_rate))
        fields = {METADATA_FIELD: meta.to_dict()} if not meta.empty else None
        try:
            job, created = self.queue.enqueue(name=name, sha256=sha, location=location, windows_total=windows,
                                              fields=fields)
        except BaseException:
            if self.queue.find_active(sha) is None:  # no other request's job owns these bytes
                path.unlink(missing_ok=True)
            raise
        return Submitted(job=job, created=created)

    def cancel(self, job_id: int) -> Job | None:
        """Cancel a queued job and remove its bytes; None if there is no such job (JobNotCancellable
        for one that is running or over)."""
        job = self.queue.cancel(job_id)
        if job is not None:
            (self.data_dir / job.location).unlink(missing_ok=True)
        return job

    # -- the worker ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._remove_orphan_bytes()
        if self.mode == "process":
            ctx = multiprocessing.get_context("spawn")
            self._process = ctx.Process(target=_worker_process, name="retrieval-ingest", daemon=True,
                                        args=(self.settings.as_given(), os.getpid(),
                                              logging.getLogger().getEffectiveLevel()))
            self._process.start()
            log.info("ingest worker process %d (nice +%d, %d PaSST thread(s))", self._process.pid,
                     self.settings.ingest_nice, self.settings.ingest_threads)
        else:
            self._thread = threading.Thread(target=run_worker, name="retrieval-ingest", daemon=True,
                                            args=(self.collection, self.queue, self.settings, self._stop))
            self._thread.start()
            log.info("ingest worker thread started")

    def worker_running(self) -> bool:
        """Whether the worker (thread or process) is running: it ends only when stopped, or when it could
        not go on (a store re-projected by another process, a crash at its start: said in the log)."""
        worker = self._process if self._process is not None else self._thread
        return worker is not None and worker.is_alive()

    def stop(self) -> None:
        """Stop the worker; the jobs it was running go back to the queue, that try not counted (a stop is no
        crash: three restarts during one long upload gave it up), and are resumed at the next start."""
        self._stop.set()
        stopped = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            stopped = not self._thread.is_alive()
        if self._process is not None:
            self._process.terminate()
            self._process.join(STOP_TIMEOUT_S)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        if stopped and (released := self.queue.release()):
            log.info("%d upload(s) being tagged go back to the queue for the next start", released)
        self.queue.close()

    def _remove_orphan_bytes(self) -> None:
        """Bytes a crash left between their write and their job's commit, and the temporary files of killed
        writers in the data directory."""
        for folder in [self.incoming, *temporary_folders(self.data_dir)]:
            remove_stale_tmp(folder)
        active = self.queue.locations_in_use()  # every store's: the folder is theirs too
        for path in self.incoming.iterdir():
            relative = f"{INCOMING_DIR}/{path.name}"
            if not path.name.startswith(".") and relative not in active and old_enough(path):
                log.info("removing %s: no queued job refers to it", path)
                path.unlink(missing_ok=True)


def run_worker(collection: Collection, queue: JobQueue, settings: Settings, stop: threading.Event) -> None:
    """Hold the worker lock of this store of the data directory (waiting while another worker has it), then
    work the queue."""
    lock_path = ingest_lock(settings.data_dir, store_config(settings).name)
    with open(lock_path, "a+") as lock:
        while not stop.is_set():
            if try_lock(lock):
                break
            stop.wait(1.0)
        else:
            return
        worker = IngestWorker(queue, collection, name=f"{os.getpid()}-{threading.get_ident()}",
                              max_clips=settings.batch_windows, status_of=job_status)
        worker.serve(stop)


def _worker_process(settings_dump: dict, parent: int, log_level: int = logging.INFO) -> None:
    """The worker process: dies with the service, runs at lower priority with capped PaSST threads, and logs
    as the service does (a spawned process starts with no logging set up: its failed jobs said nothing)."""
    configure_logging(log_level)
    _die_with_parent(parent)
    import torch

    settings = Settings(**settings_dump)
    os.nice(settings.ingest_nice)
    torch.set_num_threads(settings.ingest_threads)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    retriever = build_retriever(settings)
    collection = open_collection(settings, retriever)
    queue = JobQueue(Path(settings.data_dir) / QUEUE_FILE, store=store_config(settings).name)
    try:
        run_worker(collection, queue, settings, stop)
    finally:
        queue.close()
        collection.close()


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the service dies (even by SIGKILL), so no orphan keeps working.
    The signal comes when the *thread* that started the process ends: start it from a thread that lives as
    long as the service (app/main.py starts it in the event loop's)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        log.warning("cannot ask to die with the service on this system")
    if os.getppid() != parent:  # the service died before the request above
        os._exit(1)
