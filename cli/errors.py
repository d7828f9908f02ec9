"""Turn the library's named errors into a one-line message and exit status 2 at the command line."""

import contextlib

import typer

from retrieval.errors import RetrievalError


@contextlib.contextmanager
def exit_on_error():
    try:
        yield
    except RetrievalError as e:
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
