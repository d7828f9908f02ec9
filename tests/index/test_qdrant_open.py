"""Opening a Qdrant store that cannot be had says which setting to look at, in one line (a refused
connection, a URL that is none, an embedded folder another process holds)."""

import socket

import pytest

from index.qdrant.open import QdrantUnavailable, open_existing, open_qdrant_store
from tests.index.store_fixtures import SPEC


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize("url", [f"http://127.0.0.1:{closed_port()}", "htp://nowhere", " "])
def test_a_server_that_cannot_be_reached_is_named_with_its_setting(url, tmp_path):
    with pytest.raises(QdrantUnavailable, match=r"the Qdrant server at .* \(RETRIEVAL_QDRANT_URL\)"):
        open_qdrant_store(url=url, data_dir=tmp_path, collection="clips", spec=SPEC)
    with pytest.raises(QdrantUnavailable):
        open_existing(url=url, data_dir=tmp_path, collection="clips")


def test_an_embedded_store_held_by_another_process_says_so(tmp_path):
    held = open_qdrant_store(url=None, data_dir=tmp_path, collection="clips", spec=SPEC)
    try:
        with pytest.raises(QdrantUnavailable, match=r"embedded Qdrant store in .* \(is a service using it"):
            open_qdrant_store(url=None, data_dir=tmp_path, collection="clips", spec=SPEC)
    finally:
        held.close()
    open_qdrant_store(url=None, data_dir=tmp_path, collection="clips", spec=SPEC).close()  # free again
