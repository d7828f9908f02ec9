"""Text files the user hands a command (captions, annotations, predictions, file lists, metadata CSVs): read
as UTF-8, and a file that is not said so, naming it, rather than with the codec's bare message. The CSVs among
them (the metadata CSV of `index add --metadata`, Clotho's and AudioCaps' captions, a submission's
predictions) are read by `read_csv_rows` alone, whose messages name the file's own lines."""

import contextlib
import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class CsvRow(dict[str, str]):
    """A CSV row's cells by column, and `line`: the line of the file it starts on (a quoted cell may hold
    line breaks, so a file's rows and its lines part ways)."""

    line: int

    def __init__(self, cells: Iterable[tuple[str, str]], line: int):
        super().__init__(cells)
        self.line = line


def read_csv_rows(path: Path | str, *, columns: Sequence[str], what: str, error: type[RetrievalError],
                  rename: Callable[[str], str] = str, short_rows: bool = True) -> list[CsvRow]:
    """The rows of a user's CSV: UTF-8 (NotText if not; a byte-order mark taken off), comma-separated, cells
    quoted as usual and read strictly (a quote left open would swallow the rest of the file into one cell).
    Its first line names the columns (each header cell through `rename`), `columns` among them. A row whose
    cells are all empty (a blank line, a spreadsheet's `,,,` after the last row) is passed over. A row of
    more cells than the header is refused (an unquoted comma: its cells would be dropped or shifted), and one
    of fewer too unless `short_rows` (its missing cells then read as empty). Every problem raises `error`
    naming the file and the line the row starts on; a file not there, "`what` not found"."""
    try:
        with open_text(path, newline="", encoding="utf-8-sig") as f:
            return _rows(path, csv.reader(f, strict=True), columns=columns, error=error, rename=rename,
                         short_rows=short_rows)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None


def _rows(path: Path | str, reader, *, columns: Sequence[str], error: type[RetrievalError],
          rename: Callable[[str], str], short_rows: bool) -> list[CsvRow]:
    header: list[str] | None = None
    rows: list[CsvRow] = []
    end = 0  # the line the last row read ends on
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            where = f"{path}, line {start}"
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [rename(cell) for cell in cells]
                if missing := [c for c in columns if c not in header]:
                    raise error(f"{where}: the header lacks the columns {missing} (it names {header})")
                continue
            if len(cells) > len(header) or (len(cells) < len(header) and not short_rows):
                hint = (' (a comma in a cell needs the cell in double quotes: "a, b")'
                        if len(cells) > len(header) else "")
                raise error(f"{where}: {len(cells)} cell{'s' * (len(cells) != 1)} for the {len(header)} "
                            f"columns of the header{hint}")
            rows.append(CsvRow(zip(header, [*cells, *[""] * (len(header) - len(cells))], strict=True), start))
    except csv.Error as e:
        raise error(f"{path}, line {end + 1}: cannot read the row ({e})") from None
    if header is None:
        raise error(f"{path} is empty: its first line must name the columns {list(columns)}")
    return rows
