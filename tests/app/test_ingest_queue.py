"""POST /audio behind the durable ingest queue: 202 + Location + JobOut, the jobs routes, wait=S, duplicates,
header-level refusals at once, failures in the worker, and a full disk."""

import errno
import io
import os
import threading
import time

import numpy as np
import pytest
import soundfile as sf

import app.ingest as app_ingest
import index.ingest.worker as worker_module
from app.errors import job_status
from index.ingest.queue import JobQueue
from index.ingest.worker import IngestWorker
from index.layout import incoming_location
from index.qdrant.open import QdrantUnavailable
from retrieval.errors import (
    AudioDecodeError,
    AudioTooLong,
    ClipNotFound,
    DeviceUnavailable,
    RetrievalError,
    StorageFull,
    StoreClosed,
)
from tests.app.conftest import WRITE, upload, vector_of, wav_bytes
from tests.audio_fixtures import sine

TONE = wav_bytes(sine(523.0, seconds=0.6))
OTHER = wav_bytes(sine(659.0, seconds=0.7))


@pytest.fixture
def paused(make_client, monkeypatch):
    """A client whose ingest worker does not run: jobs stay queued until the test runs one batch."""
    monkeypatch.setattr(app_ingest.Ingest, "start", lambda self: None)
    client = make_client()
    ingest = client.app.state.ingest

    def run_worker_once() -> int:
        return IngestWorker(ingest.queue, ingest.collection, name="test", status_of=job_status).run_once()

    return client, ingest, run_worker_once


def incoming_files(ingest) -> list[str]:
    return sorted(p.name for p in ingest.incoming.iterdir() if not p.name.startswith("."))


def test_upload_is_acknowledged_with_202_and_a_job(paused):
    client, ingest, run_once = paused
    r = upload(client, "tone.wav", TONE, wait=0)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued" and job["name"] == "tone.wav" and job["clip"] is None
    assert job["error"] is None and job["progress"] == {"windows_done": 0, "windows_total": 1}
    assert len(job["sha256"]) == 64 and job["created"] > 0
    assert client.get(f"/jobs/{job['id']}").json() == job
    assert incoming_files(ingest) == [f"{job['sha256']}.faiss.upload"]  # stored before the answer

    assert run_once() == 1
    done = client.get(f"/jobs/{job['id']}").json()
    assert done["status"] == "done" and done["progress"] == {"windows_done": 1, "windows_total": 1}
    clip = done["clip"]
    assert clip["name"] == "tone.wav" and clip["sha256"] == job["sha256"]
    assert client.get(f"/audio/{clip['id']}").json() == clip
    assert client.get(f"/audio/{clip['id']}/file").content == TONE
    assert incoming_files(ingest) == []


def test_same_bytes_while_queued_answer_the_same_job_then_the_clip(paused):
    client, _, run_once = paused
    first = upload(client, "a.wav", TONE, wait=0).json()
    again = upload(client, "b.wav", TONE, wait=0)
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    run_once()
    indexed = upload(client, "c.wav", TONE, wait=0)
    assert indexed.status_code == 200 and indexed.json()["name"] == "a.wav"
    assert client.get("/jobs").json()["total"] == 1


def test_list_jobs_by_status_and_page(paused):
    client, _, run_once = paused
    ids = [upload(client, f"{i}.wav", wav_bytes(sine(300.0 + 40 * i, seconds=0.4)), wait=0).json()["id"]
           for i in range(3)]
    page = client.get("/jobs", params={"status": "queued", "limit": 2}).json()
    assert page["total"] == 3 and [j["id"] for j in page["items"]] == ids[:2]
    assert [j["id"] for j in client.get("/jobs", params={"offset": 2}).json()["items"]] == ids[2:]
    assert IngestWorker(client.app.state.ingest.queue, client.app.state.ingest.collection, name="t",
                        max_clips=2).run_once() == 2
    assert client.get("/jobs", params={"status": "done"}).json()["total"] == 2
    assert client.get("/jobs", params={"status": "queued"}).json()["total"] == 1
    assert client.get("/jobs", params={"status": "lost"}).status_code == 422


def test_cancel_a_queued_job_removes_its_bytes(paused):
    client, ingest, run_once = paused
    job = upload(client, "a.wav", TONE, wait=0).json()
    assert client.delete(f"/jobs/{job['id']}").status_code == 401  # a write: needs the key
    assert client.delete(f"/jobs/{job['id']}", headers=WRITE).status_code == 204
    gone = client.get(f"/jobs/{job['id']}")
    assert gone.status_code == 404 and "cancelled" in gone.json()["detail"]
    assert incoming_files(ingest) == [] and run_once() == 0
    done = upload(client, "b.wav", OTHER, wait=0).json()
    run_once()
    r = client.delete(f"/jobs/{done['id']}", headers=WRITE)
    assert r.status_code == 409 and "done" in r.json()["detail"]
    assert client.delete("/jobs/999", headers=WRITE).status_code == 404
    assert client.get(f"/jobs/{2**63}").status_code == 422


