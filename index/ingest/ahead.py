"""Files decoded ahead of PaSST by processes of their own, for `retrieval index add` beside a GPU.

Where PaSST runs on a GPU, a library of short files is bound by the work done for each file on the CPU:
decoding and resampling it, hashing its samples (its fingerprint) and reading its tags, about ten times what
PaSST takes for it. :class:`FilesAhead` hands that work for the next files to a pool of processes (spawned:
the tagging process has torch and CUDA) while the tagging process tags and stores the files before them;
:func:`ready_file` is what each process does with a file, which is what :func:`index.ingest.worker.ingest`
does itself for a file it is not handed ready (a file's clip is the same either way). A long recording
(longer than `AudioLimits.whole_up_to_s`) is not read here: it is streamed where it is tagged.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.ingest.embedded import file_metadata
from index.store.metadata import Metadata
from retrieval.audio import DecodedAudio
from retrieval.errors import AudioDecodeError
from retrieval.extract import AudioLimits, decode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ready:
    """A file decoded ahead: its audio (its fingerprint taken) and what it says, or why it cannot be read."""
    audio: DecodedAudio | None
    found: Metadata = Metadata()
    error: AudioDecodeError | None = None

    def decoded(self) -> DecodedAudio:
        """The audio, or the decoding's error raised as decoding it here would have."""
        if self.error is not None:
            raise self.error
        assert self.audio is not None
        return self.audio


def ready_file(path: Path, name: str, limits: AudioLimits) -> Ready:
    """Decode the file, take its fingerprint and read its metadata: a pool process's work for one file."""
    try:
        audio = decode(path, limits=limits, name=name)
    except AudioDecodeError as e:
        return Ready(None, error=e)
    audio.fingerprint  # noqa: B018 - hashed here, not in the tagging process
    return Ready(audio, file_metadata(path, name))


def _quiet() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the tagging process's to act on


class FilesAhead:
    """`processes` processes decoding the files they are handed; use as a context manager."""

    def __init__(self, processes: int, limits: AudioLimits):
        self.limits = limits
        self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_quiet)

    def submit(self, files: Iterable[tuple[Any, Path, str]]) -> dict[Any, Future[Ready]]:
        """Start decoding each (key, path, name); their futures by key (none once the pool is broken: a
        process killed, the files are then decoded in the tagging process)."""
        try:
            return {key: self._pool.submit(ready_file, path, name, self.limits) for key, path, name in files}
        except BrokenProcessPool:
            return {}

    @staticmethod
    def collect(futures: dict[Any, Future[Ready]]) -> dict[Any, Ready]:
        """What the processes made of the files, by key. A file whose process failed otherwise than by a
        decoding error (out of memory, killed) is left out: the tagging process then decodes it itself."""
        ready = {}
        for key, future in futures.items():
            try:
                ready[key] = future.result()
            except Exception as e:  # noqa: BLE001 - done again in the tagging process, which reports it
                log.debug("decoding %s ahead failed (%s); decoding it in the tagging process", key, e)
        return ready

    def __enter__(self) -> FilesAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)
