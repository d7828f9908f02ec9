"""Entry point of the `retrieval` console script; each command group lives in its own module."""

import logging

import typer

from app.settings import configure_logging
from cli import backup_cmds, core_cmds, index_cmds, models_cmds, scale_cmds, serve_cmds, train_cmds

app = typer.Typer(help="Language-based audio retrieval: index audio, search it with text, train the head.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    configure_logging(logging.DEBUG if verbose else logging.INFO)


core_cmds.register(app)
serve_cmds.register(app)
models_cmds.register(app)
index_cmds.register(app)
scale_cmds.register(app)  # adds to the index group
train_cmds.register(app)
backup_cmds.register(app)  # backup, restore, check

if __name__ == "__main__":  # python -m cli.main, as the retrieval command
    app()
