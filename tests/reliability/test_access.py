"""Who may write: 401 without a key, 403 with a wrong one (X-API-Key or Bearer), decided before the body is
read; keys compared in constant time and never logged; CORS origins only from the settings."""

import ast
import inspect

import pytest
from fastapi.testclient import TestClient

import app.security
from app.compose import build_retriever
from app.main import create_app
from app.settings import Settings
from tests.audio_fixtures import sine
from tests.reliability.bad_inputs import audio_bytes
from tests.reliability.conftest import API_KEY, MAX_UPLOAD_BYTES
from tests.reliability.http_checks import snapshot, upload
from tests.reliability.raw_http import partial_upload

WRONG_KEYS = ("not-the-key-81c2", "rel-key-5b1e9d")  # the second differs from the real key in one character
FOREIGN = "http://evil.example"
ALLOWED = "http://allowed.example"

NO_KEY = [({}, 401), ({"X-API-Key": ""}, 401), ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
          ({"Authorization": "Bearer"}, 401)]
WRONG = ([({"X-API-Key": k}, 403) for k in WRONG_KEYS]
         + [({"Authorization": f"Bearer {k}"}, 403) for k in WRONG_KEYS])
CLIP = audio_bytes(sine(880.0, seconds=0.5))


@pytest.fixture(scope="module")
def clip_id(server) -> int:
    """A clip to try to delete."""
    with server.client(headers=server.write_headers) as client:
        r = upload(client, "/audio", filename="keep.wav", data=CLIP)
        assert r.status_code in (200, 201), r.text
        return r.json()["id"]


@pytest.mark.parametrize("headers, status", NO_KEY + WRONG,
                         ids=["none", "empty", "basic", "bearer-empty", "key-wrong", "key-one-char-off",
                              "bearer-wrong", "bearer-one-char-off"])
def test_writes_without_the_right_key_are_refused(server, clip_id, headers, status):
    with server.client() as client:
        before = snapshot(server, client)
        new = audio_bytes(sine(932.0, seconds=0.5))
        answers = [upload(client, "/audio", filename="new.wav", data=new, headers=headers),
                   client.delete(f"/audio/{clip_id}", headers=headers)]
        for r in answers:
            assert r.status_code == status, r.text
            assert r.json()["detail"]
            if status == 401:
                assert r.headers["WWW-Authenticate"] == "Bearer"
        assert snapshot(server, client) == before


@pytest.mark.parametrize("scheme", ["X-API-Key", "Bearer"])
def test_the_right_key_writes_with_either_header(server, scheme):
    headers = {"X-API-Key": API_KEY} if scheme == "X-API-Key" else {"Authorization": f"Bearer {API_KEY}"}
    data = audio_bytes(sine(1046.0 if scheme == "Bearer" else 1174.0, seconds=0.5))
    with server.client(headers=headers) as client:
        before = snapshot(server, client)
        r = upload(client, "/audio", filename=f"{scheme}.wav", data=data)
        assert r.status_code == 201, r.text
        assert client.delete(f"/audio/{r.json()['id']}").status_code == 204
        assert snapshot(server, client) == before


@pytest.mark.parametrize("headers, status", [({}, 401), ({"X-API-Key": WRONG_KEYS[0]}, 403)])
def test_a_refused_write_is_answered_before_its_body_is_read(server, headers, status):
    """A body under the size limit, of which only 4 KiB are ever sent: the refusal comes anyway."""
    answer = partial_upload(server, "/audio", send_bytes=4096, declared_length=MAX_UPLOAD_BYTES - 1,
                            headers=headers)
    assert answer.status == status


def test_keys_are_compared_in_constant_time():
    """The key check uses hmac.compare_digest; no ==/!= (which stop at the first differing byte) touches a
    key anywhere in the access module."""
    source = inspect.getsource(app.security)
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert any(c.func.attr == "compare_digest" for c in calls)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and "key" in ast.unparse(node).lower():
            assert all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops), ast.unparse(node)


