"""A body over RETRIEVAL_MAX_UPLOAD_BYTES is answered 413 before the server has read it all: the client
sends only part of a body it announces (or streams) as larger, never finishes it, and still gets the 413."""

import pytest

from tests.reliability.conftest import MAX_UPLOAD_BYTES
from tests.reliability.http_checks import assert_serving, snapshot
from tests.reliability.raw_http import partial_upload

LIMIT = MAX_UPLOAD_BYTES


@pytest.mark.parametrize("path", ["/audio", "/search/audio"])
def test_declared_length_over_the_limit_is_refused_before_the_body(server, path):
    with server.client() as client:
        before = snapshot(server, client)
        answer = partial_upload(server, path, send_bytes=64 * 1024, declared_length=100 * LIMIT,
                                headers=server.write_headers)
        assert answer.status == 413
        assert "larger than" in answer.detail and str(LIMIT) in answer.detail
        assert answer.body_bytes_sent < LIMIT  # it answered with most of the body never sent
        assert snapshot(server, client) == before
        assert_serving(client, clips=before.count)


@pytest.mark.parametrize("path", ["/audio", "/search/audio"])
def test_chunked_body_past_the_limit_is_cut_off(server, path):
    """No Content-Length: the server counts as it reads and stops at the limit, though the body goes on."""
    with server.client() as client:
        before = snapshot(server, client)
        answer = partial_upload(server, path, send_bytes=LIMIT + 64 * 1024, declared_length=None,
                                headers=server.write_headers)
        assert answer.status == 413
        assert "larger than" in answer.detail
        assert snapshot(server, client) == before
        assert_serving(client, clips=before.count)


def test_json_body_over_the_limit_is_refused(server):
    with server.client() as client:
        r = client.post("/search", content=b'{"query": "' + b"a" * LIMIT + b'"}',
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert "larger than" in r.json()["detail"]
