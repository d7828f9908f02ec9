"""Opening a Qdrant store that cannot be had says which setting to look at, in one line (a refused
connection, a URL that is none, an embedded folder another process holds)."""

import socket
from dataclasses import replace

import pytest

from index.qdrant.open import QdrantUnavailable, open_existing, open_qdrant_store
from tests.index.store_fixtures import SPEC, SharedClient


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


def test_a_mistyped_collection_on_a_server_is_said_not_made_by_a_search(tmp_path, monkeypatch):
    """`RETRIEVAL_QDRANT_COLLECTION=clipz` against a server: search, remove, backup and check are refused
    (NoCollection naming the setting) and nothing is created there; the configured one is found."""
    import index.qdrant.open as qs
    from index.stores import NoCollection, StoreConfig, open_store, require_store

    server = SharedClient()
    monkeypatch.setattr(qs, "connect", lambda url, *, data_dir, api_key=None: server)
    held = StoreConfig(data_dir=tmp_path, backend="qdrant", qdrant_url="http://qdrant:6333")
    open_store(held, SPEC).close()  # `index add` made "clips"
    require_store(held)
    before = sorted(c.name for c in server.get_collections().collections)
    said = r"no Qdrant collection 'clipz' on the server at http://qdrant:6333 \(RETRIEVAL_QDRANT_COLLECTION\)"
    with pytest.raises(NoCollection, match=said):
        require_store(replace(held, qdrant_collection="clipz"))
    assert sorted(c.name for c in server.get_collections().collections) == before


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
def test_a_service_on_a_server_collection_another_process_re_projected_stops_storing_and_searching(
        tmp_path, monkeypatch):
    """Several services share a server's collection: after one re-projects it (same dimension, another
    head), the others' searches and adds are refused (CheckpointMismatch, the service's 409 and its
    worker's stop), never ranked with the old head's queries nor stored as the old head's vectors."""
    import numpy as np

    import index.qdrant.open as qs
    from index.store.records import Timeline, Windows
    from index.stores import StoreConfig, open_store
    from retrieval.errors import CheckpointMismatch
    from tests.index.store_fixtures import clip, fill, logits, unit_vectors

    def timeline_of(n: int) -> Timeline:
        starts = 2.5 * np.arange(n)
        return Timeline(Windows(starts, starts + 5, unit_vectors(n, seed=2).astype(np.float16),
                                np.zeros((n, 527), np.float32)), np.zeros(8, np.uint8))

    server = SharedClient()
    monkeypatch.setattr(qs, "connect", lambda url, *, data_dir, api_key=None: server)
    config = StoreConfig(data_dir=tmp_path, backend="qdrant", qdrant_url="http://qdrant:6333")
    service, other = open_store(config, SPEC), open_store(config, SPEC)
    ids = sorted(fill(service, unit_vectors(6)))
    service.check_current()
    new = replace(SPEC, head="f" * 64)
    other.replace_vectors(ids, unit_vectors(6, seed=9), new, project=lambda x: unit_vectors(len(x), seed=8))
    other.check_current()  # the process that re-projected holds the new model
    with pytest.raises(CheckpointMismatch, match="re-projected with another model by another process"):
        service.check_current()
    with pytest.raises(CheckpointMismatch):
        service.search(unit_vectors(1), 3)
    with pytest.raises(CheckpointMismatch):  # moments: their windows' searches
        service.search_windows(unit_vectors(1), 3)
    with pytest.raises(CheckpointMismatch):
        service.scored_windows(unit_vectors(1)[0], ids)
    with pytest.raises(CheckpointMismatch):  # a backfill's windows would be the old model's
        service.set_timeline(ids[0], timeline_of(2))
    assert service.window_count() == 0
    with pytest.raises(CheckpointMismatch):
        service.add(clip(50), unit_vectors(1)[0], logits(50))
    assert service.count() == 6 and np.isin(ids, service.ids()).all()


def test_a_servers_api_key_goes_from_the_setting_to_the_client_and_into_no_repr(monkeypatch, tmp_path):
    """RETRIEVAL_QDRANT_API_KEY reaches every client of the server (a server with a key refused them all:
    401); it shows in no repr of the settings or the store's configuration (logs, tracebacks)."""
    import index.qdrant.open as qs
    from app.compose import store_config
    from app.settings import Settings

    made = []
    monkeypatch.setattr(qs, "QdrantClient", lambda **kw: made.append(kw) or SharedClient())
    settings = Settings(data_dir=tmp_path, store_backend="qdrant", qdrant_url="https://q.example:6333",
                        qdrant_api_key="s3cret")
    config = store_config(settings)
    assert config.qdrant_api_key == "s3cret"
    assert "s3cret" not in repr(config) and "s3cret" not in repr(settings)
    qs.connect(config.qdrant_url, data_dir=tmp_path, api_key=config.qdrant_api_key)
    qs.on_server(config.qdrant_url, "clips", api_key=config.qdrant_api_key)
    assert made == [{"url": "https://q.example:6333", "api_key": "s3cret"}] * 2
