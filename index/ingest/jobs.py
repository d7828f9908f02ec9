"""The ingest queue's jobs: the ``jobs`` table of the queue's SQLite file, the :class:`Job` record a row of it
reads as, and the errors a change of a job's state can meet. :mod:`index.ingest.queue` holds the transactions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from retrieval.errors import RetrievalError

STATUSES = ("queued", "running", "done", "failed")
ACTIVE = ("queued", "running")
SCHEMA_VERSION = 2  # 2: each job names its store

SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a job id in a 202 means one upload forever
        status TEXT NOT NULL CHECK (status IN {STATUSES!r}),
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        location TEXT NOT NULL,                -- the upload's bytes, relative to the data dir
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        windows_done INTEGER NOT NULL DEFAULT 0 CHECK (windows_done >= 0),
        windows_total INTEGER NOT NULL DEFAULT 0 CHECK (windows_total >= 0),
        clip_id INTEGER,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        worker TEXT,
        fields TEXT NOT NULL DEFAULT '{{}}',    -- JSON object of the caller's extras
        store TEXT                             -- the store the upload was sent to (NULL: any, as before 2)
    )""",
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS jobs_status_id ON jobs (status, id)",
    "CREATE INDEX IF NOT EXISTS jobs_sha256 ON jobs (sha256)",
    # the invariant enqueue keeps, enforced by SQLite too: at most one queued-or-running job per upload and
    # store (stores sharing a data directory share its queue)
    "DROP INDEX IF EXISTS jobs_one_active_sha256",  # version 1's, of one store
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active_store_sha256 ON jobs (coalesce(store, ''), sha256) "
    f"WHERE status IN {ACTIVE!r}",
)
COLUMNS = ("id, status, name, sha256, location, created, started, finished, windows_done, windows_total, "
           "clip_id, error, attempts, worker, store, fields")



class JobNotFound(RetrievalError, LookupError):
    """No job has this id (it never existed, or it was cancelled)."""


class JobStateError(RetrievalError):
    """The job exists but its status does not allow the change asked for; ``.job`` is its current state."""

    def __init__(self, job: Job, action: str):
        super().__init__(f"job {job.id} is {job.status}; cannot {action} it")
        self.job = job


class JobNotCancellable(JobStateError):
    """Only a queued job can be cancelled: a running one is in a worker's hands, a finished one is history."""

    def __init__(self, job: Job):
        super().__init__(job, "cancel")


@dataclass(frozen=True)
class Job:
    id: int
    status: str
    name: str
    sha256: str
    location: str
    created: float
    started: float | None
    finished: float | None
    windows_done: int
    windows_total: int
    clip_id: int | None
    error: str | None
    attempts: int
    worker: str | None
    store: str | None = None  # the store the upload was sent to; None: any (a job queued before stores)
    fields: dict = field(default_factory=dict, hash=False)

    @property
    def progress(self) -> float | None:
        """Fraction of the PaSST windows tagged, or None while the total is not known."""
        if self.windows_total <= 0:
            return None
        return min(1.0, self.windows_done / self.windows_total)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def job_from_row(row: tuple) -> Job:
    """A row of the COLUMNS -> its Job."""
    *head, fields = row
    return Job(*head, fields=json.loads(fields))  # type: ignore[misc]  # `fields` is the last column

