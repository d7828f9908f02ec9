"""Request bodies the server cannot take as they are: refused after the key check, each with an answer that
says what is wrong (and where), small whatever the body; a body that stops arriving is answered 408."""

import json
import select
import socket
import threading
import time
from pathlib import Path

import anyio
import pytest
import uvicorn

import app.limits
from app.errors import MAX_LOC_CHARS, TOO_DEEP
from app.main import create_app
from tests.app.conftest import WRITE, wav_bytes
from tests.audio_fixtures import sine

JSON = {"Content-Type": "application/json"}
DEEP = b"[" * 100_000 + b"]" * 100_000
NOT_UTF8 = b'{"description":"\xff"}'
LONG_NUMBER = b'{"description":1' + b"0" * 5000 + b"}"  # 5001 digits: Python reads 4300 at most
UNPARSEABLE = [pytest.param(DEEP, id="nested-too-deep"), pytest.param(NOT_UTF8, id="not-utf8"),
               pytest.param(LONG_NUMBER, id="number-too-long")]


@pytest.mark.parametrize("body", UNPARSEABLE)
def test_a_body_that_cannot_be_parsed_is_judged_after_the_key(make_client, body):
    """FastAPI's 400 for a body it cannot parse came before the route's key check: a caller without the key
    was told about its body (400) rather than that it may not write, or read (401, 403)."""
    client = make_client(protect_reads=True)
    for method, path in (("PATCH", "/audio/1"), ("POST", "/search")):
        missing = client.request(method, path, content=body, headers=JSON)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer", missing.text
        wrong = client.request(method, path, content=body, headers={**JSON, "X-API-Key": "wrong"})
        assert wrong.status_code == 403, wrong.text
        keyed = client.request(method, path, content=body, headers={**JSON, **WRITE})
        assert keyed.status_code in (400, 422), keyed.text


def test_each_unparseable_body_says_what_is_wrong(client):
    """Nested past the parser's depth, bytes that are not UTF-8: a 400 that says which; FastAPI's says only
    "There was an error parsing the body"."""
    deep = client.patch("/audio/1", content=DEEP, headers={**JSON, **WRITE})
    assert deep.status_code == 400 and deep.json() == {"detail": TOO_DEEP}
    latin = client.patch("/audio/1", content=NOT_UTF8, headers={**JSON, **WRITE})
    assert latin.status_code == 400 and latin.json()["detail"].startswith("the body is not UTF-8 text")


@pytest.mark.parametrize(("body", "loc"), [
    (b'{"query": "x", "k": 1' + b"0" * 4300 + b"}", ["body", "k"]),
    (b'{"query": "x", "k": -' + b"9" * 4301 + b"}", ["body", "k"]),
    (b'{"query": "x", "fields": {"a": "1", "b": [2, 3' + b"1" * 4400 + b"]}}", ["body", "fields", "b", 1]),
    (b"[" + b"7" * 4301 + b"]", ["body", 0])])
