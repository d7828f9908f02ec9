"""Durable file writes and file hashing, the one place for both.

Every file the project writes goes through this module, in one of three shapes:

* **a whole file** (the common case): :func:`atomic_path`, or :func:`write_bytes_atomically`,
  :func:`write_text_atomically` and :func:`write_json_atomically` on top of it. The data is written to a
  temporary file beside the target, fsynced, renamed over the target, and the folder is fsynced, so after a
  crash the name holds the old file or the whole new one, never part of one. ``exclusive=True`` never
  replaces an existing file (the name appears, whole, only where there was none).
* **a staged folder**: files written plainly into a private scratch folder that nothing reads by name (a
  restore's staging folder, a model fetch's scratch), then made durable all at once by :func:`fsync_tree`
  and given their name by one rename, :func:`move_into_place` (or the restore's own entry-by-entry move,
  :mod:`index.backups.staging`, which fsyncs with :func:`fsync_tree` and :func:`fsync_path`). A crash before
  the rename leaves only the scratch folder, which its owner removes.
* **an append-only log** (a training run's JSONL log): the file is created whole with :func:`atomic_path`
  (so its name is durable), then each record is added by :func:`append_line`: opened for appending, written,
  flushed and fsynced before it returns. Rewriting the file for every line would cost the whole log per
  record; an append cannot replace what is already there, so after a crash the log holds every line that
  was appended before it, and at worst a last line cut short, which a reader must skip.
"""

import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)
CHUNK = 1 << 20
STALE_TMP_S = 600  # a temporary file this old belongs to a writer that died
_UMASK = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file: a whole file written here gets it too


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


def fsync_tree(root: Path) -> None:
    """fsync `root` (a file) or every file and folder under it (a folder, each after its files): what a
    staged file or folder holds is on disk before a rename gives it its name."""
    if not root.is_dir():
        fsync_path(root)
        return
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


