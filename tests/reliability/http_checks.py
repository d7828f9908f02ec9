"""What the reliability tests ask the live server, and the state they compare before and after."""

import hashlib
from dataclasses import dataclass

import httpx

from tests.reliability.server import LiveServer


@dataclass(frozen=True)
class Snapshot:
    """What a refused request must leave as it was: the index and the stored files."""

    count: int
    records: tuple[tuple[int, str], ...]  # (id, sha256) of every clip, by id
    stored_files: tuple[str, ...]  # the data dir's audio folder


def snapshot(server: LiveServer, client: httpx.Client) -> Snapshot:
    records, offset = [], 0
    while True:
        page = client.get("/audio", params={"offset": offset, "limit": 500})
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        records += [(c["id"], c["sha256"]) for c in items]
        offset += len(items)
        if not items or offset >= page.json()["total"]:
            break
    ready = client.get("/health/ready").json()
    return Snapshot(ready["clips"], tuple(records), tuple(server.stored_files()))


def upload(client: httpx.Client, path: str, *, filename: str, data: bytes, headers: dict | None = None,
           wait: float = 60, **fields) -> httpx.Response:
    """A multipart upload; to `/audio` it waits (`wait` seconds) for the clip to be indexed, so an
    acknowledged and indexed upload answers 201 with its record."""
    waits = path == "/audio" and wait
    params = {"wait": wait} if waits else None
    timeout = wait + 60 if waits else client.timeout  # the server may answer only after `wait` seconds
    return client.post(path, files={"file": (filename, data, "application/octet-stream")},
                       data=fields or None, headers=headers, params=params, timeout=timeout)


def raw_multipart(*, filename: bytes, data: bytes, boundary: bytes = b"raw-7c1d") -> dict:
    """httpx.post kwargs for a form whose file name goes on the wire byte for byte (httpx itself would
    percent-encode a NUL or a line break, so the server would never see them)."""
    content = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename
               + b'"\r\nContent-Type: audio/wav\r\n\r\n' + data + b"\r\n--" + boundary + b"--\r\n")
    content_type = f"multipart/form-data; boundary={boundary.decode()}"
    return {"content": content, "headers": {"Content-Type": content_type}}


def detail_text(response: httpx.Response) -> str:
    """The error message: FastAPI's `detail` is a string for our errors, a list for validation errors."""
    detail = response.json()["detail"]
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) for d in detail)
    return str(detail)


def assert_serving(client: httpx.Client, *, clips: int) -> None:
    """A text search still answers, over the whole collection."""
    r = client.post("/search", json={"query": "a dog barking in the rain", "k": 100})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == min(clips, 100)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_clip_present(client: httpx.Client, *, clip_id: int, data: bytes) -> None:
    """The clip's record, its stored bytes, and a query by example with the same bytes finds it at the top
    (same bytes -> same vector -> the best score there is, up to float error)."""
    r = client.get(f"/audio/{clip_id}")
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] == sha256(data)
    f = client.get(f"/audio/{clip_id}/file")
    assert f.status_code == 200 and sha256(f.content) == sha256(data)
    s = upload(client, "/search/audio", filename="query.wav", data=data, k="100")
    assert s.status_code == 200, s.text
    hits = s.json()["results"]
    scores = {h["id"]: h["score"] for h in hits}
    assert clip_id in scores, f"clip {clip_id} is not found by a search with its own audio"
    assert scores[clip_id] >= max(scores.values()) - 1e-4
    assert abs(scores[clip_id] - 1.0) < 1e-5  # cosine of a unit vector with itself: the same model
