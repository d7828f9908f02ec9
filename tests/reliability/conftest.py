"""The live server of the reliability tests: ONE for the whole session, because each start loads a random
PaSST and MiniLM (tens of seconds on a busy machine). Every test states what it needs relative to the
collection as it finds it (snapshots before and after); the crash test restarts it on the same data dir."""

from collections.abc import Iterator

import pytest

from tests.reliability.server import LiveServer, server_env

API_KEY = "rel-key-5b1e9c"  # distinctive, so a leak into the log cannot be a coincidence
MAX_UPLOAD_BYTES = 256 * 1024
MAX_DURATION_S = 3.0


@pytest.fixture(scope="session")
def server(tmp_path_factory, minilm_path) -> Iterator[LiveServer]:
    """The API key set, no CORS origins, small size and duration limits."""
    workdir = tmp_path_factory.mktemp("server")
    env = server_env(data_dir=workdir / "data", text_model=minilm_path, api_key=API_KEY,
                     max_upload_bytes=MAX_UPLOAD_BYTES, max_duration_s=MAX_DURATION_S,
                     max_example_duration_s=MAX_DURATION_S)  # an upload's and a query example's alike
    live = LiveServer(env=env, workdir=workdir).start()
    yield live
    live.stop()
