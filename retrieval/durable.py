"""Durable file writes and file hashing, the one place for both.

Every file the project writes goes through :func:`atomic_path` (or the two helpers on top of it): the data
is written to a temporary file beside the target, fsynced, renamed over the target, and the folder is
fsynced, so after a crash the name holds the old file or the whole new one, never part of one.
"""

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20
STALE_TMP_S = 600  # a temporary file this old belongs to a writer that died


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(path: Path) -> Path:
    """A hidden temporary name beside `path`, unique to this process and thread (two requests may write
    the same content at once; see :func:`remove_stale_tmp`)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def commit_tmp(tmp: Path, path: Path) -> None:
    """Make a fully written temporary file appear under `path`, durably."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write the whole file to; on success it replaces `path` durably, on any
    error it is removed and `path` is left as it was. The parent folder is created when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        yield tmp
        commit_tmp(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomically(path: str | Path, obj, *, indent: int | None = 1) -> None:
    write_bytes_atomically(path, (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode())


def old_enough(path: Path, *, age_s: float = STALE_TMP_S) -> bool:
    try:
        return time.time() - path.stat().st_mtime > age_s
    except FileNotFoundError:
        return False


def remove_stale_tmp(folder: Path) -> None:
    """Temporary files of writers that died (a live writer's are younger than STALE_TMP_S)."""
    for path in folder.glob(".*.tmp"):
        if old_enough(path):
            path.unlink(missing_ok=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, *, on_chunk=None) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; `on_chunk(n)` is told each chunk's size (progress)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            if on_chunk is not None:
                on_chunk(len(block))
    return h.hexdigest()
