"""The ingest queue: transitions, atomic claims across threads and processes, crash recovery, full disk."""

import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from index.ingest.jobs import Job, JobNotCancellable, JobNotFound, JobStateError
from index.ingest.queue import MAX_ERROR_CHARS, JobQueue
from retrieval.errors import RetrievalError, StorageFull

ROOT = Path(__file__).resolve().parents[2]
HUGE = 2**63  # one past SQLite's largest integer


def sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def add(q: JobQueue, i: int, **kw) -> Job:
    job, created = q.enqueue(name=f"clip{i}.wav", sha256=sha(i), location=f"uploads/{sha(i)}", **kw)
    assert created
    return job


@pytest.fixture
def q(tmp_path):
    queue = JobQueue(tmp_path / "jobs.sqlite")
    yield queue
    queue.close()


def child(script: str, db: Path, *args: str, **kw) -> subprocess.Popen:
    """A fresh Python process running `script` against the queue at `db` (no fork: a real second process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, str(db), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True, **kw)


# -- enqueue and reads ---------------------------------------------------------------------------------------
def test_enqueue_get_and_fields(q):
    job = add(q, 1, windows_total=7, fields={"description": "a dog barks", "n": [1, 2]})
    assert job.status == "queued" and job.attempts == 0 and job.worker is None
    assert (job.windows_done, job.windows_total, job.progress) == (0, 7, 0.0)
    assert job.fields == {"description": "a dog barks", "n": [1, 2]}
    assert job.location == f"uploads/{sha(1)}" and job.created <= time.time()
    assert q.get(job.id) == job
    assert q.get(job.id + 1) is None
    assert add(q, 2).fields == {} and add(q, 3).progress is None


def test_list_count_and_paging_by_status(q):
    jobs = [add(q, i) for i in range(10)]
    q.claim(worker="w", limit=3)  # jobs 0..2 run
    q.finish(jobs[0].id, clip_id=5)
    q.fail(jobs[1].id, error="bad audio")
    assert [j.id for j in q.list()] == [j.id for j in jobs]
    assert [j.id for j in q.list(offset=2, limit=3)] == [j.id for j in jobs[2:5]]
    assert [j.id for j in q.list(status="queued", offset=1, limit=2)] == [j.id for j in jobs[4:6]]
    assert [j.id for j in q.list(status="running")] == [jobs[2].id]
    assert q.list(status="queued", offset=100) == [] and q.list(limit=0) == []
    assert q.list(offset=HUGE) == [] and len(q.list(limit=HUGE)) == 10
    assert (q.count(), q.count("queued"), q.count("done"), q.count("failed")) == (10, 7, 1, 1)
    assert q.counts() == {"queued": 7, "running": 1, "done": 1, "failed": 1}
    assert q.depth() == 8


def test_empty_queue_reads(q):
    assert q.list() == [] and q.count() == 0 and q.depth() == 0 and q.claim(worker="w") == []
    assert q.counts() == {"queued": 0, "running": 0, "done": 0, "failed": 0}


def test_same_sha256_while_active_returns_the_existing_job(q):
    first = add(q, 1)
    again, created = q.enqueue(name="other.wav", sha256=sha(1), location="uploads/other")
    assert (again, created) == (first, False) and q.count() == 1
    assert q.find_active(sha(1)) == first
    [running] = q.claim(worker="w")
    assert q.enqueue(name="x", sha256=sha(1), location="u/x") == (running, False)
    assert q.find_active(sha(1)) == running
    q.finish(first.id, clip_id=1)
    assert q.find_active(sha(1)) is None
    second, created = q.enqueue(name="again.wav", sha256=sha(1), location="uploads/again")
    assert created and second.id > first.id
    q.fail(second.id, error="nope")
    third, created = q.enqueue(name="retry.wav", sha256=sha(1), location="uploads/retry")
    assert created and third.id > second.id and q.count() == 3


def test_an_active_duplicate_is_refused_by_sqlite_too(q):
    """The partial unique index holds the invariant even against a writer that skips enqueue's check."""
    add(q, 1)
    with pytest.raises(sqlite3.IntegrityError):
        q.connection().execute("INSERT INTO jobs (status, name, sha256, location, created) "
                               "VALUES ('queued', 'x', ?, 'u/x', 0)", (sha(1),))


