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
