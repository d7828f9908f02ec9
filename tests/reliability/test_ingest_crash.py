"""SIGKILL the server while acknowledged uploads are still queued in its ingest queue, start it again on the
same data directory: every acknowledged job ends done (or failed), each done clip is there and found by its
own audio, and no worker is left behind by the killed server."""

import io
import os
import time
from itertools import islice

import numpy as np
import pytest
import soundfile as sf

from benchmarks.load import distinct_tones
from tests.reliability.http_checks import assert_clip_present, upload
from tests.reliability.server import LiveServer, server_env

UPLOADS = 6
FINISH_TIMEOUT_S = 300


@pytest.fixture
def own_server(tmp_path, minilm_path):
    """A server of its own (this test kills it), its ingest worker a separate process as in production."""
    env = server_env(data_dir=tmp_path / "data", text_model=minilm_path, api_key="crash-key",
                     max_duration_s=3.0, ingest_worker="process")
    live = LiveServer(env=env, workdir=tmp_path).start()
    yield live
    if live.alive():
        live.stop()


def worker_pids(server: LiveServer) -> set[int]:
    """Processes that hold the data directory's queue open (the service and its worker)."""
    pids = set()
    target = str(server.data_dir / "jobs.sqlite")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in os.listdir(f"/proc/{pid}/fd")):
                pids.add(int(pid))
        except OSError:
            continue
    return pids


def test_jobs_queued_at_a_sigkill_all_finish_after_restart(own_server):
    server = own_server
    tones = list(islice(distinct_tones(7), UPLOADS))
    with server.client(headers=server.write_headers) as client:
        acked = []
        for i, data in enumerate(tones):
            r = upload(client, "/audio", filename=f"q{i}.wav", data=data, wait=0)
            assert r.status_code == 202, r.text
            acked.append((r.json()["id"], data))
        queued = client.get("/jobs", params={"status": "queued"}).json()["total"]
    holders = worker_pids(server)
    server.kill()
    assert queued >= 1, "the worker finished every job before the kill: nothing was tested"
    deadline = time.monotonic() + 10
    while worker_pids(server) and time.monotonic() < deadline:  # the worker dies with the service
        time.sleep(0.1)
    assert not worker_pids(server), f"processes of the killed server still hold the queue: {holders}"

    server.start()
    with server.client(headers=server.write_headers) as client:
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while time.monotonic() < deadline:
            jobs = [client.get(f"/jobs/{job_id}").json() for job_id, _ in acked]
            if all(j["status"] in ("done", "failed") for j in jobs):
                break
            time.sleep(0.5)
        assert [j["status"] for j in jobs] == ["done"] * UPLOADS, jobs
        for (_, data), job in zip(acked, jobs, strict=True):
            assert_clip_present(client, clip_id=job["clip"]["id"], data=data)
        assert client.get("/jobs", params={"status": "queued"}).json()["total"] == 0
        assert not list((server.data_dir / "incoming").glob("*.upload"))  # bytes moved into the index

        # an upload that fails in the worker's process is in the service's log (the worker logged nothing)
        wave = np.zeros(16_000, np.float32)
        wave[8_000] = np.nan  # a header that reads well, samples that do not
        bad = io.BytesIO()
        sf.write(bad, wave, 16_000, format="WAV", subtype="FLOAT")
        r = upload(client, "/audio", filename="nan-inside.wav", data=bad.getvalue(), wait=60)
        assert r.status_code == 415, r.text
    failed = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and failed is None:
        failed = next((line for line in server.log_text().splitlines()
                       if "failed" in line and "nan-inside.wav" in line), None)
        time.sleep(0.2)
    assert failed is not None and " INFO index.ingest.worker: job " in failed, server.log_tail()
