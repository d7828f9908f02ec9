"""`retrieval serve`: the FastAPI service under uvicorn."""

from __future__ import annotations

import socket
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
    from index.ingest.jobs import SCHEMA_VERSION
    from index.layout import QUEUE_FILE
    from index.sqlite_conn import refuse_newer

    # the address is tried, the queue's format read, the models loaded and the store opened here, where a port
    # in use, a queue or store of a newer version, a missing model, a device this machine lacks or a store
    # made with another model is one line (from uvicorn it is exit 3 after the models load; in the app's
    # startup a traceback); uvicorn listens once they are done
    check_address(settings.host, settings.port)
    refuse_newer(Path(settings.data_dir) / QUEUE_FILE, SCHEMA_VERSION)  # the app opens the queue at its start
    retriever = build_retriever(settings)
    collection = open_collection(settings, retriever)
    # log_config=None: uvicorn's lines (its access log too) go to the root logger, on standard error with a
    # time, as the service's own and every command's do (cli/main.py)
    uvicorn.run(create_app(settings, retriever=retriever, collection=collection), host=settings.host,
                port=settings.port, log_level="info", log_config=None)


def check_address(host: str, port: int) -> None:
    """OSError naming the address unless this process could listen on it now (nothing is left bound)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e} (RETRIEVAL_HOST, RETRIEVAL_PORT or "
                      "--host, --port)") from None


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
