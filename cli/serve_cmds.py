"""`retrieval serve`: the FastAPI service under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.errors import exit_on_error

if TYPE_CHECKING:
    from app.settings import Settings


def serve(settings: Settings) -> None:
    import uvicorn

    from app.compose import build_retriever, open_collection
    from app.main import create_app

    # the models are loaded and the store opened here, where a missing model, a device this machine lacks or
    # a store made with another model is one line (in the app's startup it is a traceback); uvicorn listens
    # once the startup is done either way
    retriever = build_retriever(settings)
    collection = open_collection(settings, retriever)
    uvicorn.run(create_app(settings, retriever=retriever, collection=collection), host=settings.host,
                port=settings.port, log_level="info")


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        host: str = typer.Option(None, help="address to listen on (default RETRIEVAL_HOST, 127.0.0.1)"),
        port: int = typer.Option(None, min=1, max=65535, help="port (default RETRIEVAL_PORT, 8000)"),
        data: Path = typer.Option(None, "--data", help="data directory (default RETRIEVAL_DATA_DIR)"),
    ) -> None:
        """Serve the search API and the web page (http://HOST:PORT/, API docs at /docs)."""
        from app.compose import load_settings

        with exit_on_error():  # the command line's options over the environment, validated together
            serve(load_settings(host=host, port=port, data_dir=data))
