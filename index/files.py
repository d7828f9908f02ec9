"""Durable file writes: a temporary file, fsync, rename, fsync of the folder."""

import os
import time
from pathlib import Path

STALE_TMP_S = 600  # a temporary file this old belongs to a writer that died


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def commit_tmp(tmp: Path, path: Path) -> None:
    """Make a fully written temporary file appear under `path`, durably."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    tmp = tmp_name(path)
    tmp.write_bytes(data)
    commit_tmp(tmp, path)


def old_enough(path: Path, *, age_s: float = STALE_TMP_S) -> bool:
    try:
        return time.time() - path.stat().st_mtime > age_s
    except FileNotFoundError:
        return False


def remove_stale_tmp(folder: Path) -> None:
    for path in folder.glob(".*.tmp"):
        if old_enough(path):
            path.unlink(missing_ok=True)