# -- claims --------------------------------------------------------------------------------------------------
def test_claim_takes_the_oldest_queued_jobs(q):
    jobs = [add(q, i) for i in range(5)]
    claimed = q.claim(worker="w1", limit=2)
    assert [j.id for j in claimed] == [jobs[0].id, jobs[1].id]
    assert all(j.status == "running" and j.worker == "w1" and j.attempts == 1 and j.started for j in claimed)
    assert [j.id for j in q.claim(worker="w2", limit=10)] == [j.id for j in jobs[2:]]
    assert q.claim(worker="w3") == []
    assert q.get(jobs[0].id) == claimed[0]


def test_claims_from_many_threads_never_share_a_job(q):
    ids = {add(q, i).id for i in range(200)}
    got: list[list[int]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def worker(k: int) -> None:
        start.wait()
        while batch := q.claim(worker=f"t{k}", limit=1 + k % 3):
            got[k].extend(j.id for j in batch)
            time.sleep(0.002)  # "work": lets the others at the lock, so they really compete

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    flat = [i for ids_ in got for i in ids_]
    assert len(flat) == len(set(flat)) == 200 and set(flat) == ids
    assert sum(1 for ids_ in got if ids_) > 1  # the threads really did compete
    assert q.counts()["running"] == 200


CLAIM_ALL = """
import json, sys, time
from index.ingest.queue import JobQueue
q = JobQueue(sys.argv[1])
while time.time() < float(sys.argv[2]):  # start together
    time.sleep(0.001)
ids = []
while batch := q.claim(worker=sys.argv[3]):
    ids.extend(j.id for j in batch)
    time.sleep(0.005)  # "work": without it one process may drain the queue before the others get the lock
print(json.dumps(ids))
"""


def test_claims_from_several_processes_never_share_a_job(q):
    ids = {add(q, i).id for i in range(150)}
    go = str(time.time() + 1.5)
    procs = [child(CLAIM_ALL, q.path, go, f"p{k}") for k in range(3)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    got = [json.loads(out) for out in outs]
    flat = [i for ids_ in got for i in ids_]
    assert len(flat) == len(set(flat)) == 150 and set(flat) == ids
    assert sum(1 for ids_ in got if ids_) > 1  # the processes really did compete
    assert {j.worker for j in q.list(limit=150)} <= {"p0", "p1", "p2"}


def test_a_forked_child_opens_its_own_connections(q):
    """A queue inherited through fork must not use the parent's SQLite connection (SQLite forbids it)."""
    add(q, 1)
    parent_con = q.connection()
    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()

    def run() -> None:
        result.put((q.connection() is not parent_con, [j.id for j in q.claim(worker="forked")]))

    proc = ctx.Process(target=run)
    proc.start()
    fresh, claimed = result.get(timeout=30)
    proc.join(timeout=30)
    assert fresh and claimed == [1] and q.get(1).worker == "forked"
    assert q.connection() is parent_con


# -- transitions ---------------------------------------------------------------------------------------------
def test_progress_finish_and_fail(q):
    a, b, c = add(q, 1), add(q, 2), add(q, 3)
    with pytest.raises(JobStateError, match="is queued"):
        q.progress(a.id, windows_done=1, windows_total=2)
    with pytest.raises(JobStateError):
        q.finish(a.id, clip_id=1)
    q.claim(worker="w", limit=2)
    job = q.progress(a.id, windows_done=2, windows_total=8)
    assert (job.windows_done, job.windows_total, job.progress) == (2, 8, 0.25)
    assert q.get(a.id) == job
    with pytest.raises(ValueError, match="more than"):
        q.progress(a.id, windows_done=9, windows_total=8)
    done = q.finish(a.id, clip_id=42)
    assert done.status == "done" and done.clip_id == 42 and done.finished >= done.started
    assert done.progress == 1.0 and not done.active
    with pytest.raises(JobStateError) as e:
        q.finish(a.id, clip_id=43)
    assert e.value.job == done and isinstance(e.value, RetrievalError)
    with pytest.raises(JobStateError):
        q.fail(a.id, error="late")
    failed = q.fail(b.id, error=ValueError("not audio"))
    assert failed.status == "failed" and failed.error == "not audio" and failed.finished
    assert q.fail(c.id, error="bytes gone").status == "failed"  # a queued job can fail too
    with pytest.raises(JobStateError):
        q.progress(b.id, windows_done=0, windows_total=0)


def test_fail_bounds_and_cleans_the_error_text(q):
    a, b = add(q, 1), add(q, 2)
    long = q.fail(a.id, error="x" * 100_000)
    assert len(long.error) == MAX_ERROR_CHARS and long.error.endswith("…")
    odd = q.fail(b.id, error="bad \udcff name\0")  # a surrogate from a filename, a NUL: kept readable
    assert odd.error == "bad ? name"


def test_transitions_on_unknown_ids(q):
    for id_ in (1, -1, HUGE, -HUGE - 1):
        assert q.get(id_) is None and q.cancel(id_) is None
        with pytest.raises(JobNotFound):
            q.finish(id_, clip_id=1)
        with pytest.raises(JobNotFound):
            q.fail(id_, error="x")
        with pytest.raises(JobNotFound):
            q.progress(id_, windows_done=0, windows_total=1)


# -- cancel --------------------------------------------------------------------------------------------------
def test_cancel_only_a_queued_job(q):
    a, b, c, d = (add(q, i) for i in range(4))
    assert q.cancel(a.id) == a and q.get(a.id) is None and q.count() == 3
    assert q.cancel(a.id) is None  # already gone
    q.claim(worker="w", limit=3)
    with pytest.raises(JobNotCancellable) as e:
        q.cancel(b.id)
    assert e.value.job.status == "running" and isinstance(e.value, JobStateError)
    q.finish(b.id, clip_id=1)
    q.fail(c.id, error="x")
    for job in (b, c):
        with pytest.raises(JobNotCancellable):
            q.cancel(job.id)
    assert q.count() == 3 and q.get(d.id).status == "running"
    again, created = q.enqueue(name="a", sha256=a.sha256, location=a.location)  # its sha256 is free again
    assert created and again.id > d.id


# -- crash recovery ------------------------------------------------------------------------------------------
CLAIM_AND_HANG = """
import sys, time
from index.ingest.queue import JobQueue
[job] = JobQueue(sys.argv[1]).claim(worker="doomed")
print(job.id, flush=True)
time.sleep(600)
"""


def claim_and_die(db: Path) -> int:
    """A worker process claims one job and is SIGKILLed while 'running' it."""
    proc = child(CLAIM_AND_HANG, db)
    try:
        id_ = int(proc.stdout.readline())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return id_


def test_recover_requeues_a_killed_workers_job_then_gives_up(q):
    job, other = add(q, 1), add(q, 2)
    for attempt in (1, 2, 3):
        assert claim_and_die(q.path) == job.id
        left = q.get(job.id)
        assert (left.status, left.worker, left.attempts) == ("running", "doomed", attempt)
        requeued = q.recover(max_attempts=3)
        back = q.get(job.id)
        if attempt < 3:
            assert requeued == 1 and back.status == "queued" and back.worker is None and back.started is None
        else:
            assert requeued == 0 and back.status == "failed" and back.finished
            assert back.error == "gave up after 3 attempts (the worker died while running it)"
    assert q.get(other.id).status == "queued" and q.recover() == 0


def test_recover_leaves_other_states_alone(q):
    a, b, c, d = (add(q, i) for i in range(4))
    q.claim(worker="w", limit=3)
    q.finish(a.id, clip_id=1)
    q.fail(b.id, error="x")
    q.progress(c.id, windows_done=3, windows_total=4)
    assert q.recover() == 1
    assert [q.get(j.id).status for j in (a, b, c, d)] == ["done", "failed", "queued", "queued"]
    assert q.get(c.id).windows_done == 0
    [again] = q.claim(worker="w2")
    assert again.id == c.id and again.attempts == 2  # the oldest queued job goes first again


ENQUEUE_AND_HANG = """
import sys, time
from index.ingest.queue import JobQueue
job, _ = JobQueue(sys.argv[1]).enqueue(name="a.wav", sha256=sys.argv[2], location="uploads/a")
print(job.id, flush=True)
time.sleep(600)
"""


def test_an_acknowledged_job_survives_sigkill(tmp_path):
    db = tmp_path / "jobs.sqlite"
    proc = child(ENQUEUE_AND_HANG, db, sha(1))
    try:
        id_ = int(proc.stdout.readline())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    q = JobQueue(db)
    try:
        assert q.get(id_).sha256 == sha(1) and q.get(id_).status == "queued"
    finally:
        q.close()


def test_the_settings_that_make_commits_durable(q):
    con = q.connection()
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# -- wait ----------------------------------------------------------------------------------------------------
def test_wait_returns_when_done(q):
    job = add(q, 1)
    q.claim(worker="w")

    def finish_later() -> None:
        time.sleep(0.2)
        q.finish(job.id, clip_id=9)

    t = threading.Thread(target=finish_later)
    t.start()
    t0 = time.monotonic()
    done = q.wait(job.id, timeout_s=30, poll_s=0.01)
    t.join()
    assert done.status == "done" and done.clip_id == 9 and time.monotonic() - t0 < 10


def test_wait_returns_the_latest_state_on_timeout(q):
    job = add(q, 1)
    t0 = time.monotonic()
    assert q.wait(job.id, timeout_s=0.2, poll_s=0.05) == job
    assert 0.15 < time.monotonic() - t0 < 5
    assert q.wait(job.id, timeout_s=0) == job
    q.fail(job.id, error="x")
    assert q.wait(job.id, timeout_s=30).status == "failed"  # already finished: no waiting
    with pytest.raises(JobNotFound):
        q.wait(job.id + 1, timeout_s=0.1)


# -- a full disk ---------------------------------------------------------------------------------------------
def test_a_full_database_raises_storage_full_and_stores_nothing(q):
    add(q, 0)
    con = q.connection()
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.execute(f"PRAGMA max_page_count = {pages}")  # this connection may not grow the file any more
    with pytest.raises(StorageFull) as e:
        add(q, 1, fields={"description": "x" * 60_000})
    assert isinstance(e.value, RetrievalError) and isinstance(e.value.__cause__, sqlite3.OperationalError)
    assert not con.in_transaction and q.count() == 1 and q.find_active(sha(1)) is None
    con.execute("PRAGMA max_page_count = 1073741823")
    assert add(q, 1).id == 2  # the queue works again once there is room


class FullAt:
    """Wraps a connection; the first statement starting with `prefix` fails as SQLite does on ENOSPC."""

    def __init__(self, con: sqlite3.Connection, prefix: str):
        self.con, self.prefix = con, prefix

    def execute(self, sql: str, *args):
        if sql.lstrip().upper().startswith(self.prefix):
            raise sqlite3.OperationalError("database or disk is full")
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


@pytest.mark.parametrize("prefix", ["INSERT", "COMMIT"])
def test_enospc_at_insert_or_commit_rolls_back(q, monkeypatch, prefix):
    add(q, 0)
    real = q.connection()
    monkeypatch.setattr(q, "connection", lambda: FullAt(real, prefix))
    with pytest.raises(StorageFull, match="nothing was stored"):
        add(q, 1)
    monkeypatch.undo()
    assert not real.in_transaction and q.count() == 1 and q.find_active(sha(1)) is None


def test_enospc_while_claiming_leaves_the_jobs_queued(q, monkeypatch):
    add(q, 0)
    real = q.connection()
    monkeypatch.setattr(q, "connection", lambda: FullAt(real, "COMMIT"))
    with pytest.raises(StorageFull):
        q.claim(worker="w")
    monkeypatch.undo()
    assert q.counts()["queued"] == 1 and q.get(1).attempts == 0


def test_other_operational_errors_are_not_storage_full(q, monkeypatch):
    real = q.connection()

    class Locked(FullAt):
        def execute(self, sql, *args):
            if sql.startswith("INSERT"):
                raise sqlite3.OperationalError("database is locked")
            return self.con.execute(sql, *args)

    monkeypatch.setattr(q, "connection", lambda: Locked(real, "INSERT"))
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        add(q, 1)
    monkeypatch.undo()
    assert q.count() == 0


# -- validation ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    {"name": ""}, {"name": "  "}, {"name": 3}, {"name": "a\0b"}, {"name": "bad \udcff"}, {"name": "n" * 5000},
    {"sha256": "abc"}, {"sha256": "A" * 64}, {"sha256": None},
    {"location": "/etc/passwd"}, {"location": "../x"}, {"location": "uploads/../../x"},
    {"location": "C:\\x"}, {"location": ""},
    {"windows_total": -1}, {"windows_total": 1.5}, {"windows_total": True},
    {"fields": []}, {"fields": {1: "x"}}, {"fields": {"x": object()}}, {"fields": {"x": float("nan")}},
    {"fields": {"x": "y" * 70_000}},
])
def test_enqueue_rejects_bad_input(q, kw):
    args = {"name": "a.wav", "sha256": sha(1), "location": "uploads/a", **kw}
    with pytest.raises(ValueError):
        q.enqueue(**args)
    assert q.count() == 0