def commit_tmp(tmp: Path, path: Path, *, exclusive: bool = False) -> None:
    """Make a fully written temporary file appear under `path`, durably. `exclusive`: never over an existing
    file (FileExistsError, the temporary file left to the caller): a hard link where the file system has
    them, one step; elsewhere a check then a rename, which one writer per name makes safe."""
    os.chmod(tmp, FILE_MODE)  # as open() makes files, whatever the writer made (safetensors makes 0600)
    fsync_path(tmp)
    if not exclusive:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
            if path.exists():
                raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
            os.replace(tmp, path)
        else:
            tmp.unlink()
    fsync_path(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write the whole file to; on success it replaces `path` durably, on any
    error it is removed and `path` is left as it was. The parent folder is created when missing.
    `exclusive`: an existing `path` is never replaced (FileExistsError once the file is written)."""
    path = Path(path)
    make_parent(path)
    tmp = tmp_name(path)
    try:
        yield tmp
        commit_tmp(tmp, path, exclusive=exclusive)
    except OSError as e:
        if e.filename == str(tmp):  # the error names the file asked for, not its hidden temporary name
            e.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def check_parent(path: Path) -> None:
    """What :func:`make_parent` would refuse, said without making anything: a file where a folder above
    `path` should be, or a folder this process cannot write in (read-only, or not its own) where the first
    missing one would be made, or `path` written."""
    path = Path(path).absolute()
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p.is_symlink())
    if not existing.exists():  # a link to nothing
        raise NotADirectoryError(f"{existing} is a link to {os.readlink(existing)}, which is not there: "
                                 f"cannot write {path} below it")
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is a file, not a folder: cannot write {path} below it")
    if not os.access(existing, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot write in {existing} (read-only, or not this user's)",
                              str(path))


def make_parent(path: Path) -> None:
    """The folder `path` goes in, made with the folders above it, once :func:`check_parent` finds nothing
    in the way (so a file among them, or a folder that cannot be written in, is said before anything is
    made or written)."""
    check_parent(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def write_bytes_atomically(path: str | Path, data: bytes | memoryview, *, exclusive: bool = False) -> None:
    with atomic_path(path, exclusive=exclusive) as tmp:
        tmp.write_bytes(data)


def write_text_atomically(path: str | Path, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))


def write_json_atomically(path: str | Path, obj, *, indent: int | None = 1) -> None:
    write_bytes_atomically(path, (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode())


def append_line(path: str | Path, line: str) -> None:
    """Add one line (a newline is added) to the end of the existing log `path`, on disk when this returns.
    The log is created whole first (:func:`write_text_atomically`): appending to a missing file is an
    error, so a log's name is always durable before its first appended line. A last line cut short by a
    writer that was killed is ended first, so that it never runs into this one."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    size = os.fstat(fd).st_size
    lead = "\n" if size and os.pread(fd, 1, size - 1) != b"\n" else ""
    with open(fd, "a", encoding="utf-8") as f:
        f.write(lead + line + "\n")
        f.flush()
        os.fsync(f.fileno())


def move_into_place(src: Path, dest: Path, *, aside: Path) -> Path:
    """Give the fully written file or folder `src` the name `dest`, durably: everything under `src` is
    fsynced (:func:`fsync_tree`), an existing `dest` is first renamed to `aside` (a folder cannot be renamed
    over another), then `src` to `dest`, and the folder is fsynced. `src`, `dest` and `aside` are on one file
    system; `aside` is the caller's to remove."""
    fsync_tree(src)
    if dest.exists():
        os.replace(dest, aside)
    os.replace(src, dest)
    fsync_path(dest.parent)
    return dest


def old_enough(path: Path, *, age_s: float = STALE_TMP_S) -> bool:
    try:
        return time.time() - path.stat().st_mtime > age_s
    except FileNotFoundError:
        return False


def stale_tmp(folder: Path) -> list[Path]:
    """Temporary files (:func:`tmp_name`) in `folder` of writers that died (a live writer's are younger than
    STALE_TMP_S), in name order; none for a folder that is not there."""
    found = sorted(folder.glob(".*.tmp")) if Path(folder).is_dir() else []
    return [path for path in found if path.is_file() and old_enough(path)]


def remove_stale_tmp(folder: Path) -> None:
    """Temporary files of writers that died (:func:`stale_tmp`), removed."""
    for path in stale_tmp(folder):
        path.unlink(missing_ok=True)


def _host() -> str:
    """This machine's name as it goes into a file name: letters, digits, `_` and `-` (a `.` of a domain
    name, or a `/`, as `_`), so that no host's name ends another's after a `.` (node, gpu.node)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def writer_tag() -> str:
    """This process as the writer a scratch folder is named for: `<host>-<pid>` (the host, so that runs of
    several machines writing into one shared folder tell their folders apart)."""
    return f"{_host()}-{os.getpid()}"


def this_hosts_writer() -> str:
    """A regular expression of :func:`writer_tag` for any process of this host, its pid the group `pid`."""
    return rf"{re.escape(_host())}-(?P<pid>\d+)"


def remove_dead_writer_folders(folder: Path, pattern: str, *, left_by: str) -> list[re.Match]:
    """The folders in `folder` whose whole name matches the regular expression `pattern`, which names
    their writer's pid (the group `pid`, a process of this host), removed when that process is gone (each
    said in the log as left by `left_by`); the matches of those removed, in name order. A live writer's
    stay, whatever their age, and so does every name the pattern does not match whole (another host's, a
    user's folder). Backups, restores' staging folders and extract-ray's work folders are cleared by it."""
    removed = []
    for path in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else []:
        found = re.fullmatch(pattern, path.name)
        if found is None or not path.is_dir() or process_alive(int(found["pid"])):
            continue
        log.info("removing %s, left by %s that did not finish", path, left_by)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(found)
    return removed


def backup_work_folder(path: Path) -> Path:
    """The scratch folder a backup to `path` keeps beside it while it writes: `.NAME.<host>-<pid>.work`."""
    return path.parent / f".{path.name}.{writer_tag()}.work"


def remove_dead_writers(folder: Path) -> None:
    """What backups that died mid-write left in `folder`: their work folder (:func:`backup_work_folder`) and
    their temporary files of NAME (:func:`tmp_name`), for each writer of this host no longer running. (A
    `.NAME.PID.work` of a version before the host was in the name is left: a user's folder could be named
    so.)"""
    pattern = rf"\.(?P<name>.+)\.{this_hosts_writer()}\.work"
    for found in remove_dead_writer_folders(folder, pattern, left_by="a backup"):
        for tmp in folder.glob(f".{glob.escape(found['name'])}.{found['pid']}-*.tmp"):
            tmp.unlink(missing_ok=True)


def try_lock(f: IO) -> bool:
    """Take an exclusive lock (flock) on the open file `f` without waiting: whether it was taken (when not,
    another process holds it). It is held until `f` is closed."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_held(path: Path) -> bool:
    """Whether another process holds the lock of the file at `path` (made when missing) now."""
    with open(path, "a+") as f:
        return not try_lock(f)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """The lock of the file at `path` (made when missing), waited for and held while the block runs."""
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
