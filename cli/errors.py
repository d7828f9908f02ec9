"""Turn the library's named errors, and what the system refuses (a full disk, a read-only folder, a path that
is not there), into a one-line message and exit status 2 at the command line."""

import contextlib
import sqlite3

import typer
from safetensors import SafetensorError

from retrieval.errors import RetrievalError

# what the operating system and the storage libraries raise about the files a command reads and writes
SYSTEM_ERRORS = (OSError, sqlite3.Error, SafetensorError)


@contextlib.contextmanager
def exit_on_error():
    try:
        yield
    except (RetrievalError, *SYSTEM_ERRORS) as e:
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    except UnicodeDecodeError as e:  # a text file read elsewhere than retrieval.text_files
        typer.secho(f"error: a file is not UTF-8 text ({e})", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
