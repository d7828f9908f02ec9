"""`retrieval serve`: the command line's overrides reach uvicorn and the app."""

from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from app.compose import load_settings
from cli import serve_cmds
from cli.main import app as cli_app


@pytest.fixture
def env(app_settings, monkeypatch):
    """The environment an operator would set for `app_settings`."""
    monkeypatch.setenv("RETRIEVAL_DATA_DIR", str(app_settings.data_dir))
    monkeypatch.setenv("RETRIEVAL_TEXT_MODEL", app_settings.text_model)
    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    monkeypatch.setenv("RETRIEVAL_DEVICE", "cpu")
    monkeypatch.setenv("RETRIEVAL_API_KEY", app_settings.api_key.get_secret_value())
    monkeypatch.setenv("RETRIEVAL_HOST", "127.0.0.2")
    return app_settings


def test_overrides_replace_only_what_was_given(env):
    s = load_settings(host=None, port=9123, data_dir=Path("/srv/sounds"))
    assert (s.host, s.port, s.data_dir) == ("127.0.0.2", 9123, Path("/srv/sounds"))
    assert s.api_key.get_secret_value() == env.api_key.get_secret_value()
    assert load_settings(host=None, port=None, data_dir=None) == load_settings()


def test_serve_hands_the_app_to_uvicorn(env, monkeypatch):
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    serve_cmds.serve(load_settings(host="0.0.0.0", port=9123))
    assert isinstance(seen["app"], FastAPI) and (seen["host"], seen["port"]) == ("0.0.0.0", 9123)
    assert seen["app"].state.settings.port == 9123


def test_the_command_line_options_reach_uvicorn_and_the_app(env, monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    result = CliRunner().invoke(cli_app, ["serve", "--port", "9124", "--data", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"]) == ("127.0.0.2", 9124)
    settings = seen["app"].state.settings
    assert settings.data_dir == tmp_path / "d" and settings.port == 9124
    assert settings.api_key.get_secret_value() == env.api_key.get_secret_value()


def test_contradicting_settings_stop_serve_with_a_message(env, monkeypatch):
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("served a contradicting configuration"))
    monkeypatch.setenv("RETRIEVAL_PASST_PRECISION", "fp16")
    result = CliRunner().invoke(cli_app, ["serve"])
    assert result.exit_code == 2
    assert "RETRIEVAL_PASST_PRECISION=fp16" in result.output and "RETRIEVAL_DEVICE=cpu" in result.output


def test_help_lists_the_options():
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--data"):
        assert option in result.output


def test_a_store_made_with_another_model_stops_serve_with_a_message(env, monkeypatch):
    """The store is opened before uvicorn listens: a mismatch is one line and exit 2, no traceback."""
    from dataclasses import replace

    import numpy as np

    from app.compose import build_retriever, store_config
    from index.store.records import NewClip
    from index.stores import open_store

    settings = load_settings()
    spec = replace(build_retriever(settings, with_audio=False).spec, head="0" * 64, lam=0.5)
    with open_store(store_config(settings), spec) as store:  # a store made with another head
        vector = np.eye(1, spec.dim, dtype=np.float32)
        store.add_many([NewClip(name="a.wav", location="/a.wav", sha256="1" * 64, duration=1.0,
                                sample_rate=32_000, tags=())], vector, np.zeros((1, 527), np.float32))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("served a store of another model"))
    result = CliRunner().invoke(cli_app, ["serve"])
    assert result.exit_code == 2, result.output
    assert "made with another model" in result.output and "head" in result.output
    assert "Traceback" not in result.output


def test_a_port_in_use_is_one_line_before_the_models_load(env, monkeypatch):
    """uvicorn said it after the models loaded, and exited 3."""
    import socket

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("served on a port in use"))
    monkeypatch.setattr("app.compose.build_retriever", lambda *a, **k: pytest.fail("loaded the models"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli_app, ["serve", "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: cannot listen on 127.0.0.1:{port}: Address already in use "
                                     "(RETRIEVAL_HOST, RETRIEVAL_PORT or --host, --port)")


def test_an_upload_queue_of_a_newer_version_is_one_line_before_the_models_load(env, monkeypatch):
    """The app opened the queue at its start: a 70-line traceback and exit 3, after the models loaded."""
    import sqlite3

    from index.ingest.queue import JobQueue
    from index.layout import QUEUE_FILE
    from tests.app.test_browser import free_port

    queue = env.data_dir / QUEUE_FILE
    queue.parent.mkdir(parents=True, exist_ok=True)
    JobQueue(queue).close()
    with sqlite3.connect(queue) as con:
        con.execute("PRAGMA user_version = 50")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("served a queue it cannot read"))
    monkeypatch.setattr("app.compose.build_retriever", lambda *a, **k: pytest.fail("loaded the models"))
    result = CliRunner().invoke(cli_app, ["serve", "--host", "127.0.0.1", "--port", str(free_port())])
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {queue} was written by a newer version of retrieval "
                                            "(format 50; this one knows up to 2)")


def test_a_served_process_logs_every_line_with_its_time_on_stderr_and_stops_on_sigterm(env, tmp_path):
    """The access log went to stdout without a time, beside the service's own timed lines on stderr: one
    shape now, on stderr. SIGTERM stops it cleanly, ending by that signal (143), as documented."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from tests.reliability.server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port",
                             str(port)], env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.5)
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/no-such-page", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert out == "" and proc.returncode == -signal.SIGTERM, (proc.returncode, out, err[-2000:])
    timed = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO uvicorn\.access: 127\.0\.0\.1:\d+ - "
    assert re.search(timed + r'"GET /no-such-page HTTP/1\.1" 404', err), err[-2000:]
    assert re.search(r"\d\d:\d\d:\d\d,\d{3} INFO uvicorn\.error: Application shutdown complete", err)
