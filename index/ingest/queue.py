"""The durable ingest queue: one SQLite file of jobs shared by the service process and the worker processes.

``POST /audio`` stores the upload's bytes durably, commits a ``queued`` job and answers 202; a worker claims
the job (``running``), runs PaSST, adds the clip and marks the job ``done`` (or ``failed``). The same
conventions as :mod:`index.faiss.clip_db`: WAL journal, synchronous=FULL, one connection per thread, every
write in a ``BEGIN IMMEDIATE`` transaction. Every method that changes state returns only after its COMMIT, so
a job that was acknowledged survives a SIGKILL of either process or a power cut. BEGIN IMMEDIATE takes
SQLite's write lock before anything is read, which is what makes "look for an active job, else insert" and
"pick the oldest queued jobs, mark them running" atomic across threads and processes. The table and the
:class:`Job` record a row reads as are in :mod:`index.ingest.jobs`; this module holds the transactions and
the checks of what callers pass.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath

from index.ingest.jobs import (
    ACTIVE,
    COLUMNS,
    INDEXES,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    Job,
    JobNotCancellable,
    JobNotFound,
    JobStateError,
    job_from_row,
)
from index.sqlite_conn import ThreadConnections, refuse_newer, write_transaction
from index.store.names import unstorable
from retrieval.durable import fsync_path
from retrieval.errors import NewerFormat

MAX_INT64 = 2**63 - 1  # SQLite's INTEGER range; a larger id cannot name a row
MAX_ERROR_CHARS = 4000  # an error text is kept for people to read, not a whole traceback of a loop
MAX_FIELDS_BYTES = 64 * 1024  # the caller's extras (a description...) are small; a big one is a mistake
MAX_TEXT_CHARS = 4096  # name and location
MAX_CLAIM = 1000
GAVE_UP = "gave up after {n} attempts (the worker died while running it)"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class JobQueue:
    """A queue of ingest jobs in its own SQLite file; safe to share between threads and between processes.

    Each process opens its own ``JobQueue`` on the same path; a queue inherited through ``fork`` opens fresh
    connections in the child rather than using the parent's (SQLite forbids carrying one across a fork).
    """

    def __init__(self, path: Path | str, *, store: str | None = None):
        """`store`: the store this queue's jobs go to (stores sharing a data directory share its queue
        file): its jobs and those queued before jobs named a store are the ones it sees, claims and counts;
        None sees every job (backups, tools)."""
        self.path = Path(path)
        self.store = None if store is None else _text(store, "store")
        self._connections = ThreadConnections(self.path, holds="the upload queue")
        created = not self.path.exists()
        try:
            self._migrate()
        except NewerFormat:
            self._connections.close()
            raise
        if created:  # SQLite syncs the file, not the folder entry that names a new file
            fsync_path(self.path.parent)

    def _migrate(self) -> None:
        """The tables made or brought up to this version's; a queue of a newer version refused unchanged, and
        one of this version left unwritten (a service starts on a full disk)."""
        if refuse_newer(self.path, SCHEMA_VERSION) == SCHEMA_VERSION:
            return
        with self._transaction() as con:
            for statement in SCHEMA:
                con.execute(statement)
            if "store" not in {row[1] for row in con.execute("PRAGMA table_info(jobs)")}:
                con.execute("ALTER TABLE jobs ADD COLUMN store TEXT")  # a queue of version 1
            for statement in INDEXES:
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- connections and transactions ---------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; any error rolls back, and a full disk becomes :class:`StorageFull`."""
        with write_transaction(self.connection(), self.path) as con:
            yield con

    def close(self) -> None:
        self._connections.close()

    # -- writes -------------------------------------------------------------------------------------------
    def enqueue(self, *, name: str, sha256: str, location: str, windows_total: int = 0,
                fields: dict | None = None) -> tuple[Job, bool]:
        """Queue one upload; (job, True) once committed, or (the active job, False) if this sha256 has one.

        After a done or failed job a new one is made: a retry of a failed upload must be possible.
        """
        args = (_text(name, "name"), _sha256(sha256), _location(location), time.time(),
               _count(windows_total, "windows_total"), _fields(fields), self.store)
        with self._transaction() as con:
            existing = self._active(con, args[1])
            if existing is not None:
                return existing, False
            cur = con.execute(
                "INSERT INTO jobs (status, name, sha256, location, created, windows_total, fields, store) "
                f"VALUES ('queued', ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}", args)
            [row] = cur.fetchall()  # step to the end before COMMIT
            job = job_from_row(row)
        return job, True

    def claim(self, *, worker: str, limit: int = 1) -> list[Job]:
        """Move up to `limit` oldest queued jobs to running, for `worker`; no two claims get the same job."""
        worker = _text(worker, "worker")
        if not _is_int(limit) or not 1 <= limit <= MAX_CLAIM:
            raise ValueError(f"limit must be an integer in [1, {MAX_CLAIM}], not {limit!r}")
        mine, of_mine = self._mine()
        with self._transaction() as con:  # a job queued before stores becomes this store's
            rows = con.execute(
                "UPDATE jobs SET status = 'running', started = ?, attempts = attempts + 1, worker = ?, "
                "windows_done = 0, store = coalesce(store, ?) WHERE id IN "
                f"(SELECT id FROM jobs WHERE status = 'queued' {mine} ORDER BY id LIMIT ?) "
                f"RETURNING {COLUMNS}", (time.time(), worker, self.store, *of_mine, limit)).fetchall()
        return sorted(map(job_from_row, rows), key=lambda j: j.id)  # RETURNING has no order of its own

    def progress(self, id_: int, *, windows_done: int, windows_total: int) -> Job:
        """Record how many PaSST windows of a running job are tagged, for the job's status page."""
        done, total = _count(windows_done, "windows_done"), _count(windows_total, "windows_total")
        if done > total:
            raise ValueError(f"windows_done ({done}) is more than windows_total ({total})")
        return self._transition(id_, ("running",), "record progress of",
                                "windows_done = ?, windows_total = ?", (done, total))

    def finish(self, id_: int, *, clip_id: int) -> Job:
        """A running job's clip is in the index: done, with every window counted."""
        if not _is_int(clip_id) or not 0 <= clip_id <= MAX_INT64:
            raise ValueError(f"clip_id must be a non-negative 64-bit integer, not {clip_id!r}")
        return self._transition(id_, ("running",), "finish",
                                "status = 'done', finished = ?, clip_id = ?, windows_done = windows_total",
                                (time.time(), clip_id))

    def fail(self, id_: int, *, error: str, http_status: int = 422) -> Job:
        """A queued or running job cannot be done (bad audio, bytes gone...): failed, reason bounded.
        `http_status` (kept in the job's fields) is what the service answers a request waiting on it."""
        if not _is_int(http_status) or not 400 <= http_status <= 599:
            raise ValueError(f"http_status must be a 4xx or 5xx status, not {http_status!r}")
        return self._transition(id_, ACTIVE, "fail", "status = 'failed', finished = ?, error = ?, "
                                "fields = json_set(fields, '$.http_status', ?)",
                                (time.time(), _error_text(error), http_status))

    def cancel(self, id_: int) -> Job | None:
        """Delete a queued job and return it, so the caller removes its bytes; None if there is no such job.

        Raises :class:`JobNotCancellable` for a running, done or failed job (the service answers 409).
        """
        checked = _id(id_)
        if checked is None:
            return None
        with self._transaction() as con:
            job = self._get(con, checked)
            if job is None:
                return None
            if job.status != "queued":
                raise JobNotCancellable(job)
            con.execute("DELETE FROM jobs WHERE id = ?", (checked,))
        return job

    def recover(self, *, max_attempts: int = 3) -> int:
        """At start-up after a crash: jobs left running go back to the queue; returns how many.

        A job that already had `max_attempts` tries is failed instead: audio that kills the worker every
        time must not kill it forever. Call this only when no worker is alive, or their jobs are requeued.
        """
        if not _is_int(max_attempts) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a positive integer, not {max_attempts!r}")
        gave_up = GAVE_UP.split("{n}")
        mine, of_mine = self._mine()
        with self._transaction() as con:
            con.execute(
                "UPDATE jobs SET status = 'failed', finished = ?, error = ? || attempts || ? "
                f"WHERE status = 'running' AND attempts >= ? {mine}", (time.time(), *gave_up, max_attempts,
                                                                       *of_mine))
            cur = con.execute(
                "UPDATE jobs SET status = 'queued', started = NULL, worker = NULL, windows_done = 0 "
                f"WHERE status = 'running' {mine}", of_mine)
            return cur.rowcount

    def release(self) -> int:
        """Jobs left running by a worker that stopped on purpose (the service stopped, a full disk) go back
        to the queue, that try not counted: a stop is no crash, and an upload stopped three times is not
        given up on. Returns how many. Call this only when no worker runs them any more."""
        mine, of_mine = self._mine()
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE jobs SET status = 'queued', started = NULL, worker = NULL, windows_done = 0, "
                f"attempts = max(attempts - 1, 0) WHERE status = 'running' {mine}", of_mine)
            return cur.rowcount

    def _transition(self, id_: int, allowed: tuple[str, ...], action: str, assignments: str,
                    args: tuple) -> Job:
        """One guarded UPDATE: JobNotFound for an unknown id, JobStateError for a job in another state."""
        key = _id(id_)
        with self._transaction() as con:
            job = None if key is None else self._get(con, key)
            if job is None:
                raise JobNotFound(f"no job {id_!r}")
            if job.status not in allowed:
                raise JobStateError(job, action)
            [row] = con.execute(f"UPDATE jobs SET {assignments} WHERE id = ? RETURNING {COLUMNS}",
                                (*args, key)).fetchall()
        return job_from_row(row)

    # -- reads --------------------------------------------------------------------------------------------
    def get(self, id_: int) -> Job | None:
        key = _id(id_)
        return None if key is None else self._get(self.connection(), key)

    def find_active(self, sha256: str) -> Job | None:
        """The queued or running job of this upload, if any (a re-upload is answered with it)."""
        return self._active(self.connection(), _sha256(sha256))

    def list(self, *, status: str | None = None, offset: int = 0, limit: int = 50) -> list[Job]:
        """A page of jobs in id order (oldest first), optionally of one status."""
        where, args = self._where(status)
        offset, limit = _count(offset, "offset"), _count(limit, "limit")
        if offset > MAX_INT64:
            return []
        rows = self.connection().execute(
            f"SELECT {COLUMNS} FROM jobs {where} ORDER BY id LIMIT ? OFFSET ?",
            (*args, min(limit, MAX_INT64), offset)).fetchall()
        return [job_from_row(r) for r in rows]

    def count(self, status: str | None = None) -> int:
        where, args = self._where(status)
        return int(self.connection().execute(f"SELECT count(*) FROM jobs {where}", args).fetchone()[0])

    def windows_finished_since(self, since: float) -> int:
        """PaSST windows of the jobs done since `since` (unix seconds): the worker's recent throughput."""
        mine, of_mine = self._mine()
        row = self.connection().execute(
            "SELECT coalesce(sum(windows_total), 0) FROM jobs WHERE status = 'done' AND finished >= ? "
            f"{mine}", (float(since), *of_mine)).fetchone()
        return int(row[0])

    def depth(self) -> int:
        """Jobs not finished yet (queued + running): the backlog a 503 or an autoscaler looks at."""
        mine, of_mine = self._mine()
        return int(self.connection().execute(
            f"SELECT count(*) FROM jobs WHERE status IN {ACTIVE!r} {mine}", of_mine).fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Jobs by status, every status present (a Prometheus gauge wants its zeros too)."""
        out = dict.fromkeys(STATUSES, 0)
        where, args = self._where(None)
        out.update(self.connection().execute(f"SELECT status, count(*) FROM jobs {where} GROUP BY status",
                                             args).fetchall())
        return out

    def wait(self, id_: int, *, timeout_s: float, poll_s: float = 0.05) -> Job:
        """Poll until the job is done or failed or `timeout_s` passed; returns its latest state.

        Raises :class:`JobNotFound` if the job does not exist (or is cancelled while waiting).
        """
        _seconds(timeout_s, "timeout_s", positive=False)
        _seconds(poll_s, "poll_s", positive=True)
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get(id_)
            if job is None:
                raise JobNotFound(f"no job {id_!r}")
            left = deadline - time.monotonic()
            if not job.active or left <= 0:
                return job
            time.sleep(min(poll_s, left))

    def locations_in_use(self) -> set[str]:
        """Where the bytes of every queued or running job lie, whatever its store: what a sweep of the
        data directory's incoming files must leave (stores sharing the folder share it)."""
        rows = self.connection().execute(f"SELECT location FROM jobs WHERE status IN {ACTIVE!r}").fetchall()
        return {r[0] for r in rows}

    def _mine(self) -> tuple[str, tuple]:
        """The condition (`AND ...`) and its arguments that hold a query to this queue's store's jobs (and
        those queued before jobs named one); nothing without a store."""
        return ("", ()) if self.store is None else ("AND (store IS NULL OR store = ?)", (self.store,))

    def _where(self, status: str | None) -> tuple[str, tuple]:
        where, args = _status_where(status)
        mine, of_mine = self._mine()
        if not mine:
            return where, args
        return (f"{where} {mine}" if where else f"WHERE {mine[4:]}"), (*args, *of_mine)

    def _get(self, con: sqlite3.Connection, id_: int) -> Job | None:
        mine, of_mine = self._mine()
        row = con.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ? {mine}", (id_, *of_mine)).fetchone()
        return None if row is None else job_from_row(row)

    def _active(self, con: sqlite3.Connection, sha256: str) -> Job | None:
        """The queued or running job of these bytes for this store (another store's is not its)."""
        mine, of_mine = self._mine()
        row = con.execute(f"SELECT {COLUMNS} FROM jobs WHERE sha256 = ? AND status IN {ACTIVE!r} {mine} "
                          "ORDER BY id LIMIT 1", (sha256, *of_mine)).fetchone()
        return None if row is None else job_from_row(row)


# -- helpers -------------------------------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _id(value) -> int | None:
    """A job id as SQLite can look it up; None for one outside SQLite's range (no such job can exist)."""
    if not _is_int(value):
        raise ValueError(f"a job id is an integer, not {value!r}")
    return value if -MAX_INT64 - 1 <= value <= MAX_INT64 else None


def _count(value, what: str) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, not {value!r}")
    if value > MAX_INT64 and what not in ("offset", "limit"):
        raise ValueError(f"{what} must fit in 64 bits, not {value!r}")
    return value


def _seconds(value, what: str, *, positive: bool) -> float:
    if _is_int(value) or isinstance(value, float):
        if math.isfinite(value) and (value > 0 or (value == 0 and not positive)):
            return float(value)
    raise ValueError(f"{what} must be a finite {'positive' if positive else 'non-negative'} number, "
                     f"not {value!r}")


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"{what} is longer than {MAX_TEXT_CHARS} characters")
    if (why := unstorable(value)) is not None:  # a NUL, a lone surrogate: what no store holds
        raise ValueError(f"{what} {why}")
    return value


def _sha256(value) -> str:
    if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
        raise ValueError(f"sha256 must be 64 lowercase hex digits, not {value!r}")
    return value


def _location(value) -> str:
    """A path relative to the data dir that stays inside it: a cancel deletes what it names."""
    value = _text(value, "location")
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or ".." in parts:
        raise ValueError(f"location must be a path relative to the data dir, inside it, not {value!r}")
    return value


def _fields(value) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"fields must be a dict with string keys, not {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as e:  # UnicodeEncodeError is a ValueError
        raise ValueError(f"fields must be JSON-serialisable: {e}") from None
    if len(text.encode("utf-8")) > MAX_FIELDS_BYTES:
        raise ValueError(f"fields take more than {MAX_FIELDS_BYTES} bytes as JSON")
    return text


def _error_text(value) -> str:
    """The reason a job failed, kept readable and bounded whatever the exception carried."""
    text = str(value).encode("utf-8", "replace").decode("utf-8").replace("\0", "")
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS - 1] + "…"
    return text or "failed"


def _status_where(status: str | None) -> tuple[str, tuple]:
    if status is None:
        return "", ()
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return "WHERE status = ?", (status,)
