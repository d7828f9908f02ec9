"""A bug's answer is JSON like every other error's, and tells nothing of the failure."""

from fastapi.testclient import TestClient

import app.routes.audio as audio_routes
from app.main import create_app


def test_an_unexpected_failure_is_a_json_500_without_its_insides(app_settings, retriever, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("/secret/path/store.sqlite is on fire")

    monkeypatch.setattr(audio_routes, "page_of", broken)
    with TestClient(create_app(app_settings, retriever=retriever), raise_server_exceptions=False) as client:
        r = client.get("/audio")
        assert r.status_code == 500 and r.headers["content-type"] == "application/json"
        assert r.json() == {"detail": "an internal error: the service's log has its traceback"}
        assert client.get("/health/live").status_code == 200  # and the service goes on


def test_a_client_gone_mid_upload_is_said_so_and_stores_nothing(app_settings, retriever, caplog):
    """A page reloaded while its upload was on its way: starlette's ClientDisconnect was a fault with a
    75-line traceback in the log; it is a 400 logged in a line, and nothing is stored."""
    import logging

    from tests.app.conftest import API_KEY

    boundary = "b0undary"
    first = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
             "Content-Type: audio/wav\r\n\r\nRIFF....").encode()
    scope = {"type": "http", "method": "POST", "path": "/audio", "raw_path": b"/audio", "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("test", 80), "client": ("test", 1),
             "http_version": "1.1", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "headers": [(b"host", b"test"), (b"x-api-key", API_KEY.encode()),
                         (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                         (b"content-length", b"100000")]}
    messages = [{"type": "http.request", "body": first, "more_body": True}, {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    app = create_app(app_settings, retriever=retriever)
    with TestClient(app) as client, caplog.at_level(logging.INFO):
        client.portal.call(app, scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        assert start["status"] == 400
        assert "ClientGone" in caplog.text and "Traceback" not in caplog.text
        assert client.get("/jobs").json()["total"] == 0 and client.get("/audio").json()["total"] == 0
