"""The container of a backup: one ZIP file of stored (uncompressed) members, readable by any unzip tool, made
tamper-evident.

The ZIP is written as one forward stream (members carry data descriptors; nothing is seeked back), so a
single running sha256 covers every byte of it. That digest, of the file as written with an empty comment,
goes into the ZIP comment: ``retrieval-backup/1 sha256=<hex>``. Each member's own size and sha256 are
returned to the caller, who lists them in the manifest (its last member).

:func:`open_archive` checks, before anything is used: the end record and the central directory parse; the
comment names this format; every member is stored (not compressed), has a safe relative name and a local
header that agrees with the central directory; then one sequential pass over the file computes every
member's sha256 and the whole file's digest. Whatever is wrong raises :class:`BackupInvalid`, naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import mmap
import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from retrieval.errors import RetrievalError

COMMENT_PREFIX = b"retrieval-backup/1 sha256="
COMMENT_RE = re.compile(rb"retrieval-backup/1 sha256=([0-9a-f]{64})")
BLOCK = 1 << 20
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader: 30 bytes
LOCAL_MAGIC = b"PK\x03\x04"
END_MAGIC = b"PK\x05\x06"
END_SIZE = 22  # the end-of-central-directory record without its comment

OnBytes = Callable[[int], None]


class BackupError(RetrievalError):
    """A backup could not be written, read or restored; the message says why and what was left as it was."""


class BackupInvalid(BackupError):
    """The file is not a whole, unchanged backup (truncated, damaged, or something else); nothing was used."""


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str


class _Stream:
    """What the ZIP is written through: every byte is counted and hashed on its way to the file, and seeking
    is refused, so zipfile writes forward only and the running hash is the file's."""

    def __init__(self, f: BinaryIO, on_bytes: OnBytes | None):
        self._f, self._on_bytes = f, on_bytes
        self.pos = 0
        self.sha = hashlib.sha256()

    def write(self, data) -> int:
        data = bytes(data)
        self._f.write(data)
        self.sha.update(data)
        self.pos += len(data)
        if self._on_bytes is not None:
            self._on_bytes(len(data))
        return len(data)

    def tell(self) -> int:
        return self.pos

    def seek(self, *args) -> int:
        raise io.UnsupportedOperation("a backup is written forward only")

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._f.flush()


class MemberWriter:
    """A file-like view of one member being written (pyarrow's Parquet writer writes through it)."""

    def __init__(self, dest: BinaryIO):
        self._dest = dest
        self.size = 0
        self.sha = hashlib.sha256()
        self.closed = False

    def write(self, data) -> int:
        data = bytes(data)
        self._dest.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


class ArchiveWriter:
    """Members in the order added; :meth:`close` ends the ZIP and seals it with the digest comment."""

    def __init__(self, f: BinaryIO, *, date_time: tuple[int, int, int, int, int, int],
                 on_bytes: OnBytes | None = None):
        self._f = f
        self._stream = _Stream(f, on_bytes)
        self._zip = zipfile.ZipFile(self._stream, "w", zipfile.ZIP_STORED)  # type: ignore[call-overload]
        self._date_time = date_time
        self.members: dict[str, Member] = {}

    def _info(self, name: str) -> zipfile.ZipInfo:
        _check_name(name)
        if name in self.members:
            raise ValueError(f"{name} is in the archive already")
        info = zipfile.ZipInfo(name, self._date_time)
        info.create_system = 3  # unix, so that the mode below means what it says
        info.external_attr = 0o644 << 16
        return info

    @contextlib.contextmanager
    def stream(self, name: str) -> Iterator[MemberWriter]:
        """Write a member of unknown size (zip64 sizes, so it may pass 4 GiB)."""
        info = self._info(name)
        with self._zip.open(info, "w", force_zip64=True) as dest:
            writer = MemberWriter(dest)
            yield writer
        self.members[name] = Member(name, writer.size, writer.sha.hexdigest())

    def add_fileobj(self, name: str, src: BinaryIO) -> Member:
        with self.stream(name) as dest:
            while block := src.read(BLOCK):
                dest.write(block)
        return self.members[name]

    def add_bytes(self, name: str, data: bytes) -> Member:
        with self.stream(name) as dest:
            dest.write(data)
        return self.members[name]

    def abort(self) -> None:
        """Give up on a failed archive: nothing more is written (the caller removes the file)."""
        self._zip.fp = None  # zipfile's close (and its finaliser) then write no end record

    def close(self) -> str:
        """Write the central directory, then the comment holding the digest of everything before; return
        the digest."""
        self._zip.close()
        digest = self._stream.sha.hexdigest()
        comment = COMMENT_PREFIX + digest.encode()
        self._f.flush()
        self._f.seek(self._stream.pos - 2)  # the comment length of the end record, written as 0
        self._f.write(struct.pack("<H", len(comment)) + comment)
        self._f.flush()
        return digest


def _check_name(name: str) -> None:
    p = PurePosixPath(name)
    if not name or "\\" in name or p.is_absolute() or ".." in p.parts or name != p.as_posix():
        raise ValueError(f"{name!r} is not a safe member name")


