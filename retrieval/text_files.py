"""Text files the user hands a command (captions, annotations, predictions, file lists, metadata CSVs): read
as UTF-8, and a file that is not said so, naming it, rather than with the codec's bare message."""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from retrieval.errors import RetrievalError


class NotText(RetrievalError):
    """A file read as text holds bytes that are not UTF-8 (another encoding, or not a text file at all)."""


@contextlib.contextmanager
def open_text(path: Path | str, *, encoding: str = "utf-8", newline: str | None = None) -> Iterator[TextIO]:
    """`path` opened for reading as UTF-8 (`encoding` "utf-8-sig" takes a byte-order mark off); bytes met
    while reading that are not UTF-8 raise NotText, naming the file."""
    with open(path, encoding=encoding, newline=newline) as f:
        try:
            yield f
        except UnicodeDecodeError as e:
            raise NotText(f"{path} is not UTF-8 text ({e.reason}): save it as UTF-8, or name the right "
                          "file") from None