def test_reads_and_writes_reject_bad_arguments(q):
    add(q, 1)
    bad = [
        lambda: q.list(status="paused"), lambda: q.count("Queued"), lambda: q.list(offset=-1),
        lambda: q.list(limit=-1), lambda: q.list(limit=2.0), lambda: q.get("1"), lambda: q.get(True),
        lambda: q.claim(worker=""), lambda: q.claim(worker="w", limit=0),
        lambda: q.claim(worker="w", limit=10**6),
        lambda: q.recover(max_attempts=0), lambda: q.find_active("nope"),
        lambda: q.finish(1, clip_id=-1), lambda: q.finish(1, clip_id=HUGE),
        lambda: q.wait(1, timeout_s=-1), lambda: q.wait(1, timeout_s=float("inf")),
        lambda: q.wait(1, timeout_s=1, poll_s=0),
        lambda: q.progress(1, windows_done=-1, windows_total=1),
    ]
    for call in bad:
        with pytest.raises(ValueError):
            call()
    assert q.get(1).status == "queued" and q.get(1).attempts == 0


def test_reopening_keeps_the_jobs_and_the_schema(tmp_path):
    db = tmp_path / "jobs.sqlite"
    first = JobQueue(db)
    job = add(first, 1, fields={"description": "kept"})
    first.close()
    again = JobQueue(db)
    try:
        assert again.get(job.id) == job
        assert again.connection().execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        again.close()


