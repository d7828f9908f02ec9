"""`retrieval serve`: the FastAPI service under uvicorn."""

from pathlib import Path

import typer

from cli.errors import exit_on_error
from retrieval.settings import Settings


def serve_settings(base: Settings, *, host: str | None = None, port: int | None = None,
                   data: Path | None = None) -> Settings:
    """The configured settings with the command line's overrides on top."""
    update = {k: v for k, v in {"host": host, "port": port, "data_dir": data}.items() if v is not None}
    return base.model_copy(update=update)


def serve(settings: Settings) -> None:
    import uvicorn

    from app.main import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        host: str = typer.Option(None, help="address to listen on (default RETRIEVAL_HOST, 127.0.0.1)"),
        port: int = typer.Option(None, min=1, max=65535, help="port (default RETRIEVAL_PORT, 8000)"),
        data: Path = typer.Option(None, "--data", help="data directory (default RETRIEVAL_DATA_DIR)"),
    ) -> None:
        """Serve the search API and the web page (http://HOST:PORT/, API docs at /docs)."""
        from retrieval.settings import get_settings

        with exit_on_error():
            serve(serve_settings(get_settings(), host=host, port=port, data=data))