def test_a_restart_removes_old_orphan_bytes_and_keeps_every_job_s(paused):
    """Bytes no queued or running job refers to, older than a writer could still be committing, go at the
    worker's start; those of queued jobs and of the running one (resumed after a crash) stay."""
    client, ingest, _ = paused
    for i, data in enumerate((TONE, OTHER, wav_bytes(sine(784.0, seconds=0.5)))):
        assert upload(client, f"{i}.wav", data, wait=0).status_code == 202
    assert [j.status for j in ingest.queue.claim(worker="crashed")] == ["running"]  # 2 queued, 1 running
    jobs = incoming_files(ingest)
    old, young = ingest.incoming / f"{'a' * 64}.upload", ingest.incoming / f"{'b' * 64}.upload"
    old.write_bytes(b"cut off by a crash"), young.write_bytes(b"a commit under way")
    hours_ago = time.time() - 7200
    for name in [*jobs, old.name]:
        os.utime(ingest.incoming / name, (hours_ago, hours_ago))
    ingest._remove_orphan_bytes()
    assert incoming_files(ingest) == sorted([*jobs, young.name])


def test_wait_times_out_with_202(paused):
    client, _, _ = paused
    start = time.monotonic()
    r = upload(client, "a.wav", TONE, wait=0.3)
    assert r.status_code == 202 and 0.25 <= time.monotonic() - start < 10
    assert upload(client, "a.wav", TONE, wait=61).status_code == 422  # 0 to 60 s


def test_wait_answers_201_with_the_record_once_indexed(make_client):
    live = make_client()  # its worker runs
    r = upload(live, "b.wav", OTHER, wait=60)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/audio/{r.json()['id']}"
    retriever = live.app.state.retriever
    np.testing.assert_allclose(
        live.post("/search", json={"query": "a tone", "k": 1}).json()["results"][0]["score"],
        float(vector_of(retriever, OTHER) @ retriever.encode_text(["a tone"])[0]), atol=1e-5)


@pytest.mark.parametrize("data,status", [
    (b"hello, not audio", 415),
    (wav_bytes(np.zeros((32_000, 8), np.float32)), 415),  # 8 channels: more than RETRIEVAL_MAX_CHANNELS
    (wav_bytes(sine(seconds=4.0)), 413),  # over the 3 s maximum set below
])
def test_what_the_header_tells_is_refused_at_once(make_client, monkeypatch, data, status):
    monkeypatch.setattr(app_ingest.Ingest, "start", lambda self: None)
    client = make_client(max_duration_s=3.0)
    r = upload(client, "bad.wav", data, wait=0)
    assert r.status_code == status, r.text
    assert client.get("/jobs").json()["total"] == 0
    assert incoming_files(client.app.state.ingest) == []


def test_samples_the_worker_cannot_decode_fail_the_job_with_the_reason(paused):
    client, ingest, run_once = paused
    wave = sine(seconds=0.5).astype(np.float32)
    wave[100] = np.nan  # the header is fine; the samples are not
    buf = io.BytesIO()
    sf.write(buf, wave, 32_000, format="WAV", subtype="FLOAT")
    job = upload(client, "nan.wav", buf.getvalue(), wait=0).json()
    assert job["status"] == "queued"
    run_once()
    failed = client.get(f"/jobs/{job['id']}").json()
    assert failed["status"] == "failed" and "NaN" in failed["error"] and failed["clip"] is None
    assert incoming_files(ingest) == [] and client.get("/audio").json()["total"] == 0
    assert ingest.queue.get(job["id"]).fields["http_status"] == 415  # what a request waiting on it answers


@pytest.mark.parametrize("error, status", [
    (AudioTooLong("x"), 413), (AudioDecodeError("x"), 415), (StoreClosed("x"), 503), (ClipNotFound([3]), 404),
    (StorageFull("x"), 507), (OSError(errno.EDQUOT, "Disk quota exceeded"), 507),
    (RetrievalError("ingestion failed"), 500), (ValueError("a bug"), 500),
    (QdrantUnavailable("the Qdrant server went away"), 500), (DeviceUnavailable("cuda is gone"), 500),
])
def test_a_failed_job_answers_what_the_service_answers_its_error(error, status):
    """The status a request waiting on a failed job gets is app/errors.py's for the error, as any request's
    (the worker had its own table: a service closing answered 500, not 503); the worker's own failure 500."""
    assert job_status(error) == status


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["no-space", "quota-spent"])
def test_a_full_disk_answers_507_and_leaves_nothing(paused, monkeypatch, code):
    """A disk with no room, or a user whose quota is spent (EDQUOT: a 500 before), is 507."""
    client, ingest, _ = paused

    def full(path, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(app_ingest, "write_bytes_atomically", full)
    r = upload(client, "a.wav", TONE, wait=0)
    assert r.status_code == 507 and "nothing was stored" in r.json()["detail"]
    assert client.get("/jobs").json()["total"] == 0 and incoming_files(ingest) == []
    assert client.post("/search", json={"query": "rain"}).status_code == 200  # searches go on


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   OSError(errno.EDQUOT, "Disk quota exceeded"),
                                   StorageFull("index.sqlite: database or disk is full; nothing was stored")])