def test_a_json_integer_longer_than_python_reads_is_a_422_at_its_place(client, body, loc):
    """More than 4300 digits (Python's int() refuses them, against quadratic-time conversions): FastAPI's
    400 named nothing; the same number in a query parameter was already a 422 naming it."""
    r = client.post("/search", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    [issue] = r.json()["detail"]
    assert issue["loc"] == loc and issue["type"] == "int_parsing_size"
    assert "digits" in issue["msg"] and "4300" in issue["msg"]
    assert len(r.content) < 500  # the number is not echoed
    within = client.post("/search", content=b'{"query": "x", "k": 1' + b"0" * 4299 + b"}", headers=JSON)
    assert within.status_code == 422 and within.json()["detail"][0]["type"] == "less_than_equal"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_json_body_in_utf16_or_utf32_is_refused_as_not_utf8(make_client, encoding):
    """RFC 8259 8.1: JSON travels as UTF-8. Python's json guesses UTF-16 and UTF-32 from the first bytes,
    so such a body was searched (200), edited, exported; it is refused as a Latin-1 one is, after the key."""
    client = make_client(protect_reads=True)
    bodies = {("POST", "/search"): {"query": "café", "k": 1}, ("POST", "/exports/csv"): {"results": []},
              ("PATCH", "/audio/1"): {"description": "café"}}
    for (method, path), body in bodies.items():
        content = json.dumps(body, ensure_ascii=False).encode(encoding)
        r = client.request(method, path, content=content, headers={**JSON, **WRITE})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["detail"].startswith("the body is not UTF-8 text"), r.text
        assert f"(it is {encoding[:6].upper()}" in r.json()["detail"]  # it says which it is
        assert client.request(method, path, content=content, headers=JSON).status_code == 401


def test_a_utf8_body_is_read_with_or_without_a_byte_order_mark(client):
    """RFC 8259 lets a parser ignore a UTF-8 byte-order mark, and json.loads does: still so."""
    body = json.dumps({"query": "café", "k": 1}, ensure_ascii=False).encode()
    for content in (body, b"\xef\xbb\xbf" + body):
        r = client.post("/search", content=content, headers=JSON)
        assert r.status_code == 200 and r.json()["query"] == "café", r.text


def test_a_422_names_a_long_key_in_a_few_characters(client):
    """An unknown key of a megabyte came back whole in `loc` (a megabyte of 422): a name of the request's
    own is cut to MAX_LOC_CHARS, with an ellipsis, wherever it stands (a key, a `fields` key, a form
    field)."""
    key = "k" * 1_000_000
    cut = "k" * MAX_LOC_CHARS + "\u2026"
    r = client.post("/search", content=json.dumps({"query": "x", key: 1}), headers=JSON)
    assert r.status_code == 422 and len(r.content) < 1000
    assert r.json()["detail"] == [{"loc": ["body", cut], "msg": "Extra inputs are not permitted",
                                   "type": "extra_forbidden"}]
    r = client.post("/search", json={"query": "x", "fields": {key: 5}})
    assert r.status_code == 422 and len(r.content) < 1000
    assert r.json()["detail"][0]["loc"][:3] == ["body", "fields", cut]  # then "[key]": the key is judged
    form = client.post("/audio", files={"file": ("a.wav", wav_bytes(sine(seconds=0.2)), "audio/wav")},
                       data={"x" * 3000: "1"}, headers=WRITE)  # a part header holds 4 KiB
    assert form.status_code == 422 and len(form.content) < 1000
    assert form.json()["detail"][0]["loc"] == ["body", "x" * MAX_LOC_CHARS + "\u2026"]
    short = client.post("/search", json={"query": "x", "k" * MAX_LOC_CHARS: 1})  # at the limit: whole
    assert short.json()["detail"][0]["loc"] == ["body", "k" * MAX_LOC_CHARS]


@pytest.fixture
def live(app_settings, retriever, monkeypatch):
    """The app under a real uvicorn (h11) on a free port, in a thread, bodies given 0.5 s between parts."""
    monkeypatch.setattr(app.limits, "BODY_IDLE_S", 0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(app_settings, retriever=retriever), host="127.0.0.1",
                                           port=port, log_level="warning", http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(30)


def stalled_request(port: int, head: str, sent: bytes) -> tuple[bytes, float]:
    """Send a request's head and part of its body, then nothing: everything the server answers until it
    closes the connection, and how long that took (a socket timeout of 20 s fails the test)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode() + sent)
        start, answer = time.monotonic(), b""
        while chunk := sock.recv(65536):  # b"": the server closed the connection
            answer += chunk
        return answer, time.monotonic() - start


def test_a_body_that_stops_arriving_is_answered_408_and_its_connection_closed(live, app_settings):
    """A request declaring 100 bytes and sending 9 was waited for forever (slowloris): after BODY_IDLE_S
    without a byte it is answered 408 and the connection closed, at once (not held for a rest that is not
    coming), and a stalled upload leaves nothing behind. One that sends no byte of its body at all is told
    so too (it was told its body came too slowly, at 0 bytes: on the first part both limits are one)."""
    port = live
    json_head = ("POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 100\r\n\r\n")
    for sent in (b'{"query":', b""):
        answer, took = stalled_request(port, json_head, sent)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"\r\nconnection: close\r\n" in answer.lower()
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"].startswith("the request body stopped")
        assert 0.4 < took < 10
    part = (b'--b0und\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + wav_bytes(sine(seconds=0.5))[:4000])
    upload_head = (f"POST /audio HTTP/1.1\r\nHost: x\r\nX-API-Key: {WRITE['X-API-Key']}\r\n"
                   "Content-Type: multipart/form-data; boundary=b0und\r\nContent-Length: 100000\r\n\r\n")
    answer, took = stalled_request(port, upload_head, part)
    assert answer.startswith(b"HTTP/1.1 408 ") and took < 10
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        jobs = b"".join(iter(lambda: sock.recv(65536), b""))
    assert json.loads(jobs.split(b"\r\n\r\n", 1)[1])["total"] == 0
    incoming = app_settings.data_dir / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())


def trickled_request(port: int, head: str, body: bytes, *, piece: int, every_s: float) -> bytes:
    """Send a request's head, then its body `piece` bytes every `every_s` seconds while the server listens:
    everything it answers until it closes the connection (or, keeping it open, until its answer is whole)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode())
        for at in range(0, len(body), piece):
            if select.select([sock], [], [], every_s)[0]:  # the server answered before the body was whole
                break
            sock.sendall(body[at:at + piece])
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < int(
                answer.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]):
            if not (chunk := sock.recv(65536)):
                break
            answer += chunk
        return answer