@dataclass
class Archive:
    """A verified backup file, open: members by name, their bytes mapped from the file."""

    path: Path
    members: dict[str, Member]  # as computed from the file's bytes
    offsets: dict[str, int]  # where each member's data starts
    digest: str  # what the comment says the whole file's digest is
    intact: bool  # the whole file has that digest (members aside, its headers are unchanged too)
    _file: BinaryIO | None = field(default=None, repr=False)
    _map: mmap.mmap | None = field(default=None, repr=False)

    def view(self, name: str) -> memoryview:
        """A member's bytes, without copying them (valid while the archive is open)."""
        if self._map is None:
            raise ValueError("the archive is closed")
        start = self.offsets[name]
        return memoryview(self._map)[start:start + self.members[name].size]

    def read(self, name: str) -> bytes:
        return bytes(self.view(name))

    def close(self) -> None:
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a view still held elsewhere: the GC unmaps it
                self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_archive(path: Path, *, on_bytes: OnBytes | None = None) -> Archive:
    """The backup at `path`, every byte of it checked (see the module docstring), or BackupInvalid."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise BackupInvalid(f"cannot read {path}: {e.strerror or e}") from None
    try:
        archive = _verify(path, f, on_bytes)
    except BaseException:
        f.close()
        raise
    return archive


def _verify(path: Path, f: BinaryIO, on_bytes: OnBytes | None) -> Archive:
    size = Path(path).stat().st_size
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error) as e:
        raise BackupInvalid(f"{path} is not a whole backup: no readable ZIP end record or central directory "
                            f"({e}); the file is truncated, damaged, or not a backup") from None
    m = COMMENT_RE.fullmatch(zf.comment)
    if m is None:
        what = "a ZIP file, but not a backup made by `retrieval backup`" if not zf.comment.startswith(
            COMMENT_PREFIX[:17]) else "a backup whose end record (ZIP comment) is damaged"
        raise BackupInvalid(f"{path} is {what}")
    wanted = m[1].decode()
    sealed = size - len(zf.comment) - 2  # the digest covers everything before the comment length ...
    f.seek(sealed - END_SIZE + 2)
    if f.read(4) != END_MAGIC:
        raise BackupInvalid(f"{path}: the ZIP end record is damaged")

    spans: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    for info in zf.infolist():
        name = info.filename
        try:
            _check_name(name)
        except ValueError:
            raise BackupInvalid(f"{path}: member name {name!r} is not a safe relative path") from None
        if name in seen:
            raise BackupInvalid(f"{path}: member {name} appears twice")
        seen.add(name)
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise BackupInvalid(f"{path}: member {name} is not stored as written (damaged directory entry)")
        f.seek(info.header_offset)
        head = f.read(LOCAL_HEADER.size)
        if len(head) != LOCAL_HEADER.size:
            raise BackupInvalid(f"{path}: member {name} lies past the end of the file (truncated)")
        sig, _, _, flags, method, _, _, _, _, _, n_name, n_extra = LOCAL_HEADER.unpack(head)
        if sig != LOCAL_MAGIC or method != zipfile.ZIP_STORED or flags != info.flag_bits:
            raise BackupInvalid(f"{path}: the local header of member {name} is damaged")
        raw_name = f.read(n_name)
        encoding = "utf-8" if flags & 0x800 else "cp437"
        if raw_name.decode(encoding, "replace") != name:
            raise BackupInvalid(f"{path}: the local header of member {name} names another file")
        start = info.header_offset + LOCAL_HEADER.size + n_name + n_extra
        if start + info.file_size > sealed:
            raise BackupInvalid(f"{path}: member {name} runs past the end of the data (truncated or damaged)")
        spans.append((start, start + info.file_size, name))

    hashes = {name: hashlib.sha256() for _, _, name in spans}
    whole = hashlib.sha256()
    order = sorted(spans)
    first = 0  # members before this one ended before the current block
    f.seek(0)
    pos = 0
    while pos < sealed:
        block = f.read(min(BLOCK, sealed - pos))
        if not block:
            raise BackupInvalid(f"{path} ended early while being read (truncated)")
        end = pos + len(block)
        whole.update(block)
        i = first
        while i < len(order) and order[i][0] < end:
            lo, hi, name = order[i]
            if hi > pos:
                hashes[name].update(block[max(lo, pos) - pos:min(hi, end) - pos])
            i += 1
        while first < len(order) and order[first][1] <= end:
            first += 1
        if on_bytes is not None:
            on_bytes(len(block))
        pos = end
    whole.update(b"\x00\x00")  # the comment length, as it was when the digest was taken
    members = {name: Member(name, hi - lo, hashes[name].hexdigest()) for lo, hi, name in spans}
    archive = Archive(path, members, {name: lo for lo, _, name in spans}, wanted, whole.hexdigest() == wanted,
                      _file=f)
    try:
        archive._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:
        raise BackupInvalid(f"cannot map {path}: {e}") from None
    return archive