def test_a_full_disk_in_the_worker_keeps_the_upload_queued_until_there_is_room(paused, monkeypatch, error):
    """The upload was acknowledged: a full disk while its clip is stored is no fault of the clip's. It was
    failed (507) and its bytes deleted; it goes back to the queue, its bytes kept and the try not counted,
    and is stored once there is room."""
    client, ingest, _ = paused
    job = upload(client, "a.wav", TONE, wait=0).json()
    real = ingest.collection.add_extracted
    calls = []

    def full_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest.collection, "add_extracted", full_once)
    monkeypatch.setattr(worker_module, "FULL_DISK_WAIT_S", 0.01)
    stop = threading.Event()
    worker = IngestWorker(ingest.queue, ingest.collection, name="test")
    serving = threading.Thread(target=worker.serve, args=(stop,), kwargs={"idle_s": 0.01})
    serving.start()
    try:
        for _ in range(500):
            if ingest.queue.get(job["id"]).status == "done":
                break
            time.sleep(0.02)
    finally:
        stop.set()
        serving.join()
    done = ingest.queue.get(job["id"])
    assert done.status == "done" and done.attempts == 1 and len(calls) == 2
    assert client.get("/audio").json()["total"] == 1 and incoming_files(ingest) == []


def test_a_stopped_service_s_running_upload_goes_back_to_the_queue_uncounted(paused):
    """A service stopped (SIGTERM: docker stop, systemd) while it tags an upload: that try is no crash, so
    three restarts during one long upload no longer give it up."""
    client, ingest, _ = paused
    job = upload(client, "a.wav", TONE, wait=0).json()
    for _ in range(4):
        [claimed] = ingest.queue.claim(worker="stopped", limit=1)  # being tagged when the service stops
        assert claimed.id == job["id"] and claimed.attempts == 1
        ingest.stop()  # what the service's shutdown runs (the worker gone)
        ingest.queue = JobQueue(ingest.queue.path, store=ingest.queue.store)  # the next start's
    again = ingest.queue.get(job["id"])
    assert again.status == "queued" and again.attempts == 0


def test_queue_metrics(paused):
    client, _, run_once = paused
    upload(client, "a.wav", TONE, wait=0)
    text = client.get("/metrics").text
    assert "retrieval_ingest_queue_depth 1.0" in text
    run_once()
    text = client.get("/metrics").text
    assert "retrieval_ingest_queue_depth 0.0" in text
    assert 'retrieval_ingest_jobs_total{status="done"} 1.0' in text
    assert "retrieval_ingest_windows_per_second" in text


def test_an_upload_after_another_process_re_projected_the_store_waits_in_the_queue(paused):
    """`index reproject` with another head beside the running service: the next upload's clip was committed
    with the old model's vector (the store then held two models' vectors), its job failed (500) and its
    bytes deleted, and `check` found a clip without its stored upload. It is refused before the write; the
    job goes back to the queue with its bytes, for the service's restart with the model the store holds."""
    from dataclasses import replace

    from index.faiss.store import FaissStore

    client, ingest, run_worker_once = paused
    upload(client, "a.wav", TONE, wait=0)
    assert run_worker_once() == 1
    store = ingest.collection.store
    ids = store.ids().tolist()
    other = FaissStore(ingest.collection.data_dir, store.spec)  # the other process: `index reproject`
    moved = replace(store.spec, head="f" * 64)
    project = ingest.collection.retriever.project
    other.replace_vectors(ids, np.asarray(project(store.logits(ids))) * -1.0, moved,
                          project=lambda logits: -np.asarray(project(logits)))
    other.close()
    # one upload was already waiting for the worker when the store was re-projected
    job = ingest.queue.enqueue(name="b.wav", sha256="b" * 64, location=incoming_location("b" * 64, "faiss"),
                               windows_total=1)[0]
    (ingest.data_dir / job.location).write_bytes(OTHER)
    stop = threading.Event()
    worker = IngestWorker(ingest.queue, ingest.collection, name="test")
    serving = threading.Thread(target=worker.serve, args=(stop,), kwargs={"idle_s": 0.01})
    serving.start()
    serving.join(timeout=120)  # it stops by itself: nothing can be stored until the service restarts
    stop.set()
    assert not serving.is_alive()
    waiting = ingest.queue.get(job.id)
    assert waiting.status == "queued" and waiting.attempts == 0 and len(incoming_files(ingest)) == 1
    with FaissStore(ingest.collection.data_dir, moved) as after:
        assert after.ids().tolist() == ids  # the upload's clip was not written with the old model
    # the service says so: a new upload is refused (nothing queued that no worker would take), not ready
    r = upload(client, "c.wav", wav_bytes(sine(700.0, seconds=0.5)), wait=0)
    assert r.status_code == 409 and "re-projected with another model" in r.json()["detail"]
    assert ingest.queue.count() == 2  # the first upload's job and the waiting one: none added
    ready = client.get("/health/ready")
    assert ready.status_code == 409 and "restart" in ready.json()["detail"]
