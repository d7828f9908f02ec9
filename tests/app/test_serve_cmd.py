"""`retrieval serve`: the command line's overrides reach uvicorn and the app."""

from pathlib import Path

import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from cli import serve_cmds
from cli.main import app as cli_app


def test_overrides_replace_only_what_was_given(app_settings):
    s = serve_cmds.serve_settings(app_settings, port=9123, data=Path("/srv/sounds"))
    assert (s.host, s.port, s.data_dir) == (app_settings.host, 9123, Path("/srv/sounds"))
    assert s.api_key.get_secret_value() == app_settings.api_key.get_secret_value()
    assert serve_cmds.serve_settings(app_settings) == app_settings


def test_serve_hands_the_app_to_uvicorn(app_settings, monkeypatch):
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    serve_cmds.serve(serve_cmds.serve_settings(app_settings, host="0.0.0.0", port=9123))
    assert isinstance(seen["app"], FastAPI) and (seen["host"], seen["port"]) == ("0.0.0.0", 9123)
    assert seen["app"].state.settings.port == 9123


def test_help_lists_the_options():
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--data"):
        assert option in result.output