def test_stores_sharing_a_queue_file_each_see_claim_and_count_their_own_jobs(tmp_path):
    """Stores sharing a data directory share its queue file: an upload sent to one is that store's job (the
    same bytes sent to both are two jobs), claimed by its worker alone; a job queued before jobs named a
    store is any store's until a worker claims it, and then that worker's store's."""
    path = tmp_path / "jobs.sqlite"
    legacy = JobQueue(path)  # no store: every job (tools, backups), and what queued jobs before stores
    older = add(legacy, 0)
    faiss, qdrant = JobQueue(path, store="faiss"), JobQueue(path, store="qdrant-clips")
    mine = add(faiss, 1)
    theirs, created = qdrant.enqueue(name="clip1.wav", sha256=sha(1), location=f"incoming/{sha(1)}.q")
    assert created and theirs.id != mine.id and (mine.store, theirs.store) == ("faiss", "qdrant-clips")
    assert faiss.enqueue(name="again.wav", sha256=sha(1), location="x")[0].id == mine.id  # its own, again
    assert [j.id for j in faiss.list()] == [older.id, mine.id] and faiss.depth() == 2
    assert [j.id for j in qdrant.list()] == [older.id, theirs.id] and qdrant.count("queued") == 2
    assert faiss.get(theirs.id) is None and qdrant.get(mine.id) is None
    assert legacy.depth() == 3 and faiss.counts()["queued"] == 2
    claimed = qdrant.claim(worker="q", limit=10)
    assert [j.id for j in claimed] == [older.id, theirs.id]
    assert {j.store for j in claimed} == {"qdrant-clips"}  # the older job became the claimer's store's
    assert [j.id for j in faiss.claim(worker="f", limit=10)] == [mine.id]
    assert faiss.get(older.id) is None
    assert faiss.recover() == 1 and qdrant.get(theirs.id).status == "running"  # its own running jobs alone
    assert legacy.locations_in_use() == {f"uploads/{sha(0)}", f"uploads/{sha(1)}", f"incoming/{sha(1)}.q"}
    for queue in (legacy, faiss, qdrant):
        queue.close()


