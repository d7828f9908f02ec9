"""The `--progress/--no-progress` option of the long commands: a bar by default only where someone watches
it (standard error is a terminal); in a log, a pipe or cron's mail it would be thousands of redrawn lines."""

import sys

import typer


def shown(given: bool | None) -> bool:
    """What the user said, else whether standard error is a terminal."""
    return sys.stderr.isatty() if given is None else given


def progress_option(what: str = "a progress bar") -> bool:
    return typer.Option(None, "--progress/--no-progress", callback=shown,
                        help=f"show {what} (default: when standard error is a terminal)")
