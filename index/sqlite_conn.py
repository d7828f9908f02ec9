"""Durable SQLite connections, one per thread, shared by the clip database and the ingest queue.

WAL journal (readers run beside a writer) and synchronous=FULL (a committed transaction survives a crash of
the process or the machine); autocommit mode, so callers open their own BEGIN IMMEDIATE transactions.
"""

import os
import sqlite3
import threading
from pathlib import Path

BUSY_TIMEOUT_S = 60


def connect_durable(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    return con


class ThreadConnections:
    """One durable connection per thread, all closed together. A forked child opens its own and leaves the
    parent's alone (closing them there could upset the parent's locks)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._abandoned: list[sqlite3.Connection] = []  # the parent's, after a fork: kept, never used

    def get(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._abandoned.extend(self._all)
            self._all, self._lock, self._local = [], threading.Lock(), threading.local()
            self._pid = os.getpid()
        con = getattr(self._local, "con", None)
        if con is None:
            con = connect_durable(self.path)
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()