def test_a_queue_file_of_version_1_gains_the_store_column_keeping_its_jobs(tmp_path):
    path = tmp_path / "jobs.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, name TEXT NOT NULL,
            sha256 TEXT NOT NULL, location TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
            windows_done INTEGER NOT NULL DEFAULT 0, windows_total INTEGER NOT NULL DEFAULT 0,
            clip_id INTEGER, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, worker TEXT,
            fields TEXT NOT NULL DEFAULT '{}');
        CREATE UNIQUE INDEX jobs_one_active_sha256 ON jobs (sha256) WHERE status IN ('queued', 'running');
        PRAGMA user_version = 1;""")
    con.execute("INSERT INTO jobs (status, name, sha256, location, created) VALUES ('queued', 'a.wav', ?, "
                "'incoming/a.upload', 1.0)", (sha(7),))
    con.commit()
    con.close()
    queue = JobQueue(path, store="faiss")
    [job] = queue.list()
    assert (job.name, job.store, job.location) == ("a.wav", None, "incoming/a.upload")
    other = JobQueue(path, store="qdrant-clips")
    assert other.enqueue(name="b.wav", sha256=sha(8), location="x")[1]
    assert queue.claim(worker="w")[0].store == "faiss"
    listed = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    indexes = {r[0] for r in listed}
    assert "jobs_one_active_sha256" not in indexes and "jobs_one_active_store_sha256" in indexes
    queue.close()
    other.close()


def test_a_queue_of_a_newer_version_is_refused_unchanged(tmp_path):
    """Rolled back after an upgrade: the older version says so rather than rewrite the newer queue's version
    (and go on writing a table it does not know)."""
    from retrieval.errors import NewerFormat

    path = tmp_path / "jobs.sqlite"
    JobQueue(path, store="faiss").close()
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA user_version = 9")
    before = path.read_bytes()
    with pytest.raises(NewerFormat, match=r"newer version of retrieval \(format 9; this one knows up to 2\)"):
        JobQueue(path, store="faiss")
    assert path.read_bytes() == before


def test_a_database_that_cannot_be_opened_is_named(tmp_path):
    """SQLite says "unable to open database file" and nothing more (a read-only data directory, a folder
    where the file should be): the message names the file, and what may not be written."""
    from index.sqlite_conn import connect_durable

    where = tmp_path / "jobs.sqlite"
    where.mkdir()
    with pytest.raises(sqlite3.OperationalError, match=f"cannot open {where}: unable to open"):
        JobQueue(where)
    if os.geteuid() != 0:  # root writes whatever the mode says
        folder = tmp_path / "read-only"
        folder.mkdir()
        sqlite3.connect(folder / "db.sqlite").close()
        folder.chmod(0o555)
        try:
            with pytest.raises(sqlite3.OperationalError, match="cannot be written by this user"):
                connect_durable(folder / "db.sqlite")
        finally:
            folder.chmod(0o755)


def test_a_current_queue_opens_without_writing(tmp_path, monkeypatch):
    """A service restarted on a full disk: opening the queue wrote its schema again, and the disk being full
    stopped the service's start. A queue of this version is opened, and read, without a write."""
    from index.ingest import queue as queue_module

    path = tmp_path / "jobs.sqlite"
    with_job = JobQueue(path)
    job = add(with_job, 1)
    with_job.close()

    def full(con, path):
        raise StorageFull(f"{path}: database or disk is full; nothing was stored")

    monkeypatch.setattr(queue_module, "write_transaction", full)
    again = JobQueue(path)
    try:
        assert again.get(job.id) == job
    finally:
        again.close()
    monkeypatch.undo()
    old = tmp_path / "old.sqlite"  # a queue of version 1 is still brought up to date
    JobQueue(old).close()
    with sqlite3.connect(old) as con:
        con.execute("PRAGMA user_version = 1")
    JobQueue(old).close()
    with sqlite3.connect(old) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 2
