"""A long file decoded in a process of its own, ahead of the process that tags it.

Where PaSST is fast (a GPU), decoding and resampling a long file on the tagging process's own core is half of
its time; a thread does not overlap them (the decoding loop's numpy steps hold the GIL between libsndfile's
and soxr's calls). So a :class:`retrieval.audio.LongWave` read from a path is decoded by a child interpreter
(``python -P -m retrieval.decoder_process PATH LABEL``: a subprocess, which the service's ingest worker,
itself a daemonic process, may start) running the same loop (:func:`retrieval.audio.file_blocks`), while a
thread of the caller's reads what it writes into a bounded queue (`AHEAD_CHUNKS`), so that the child decodes
ahead while the caller tags. The child writes its blocks joined into chunks of about `CHUNK_SAMPLES` (the same
samples in fewer, larger pieces), through a pipe made as large: the reading thread then takes the GIL a few
hundred times an hour of audio, not tens of thousands (blocks of 2^16 frames through a 64 KB pipe made the
tagging thread slower than decoding in it).

The child writes each chunk as its sample count (8 bytes, little-endian) then its samples (float32,
little-endian); a count of 0 ends the file. A file it cannot decode: the error's message on its stderr (one
JSON string) and exit status 3, raised in the caller as the AudioDecodeError it is in process. A child that
ends any other way (killed, out of memory) is an AudioDecodeError naming its exit status. Either is raised as
soon as the caller next reads, not after the chunks decoded before it (tagging them would be lost work). A
caller that stops reading early (closes the generator, or is interrupted: the child ignores SIGINT, which a
terminal sends to both) kills the child; a caller that dies leaves it a closed pipe, on which it stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np

from retrieval.errors import AudioDecodeError

CHUNK_SAMPLES = 1 << 18  # samples written at a time: 1 MiB of float32, about 8 s of audio
AHEAD_CHUNKS = 8  # chunks decoded ahead of the caller (about a minute of audio)
F_SETPIPE_SZ = 1031  # Linux's fcntl to resize a pipe
HEADER = 8
DECODE_ERROR = 3  # the child's exit status for a file it cannot decode (its message on stderr)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the retrieval package
_END = object()  # the pump's word that the child's output ended (cleanly or not: its exit status says)


def blocks_in_process(path: str | Path, *, label: str) -> Iterator[np.ndarray]:
    """The samples of :func:`retrieval.audio.file_blocks` of the file at `path` (in chunks of about
    CHUNK_SAMPLES), decoded by a child process."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a child writing much cannot block on it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(  # this package where the caller found it
            [str(PACKAGE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
        # -P: not the working directory first on the import path (a retrieval/ or numpy.py there would be
        # imported in place of the caller's)
        child = subprocess.Popen([sys.executable, "-P", "-m", __name__, str(path), label],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, bufsize=0,
                                 env=env)
        assert child.stdout is not None
        with contextlib.suppress(OSError):  # a chunk in one write where the system allows (Linux: 1 MiB)
            fcntl.fcntl(child.stdout.fileno(), F_SETPIPE_SZ, 4 * CHUNK_SAMPLES)
        blocks: queue.Queue[object] = queue.Queue(maxsize=AHEAD_CHUNKS)
        stop = threading.Event()
        out = cast(io.RawIOBase, child.stdout)  # unbuffered (bufsize=0)
        pump = threading.Thread(target=_pump, args=(out, blocks, stop), daemon=True, name=f"decoder {label}")
        pump.start()
        try:
            while (item := blocks.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                if child.poll():  # it failed: said now, not after the minute of audio it had queued
                    break
                yield item  # type: ignore[misc]
            if child.wait() != 0:
                errors.seek(0)
                said = errors.read().decode("utf-8", "replace").strip()
                if child.returncode == DECODE_ERROR and said:
                    raise AudioDecodeError(_message(said))
                raise AudioDecodeError(f"{label}: the decoding process ended with exit status "
                                       f"{child.returncode}" + (f": {said[-500:]}" if said else ""))
        finally:
            stop.set()
            if child.poll() is None:
                child.kill()
            child.wait()
            with contextlib.suppress(queue.Empty):  # unblock a pump waiting for room
                while True:
                    blocks.get_nowait()
            pump.join()
            child.stdout.close()


def _pump(out: io.RawIOBase, blocks: queue.Queue[object], stop: threading.Event) -> None:
    """Read the child's blocks into `blocks` until its output ends (then _END) or the caller stops."""
    try:
        while not stop.is_set():
            head = _read_exact(out, HEADER)
            n = int.from_bytes(head, "little") if len(head) == HEADER else 0
            if n == 0:
                break
            data = _read_exact(out, 4 * n)
            if len(data) != 4 * n:
                break  # cut short: the exit status says why
            _put(blocks, np.frombuffer(data, dtype="<f4"), stop)
    except BaseException as e:  # the caller re-raises it
        _put(blocks, e, stop)
    _put(blocks, _END, stop)


def _put(blocks: queue.Queue[object], item: object, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            blocks.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def _message(said: str) -> str:
    """The decoding error the child wrote as its last line (JSON: a file name may hold a line break)."""
    with contextlib.suppress(ValueError):
        message = json.loads(said.splitlines()[-1])
        if isinstance(message, str):
            return message
    return said


def _read_exact(out: io.RawIOBase, n: int) -> bytearray:
    """Up to `n` bytes, fewer only where the output ended."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = out.readinto(view[got:])
        if not k:
            break
        got += k
    del view
    return buf if got == n else buf[:got]


def main(argv: list[str]) -> int:
    """The child: decode the file at argv[0] (named argv[1] in errors) and write its blocks to stdout."""
    from retrieval.audio import file_blocks

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the caller's to act on: it ends this process
    path, label = argv
    out = sys.stdout.buffer
    pending: list[np.ndarray] = []

    def write() -> None:
        chunk = np.concatenate(pending).astype("<f4", copy=False)
        out.write(len(chunk).to_bytes(HEADER, "little"))
        out.write(chunk.data)
        pending.clear()

    try:
        held = 0
        for block in file_blocks(path, label=label):
            pending.append(block)
            held += len(block)
            if held >= CHUNK_SAMPLES:
                write()
                held = 0
        if pending:
            write()
        out.write((0).to_bytes(HEADER, "little"))
        out.flush()
    except AudioDecodeError as e:
        sys.stderr.write(json.dumps(str(e)) + "\n")
        return DECODE_ERROR
    except BrokenPipeError:  # the caller stopped reading
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
