"""SQLite as the clip database and the ingest queue use it: durable connections, one per thread, and what
is done to either file as a whole (read-only opening, the integrity check, a consistent copy of a live one).

WAL journal (readers run beside a writer) and synchronous=FULL (a committed transaction survives a crash of
the process or the machine); autocommit mode, so callers open their own BEGIN IMMEDIATE transactions.
"""

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from retrieval.errors import StorageFull, StoreClosed, disk_full, newer_format

BUSY_TIMEOUT_S = 60
# free bytes below which a disk counts as full when SQLite fails (its shared-memory file alone wants 32 KiB)
FULL_BELOW = 1 << 20
# pages of a new file (an existing one keeps its own): a window row (float16 vector and logits, about 2.6 KB)
# fills a 4 KiB page alone; three share 8 KiB
PAGE_SIZE = 8192


def connect_durable(path: Path) -> sqlite3.Connection:
    """A connection to `path`; one that cannot be opened names the file (SQLite's own message names none),
    and a folder or file this process may not write is said as such (WAL keeps its journal beside it)."""
    try:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            con.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before anything is written; ignored afterwards
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error:
            con.close()
            raise
    except sqlite3.OperationalError as e:
        if no_room_left(path):
            raise StorageFull(f"cannot open {path}: the disk is full ({e}); free some space") from None
        folder = Path(path).parent
        why = next((f"{where} cannot be written by this user" for where in (folder, Path(path))
                    if where.exists() and not os.access(where, os.W_OK)), "")
        raise sqlite3.OperationalError(f"cannot open {path}: {e}" + (f" ({why})" if why else "")) from None
    return con


class ThreadConnections:
    """One durable connection per thread, all closed together (see `close`); after which none is opened
    again (StoreClosed). A forked child opens its own and leaves the parent's alone (closing them there
    could upset the parent's locks)."""

    def __init__(self, path: Path, *, holds: str):
        """`holds`: what the file is, for the error after `close` ("the collection")."""
        self.path = Path(path)
        self.holds = holds
        self._closed = False
        self._local = threading.local()
        self._all: list[tuple[sqlite3.Connection, threading.Thread]] = []  # each with the thread it serves
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._abandoned: list[tuple[sqlite3.Connection, threading.Thread]] = []  # the parent's, after a fork

    def get(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._abandoned.extend(self._all)
            self._all, self._lock, self._local = [], threading.Lock(), threading.local()
            self._pid = os.getpid()
        con = getattr(self._local, "con", None)
        if con is None:
            self._refuse_if_closed()
            con = connect_durable(self.path)
            with self._lock:
                if self._closed:  # closed while this one was opened
                    con.close()
                    self._refuse_if_closed()
                self._local.con = con
                self._all.append((con, threading.current_thread()))
        return con

    def _refuse_if_closed(self) -> None:
        if self._closed:  # a connection would be opened again, and never closed
            raise StoreClosed(f"{self.path}: {self.holds} was closed; open it again to use it")

    def close(self) -> None:
        """Close this thread's connection and those of threads that have ended; let go of the others, which
        a thread may be stepping (closing a connection under it crashes the process): they close once no
        thread holds them (a connection and its statement cache refer to each other, so Python's collector
        frees them)."""
        with self._lock:
            self._closed = True
            connections, self._all = self._all, []
            self._local = threading.local()  # the old one's per-thread connections go with it
        for con, owner in connections:
            if owner is threading.current_thread() or not owner.is_alive():
                con.close()


@contextmanager
def write_transaction(con: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on `con` (a connection to `path`), rolled back on any error; a full disk
    becomes StorageFull naming the file (SQLite may have rolled back itself: a second ROLLBACK's error would
    hide the first)."""
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
    except sqlite3.OperationalError as e:
        if disk_full(e):
            raise StorageFull(f"{path}: {e}; nothing was stored") from e
        raise


def _rollback(con: sqlite3.Connection) -> None:
    """Roll back if SQLite has not already (after some errors, e.g. SQLITE_FULL, it may have)."""
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the transaction is gone either way; the error that got us here is the one to report


def no_room_left(path: Path) -> bool:
    """Whether the file system that holds the file `path` has (next to) no room left for this user."""
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW


@contextmanager
def full_disk_said(path: Path) -> Iterator[None]:
    """An SQLite error met while reading `path` on a full disk, said as a full disk (StorageFull, one line):
    SQLite says "disk I/O error" when it cannot make its shared-memory file, as if the file were damaged."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if no_room_left(path):
            raise StorageFull(f"{path} cannot be read: the disk is full ({e}); free some space") from None
        raise


def read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write to the database file at `path`."""
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)


def refuse_newer(path: Path, known: int) -> int | None:
    """NewerFormat naming `path` when its schema version (`PRAGMA user_version`) is past `known`, the newest
    this version writes; read without writing. The version (None when there is no such file)."""
    version = schema_version(path)
    if version is not None and version > known:
        raise newer_format(path, version, known)
    return version


def schema_version(path: Path) -> int | None:
    """The schema version (`PRAGMA user_version`) of the database file at `path`, read without writing; None
    when there is no such file."""
    if not Path(path).is_file():
        return None
    with full_disk_said(path), closing(read_only(path)) as con:
        return int(con.execute("PRAGMA user_version").fetchone()[0])


def integrity_of(con: sqlite3.Connection) -> list[str]:
    """SQLite's integrity check of an open database: [] when it is sound."""
    rows = con.execute("PRAGMA integrity_check").fetchall()
    return [] if [r[0] for r in rows] == ["ok"] else [str(r[0]) for r in rows]


def integrity_problems(path: Path) -> list[str]:
    """SQLite's check of any database file (the ingest queue's too), read-only: [] when it is sound. A full
    disk, which keeps SQLite from reading, is StorageFull: it says nothing of the file."""
    try:
        with full_disk_said(path), closing(read_only(path)) as con:
            return integrity_of(con)
    except sqlite3.DatabaseError as e:  # not a database at all, or too damaged to open
        return [str(e)]


def copy_live(path: Path, dest: Path) -> None:
    """A consistent copy of the live database at `path` (the ingest queue's too) in the new file `dest`:
    SQLite's online backup in one step, so one read transaction while writers in WAL mode go on. `dest` is
    scratch: it is not synced."""
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as source, \
            closing(sqlite3.connect(dest)) as copy:
        copy.execute("PRAGMA synchronous=OFF")
        source.backup(copy)
