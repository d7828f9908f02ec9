"""SIGKILL the server in the middle of a stream of uploads and start it again on the same data directory:
every upload it acknowledged (201) is there, readable and found by a search; the index opened by itself."""

import threading
import time
from itertools import islice

import httpx

from benchmarks.load import distinct_tones
from tests.reliability.http_checks import assert_clip_present, sha256, snapshot, upload

UPLOADERS = 2
ACKED_BEFORE_KILL = 4
WAIT_S = 240  # for the acknowledgements before the kill; a guard against a hang only


class UploadStream:
    """Uploaders sending distinct tones back to back until the server goes away."""

    def __init__(self, server):
        self.server = server
        self.acked: list[tuple[int, bytes]] = []  # (clip id, bytes) answered 201
        self.attempted = 0
        self.refused: list[int] = []  # any other answer
        self.cut: list[str] = []  # how each uploader's last request ended (ReadError: cut off mid-request)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(UPLOADERS)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30, headers=self.server.write_headers) as client:
            for data in islice(distinct_tones(90 + i), 200):
                with self.lock:
                    self.attempted += 1
                try:
                    r = upload(client, "/audio", filename="stream.wav", data=data)
                except httpx.HTTPError as e:
                    with self.lock:
                        self.cut.append(type(e).__name__)
                    return  # killed: this upload was never acknowledged
                with self.lock:
                    if r.status_code == 201:
                        self.acked.append((r.json()["id"], data))
                    else:
                        self.refused.append(r.status_code)

    def __enter__(self) -> "UploadStream":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        for t in self.threads:
            t.join()


def test_acknowledged_uploads_survive_sigkill(server):
    with server.client() as client:
        before = snapshot(server, client)
    with UploadStream(server) as stream:
        deadline = time.monotonic() + WAIT_S
        while len(stream.acked) < ACKED_BEFORE_KILL and time.monotonic() < deadline and server.alive():
            time.sleep(0.05)
        server.kill()  # another upload is on its way: the uploaders never stop between two
    assert len(stream.acked) >= ACKED_BEFORE_KILL and not stream.refused
    print(f"\nkilled after {len(stream.acked)} acknowledged of {stream.attempted} uploads sent; "
          f"the uploaders' last requests ended with {stream.cut}")
    log_start = len(server.log_text())
    ready = server.start().wait_ready()  # the same data directory, nothing repaired by hand
    restart_log = server.log_text()[log_start:]
    assert "Traceback" not in restart_log and " ERROR " not in restart_log, restart_log[-3000:]
    with server.client() as client:
        after = snapshot(server, client)
        assert ready["clips"] == after.count == len(after.records)
        # every acknowledged upload is there; an unacknowledged one in flight may or may not have committed
        assert before.count + len(stream.acked) <= after.count <= before.count + stream.attempted
        for clip_id, data in stream.acked:
            assert_clip_present(client, clip_id=clip_id, data=data)
        stored = {name for name in after.stored_files if not name.startswith(".")}
        recorded = {sha for _, sha in after.records}
        orphans = {name for name in stored if name.split(".")[0] not in recorded}
        assert {f"{sha256(data)}.wav" for _, data in stream.acked} <= stored
        assert len(orphans) <= UPLOADERS  # at most the copies of uploads cut off by the kill
        print(f"after restart: {after.count - before.count} new clips, {len(orphans)} stored copies without "
              "a record (removed at a later open once old)")
        # and it takes writes again
        fresh = next(islice(distinct_tones(99), 150, None))
        r = upload(client, "/audio", filename="after.wav", data=fresh, headers=server.write_headers)
        assert r.status_code == 201, r.text
        assert_clip_present(client, clip_id=r.json()["id"], data=fresh)