def test_keys_are_never_logged_nor_shown(server, clip_id):
    """After requests with the key and with wrong keys (writes, reads, refusals, errors), neither the key nor
    the wrong keys appear in the server's log (every logger at DEBUG) or in any public page."""
    right = [{"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}]
    wrong = [{"X-API-Key": k} for k in WRONG_KEYS] + [{"Authorization": f"Bearer {k}"} for k in WRONG_KEYS]
    with server.client() as client:
        for headers in right + wrong:
            upload(client, "/audio", filename="k.wav", data=CLIP, headers=headers)
            upload(client, "/audio", filename="k.wav", data=b"not audio", headers=headers)
            client.post("/search", json={"query": "rain", "k": 3}, headers=headers)
            client.post("/search", json={"query": ""}, headers=headers)
            client.get(f"/audio/{clip_id}", headers=headers)
            client.delete("/audio/999999999", headers=headers)
        pages = [client.get(p).text for p in ("/metrics", "/openapi.json", "/health/ready", "/audio")]
    log = server.log_text()
    assert "POST /audio" in log  # the log does record the requests
    for secret in (API_KEY, *WRONG_KEYS):
        assert secret not in log
        assert not any(secret in page for page in pages)


def test_no_cors_by_default(server):
    with server.client() as client:
        r = client.get("/health/live", headers={"Origin": FOREIGN})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        pre = client.options("/search", headers={"Origin": FOREIGN, "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "x-api-key"})
        assert "access-control-allow-origin" not in pre.headers


@pytest.fixture(scope="module")
def retriever(minilm_path, random_tagger, text_encoder):
    settings = Settings(text_model=str(minilm_path), passt_weights="random", device="cpu")
    return build_retriever(settings, tagger=random_tagger, text=text_encoder)


@pytest.fixture
def env_app(tmp_path, minilm_path, retriever, monkeypatch):
    """make(env) -> a TestClient of the app whose Settings read these RETRIEVAL_* variables (in process,
    over the session's models: nothing to load)."""
    for name in ("RETRIEVAL_API_KEY", "RETRIEVAL_CORS_ORIGINS", "RETRIEVAL_PROTECT_READS"):
        monkeypatch.delenv(name, raising=False)
    clients = []

    def make(env: dict[str, str]) -> TestClient:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models",
                            text_model=str(minilm_path), passt_weights="random", device="cpu")
        client = TestClient(create_app(settings, retriever=retriever)).__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_cors_origins_come_from_the_setting(env_app):
    client = env_app({"RETRIEVAL_CORS_ORIGINS": f'["{ALLOWED}"]', "RETRIEVAL_API_KEY": API_KEY})
    r = client.post("/search", json={"query": "rain"}, headers={"Origin": ALLOWED})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
    pre = client.options("/audio", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "x-api-key"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == ALLOWED
    assert "x-api-key" in pre.headers["access-control-allow-headers"].lower()
    foreign = client.post("/search", json={"query": "rain"}, headers={"Origin": FOREIGN})
    assert "access-control-allow-origin" not in foreign.headers
    denied = client.options("/audio", headers={"Origin": FOREIGN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in denied.headers


def test_without_a_configured_key_writes_are_disabled(env_app):
    client = env_app({})
    r = client.post("/audio", files={"file": ("a.wav", CLIP)}, headers={"X-API-Key": "anything"})
    assert r.status_code == 403 and "RETRIEVAL_API_KEY" in r.json()["detail"]
    assert client.get("/audio").json()["total"] == 0
    assert client.post("/search", json={"query": "rain"}).status_code == 200  # reads stay open


def urllib_upload(server, body_bytes: int, headers: dict[str, str]) -> tuple[int, dict]:
    """A multipart upload as Python's urllib sends it: the whole body, then the answer read."""
    import json
    import urllib.error
    import urllib.request

    boundary = "urllib-boundary-7c1d"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    body = head + b"\0" * (body_bytes - len(head) - 40) + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/audio", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                              **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("headers, status, body_bytes", [
    ({}, 401, MAX_UPLOAD_BYTES - 1024), ({"X-API-Key": WRONG_KEYS[0]}, 403, MAX_UPLOAD_BYTES - 1024),
    ({"X-API-Key": API_KEY}, 413, 8 * MAX_UPLOAD_BYTES)])
def test_a_client_that_sends_its_whole_body_before_reading_gets_the_early_answer(server, headers, status,
                                                                                  body_bytes):
    """urllib writes all of a body before it reads: the refusal, sent before the body was read, reaches it
    (the rest of the body is read and dropped), not a connection reset."""
    got, detail = urllib_upload(server, body_bytes, headers)
    assert got == status and detail["detail"]