def test_a_body_that_comes_too_slowly_is_answered_408(live, monkeypatch):
    """A byte every 59 s never let BODY_IDLE_S pass without one, and held its connection forever: after
    BODY_IDLE_S the body must come at BODY_MIN_RATE on average (each byte buys 1/BODY_MIN_RATE s more), or
    it is answered 408 saying so. A body faster than that is served, however long it takes in all."""
    monkeypatch.setattr(app.limits, "BODY_MIN_RATE", 10)  # with BODY_IDLE_S 0.5: 3 bytes in 0.8 s at most
    body = json.dumps({"query": "a dog barks", "k": 1}).encode()
    head = ("POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    slow = trickled_request(live, head, body, piece=1, every_s=0.3)  # 3.3 B/s, each byte within 0.5 s
    assert slow.startswith(b"HTTP/1.1 408 ") and b"\r\nconnection: close\r\n" in slow.lower()
    assert json.loads(slow.split(b"\r\n\r\n", 1)[1])["detail"].startswith("the request body came too slowly")
    fast = trickled_request(live, head, body, piece=8, every_s=0.3)  # 27 B/s, 1.8 s in all
    assert fast.startswith(b"HTTP/1.1 200 "), fast[:200]
    assert json.loads(fast.split(b"\r\n\r\n", 1)[1])["results"] == []  # the collection is empty


@pytest.mark.parametrize("stalled", [False, True], ids=["body-whole", "answer-started"])
def test_receive_is_timed_only_while_the_body_is_awaited(monkeypatch, stalled):
    """Once the body has all come, or the answer has started (whatever is left of the body is no longer
    asked for), receive() is not timed: an answer streaming for longer than BODY_IDLE_S listens for the
    client's disconnect as long as it takes, rather than failing mid-stream with a 408 it cannot send."""
    got, sent = [], []

    async def app_under(scope, receive, send):
        if stalled:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        else:
            got.append(await receive())  # the whole body
        got.append(await receive())  # the disconnect, long after
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def receive():
        if not got and not stalled:
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await anyio.sleep(0.3)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def run():
        await app.limits.BodyIdleLimit(app_under)({"type": "http", "headers": [(b"content-length", b"2")]},
                                                  receive, send)

    monkeypatch.setattr(app.limits, "BODY_IDLE_S", 0.05)
    anyio.run(run)
    assert got[-1]["type"] == "http.disconnect" and len(got) == (1 if stalled else 2)
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_the_docs_give_the_body_limits_the_code_has():
    """The pace a body must keep, as docs/search-api.md and docs/deployment.md tell it, is the code's."""
    root = Path(__file__).resolve().parents[2] / "docs"
    for page in ("search-api.md", "deployment.md"):
        text = " ".join((root / page).read_text().split())
        assert f"{app.limits.BODY_IDLE_S:g} s" in text
        assert f"{app.limits.BODY_MIN_RATE} bytes a second" in text
