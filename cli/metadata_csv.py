"""`retrieval index add --metadata FILE.csv`: the user's metadata of a sample library, one row per file; and
`retrieval index export-metadata FILE.csv`, the collection's metadata written in the same shape.

The CSV (UTF-8, a header row, comma-separated, cells quoted as usual) has a column `file` and optionally
`description` and `tags` (in any case); every other column is a field (its header the key, an identifier;
empty cells are left out). `file` is a path relative to the CSV's own folder, or absolute. `tags` are
separated by `;` or `,` (quote a cell holding commas). Every row is checked against the service's bounds
(app/schemas/clips.py MetadataIn) before anything is indexed; a bad row stops the run, naming the file's line
it starts on. A row whose cells are all empty (as spreadsheets write after the last one) is passed over. It is
read as every CSV a user hands a command is (retrieval/text_files.py `read_csv_rows`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pydantic import ValidationError

from app.schemas.clips import MetadataIn, tag_list
from index.exports import BOM, from_spreadsheet_text, spreadsheet_text
from index.store.metadata import Metadata
from index.store.records import ClipRecord

if TYPE_CHECKING:
    from index.collection import Collection
from retrieval.durable import atomic_path
from retrieval.errors import RetrievalError
from retrieval.text_files import read_csv_rows

FILE, DESCRIPTION, TAGS = "file", "description", "tags"
FIXED = (FILE, DESCRIPTION, TAGS)  # the columns that are no field
STDOUT = "-"  # export-metadata's name for standard output


class MetadataFileError(RetrievalError):
    """The metadata CSV cannot be used; the message names the line and the column."""


@dataclass(frozen=True)
class LibraryMetadata:
    """What `index add` gives each file: the options' metadata, and the CSV row's where it has one."""

    common: Metadata
    rows: dict[Path, Metadata]  # by resolved path

    def __call__(self, path: Path) -> Metadata:
        """The row's description (else the options'), both sets of tags, both sets of fields (the row's
        value where both have a key)."""
        row = self.rows.get(path, Metadata())
        return Metadata.of(description=row.description or self.common.description,
                           tags=(*self.common.tags, *row.tags),
                           fields={**self.common.field_dict, **row.field_dict})


def checked(raw: dict, where: str) -> Metadata:
    """Metadata within the service's bounds, or MetadataFileError naming `where` and the field."""
    try:
        return MetadataIn.model_validate(raw).applied_to(Metadata())
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'row'}: {err['msg']}" for err in e.errors())
        raise MetadataFileError(f"{where}: {problems}") from None


def _column(header: str) -> str:
    """`File`, `Description`, `Tags` as spreadsheet users type them are the columns, not fields."""
    return header.lower() if header.lower() in FIXED else header


def read_metadata_csv(path: Path) -> dict[Path, Metadata]:
    """The CSV's rows by the resolved path of their file (see the module docstring), read by the users' CSV
    reader (retrieval/text_files.py `read_csv_rows`: a file not UTF-8 is NotText, a row of other than the
    header's number of cells is refused)."""
    path = Path(path)
    rows: dict[Path, Metadata] = {}
    for row in read_csv_rows(path, columns=[FILE], what="metadata CSV", error=MetadataFileError,
                             rename=_column, short_rows=False):
        where = f"{path}, line {row.line}"
        cells = {k: from_spreadsheet_text(v) for k, v in row.items()}
        if not cells[FILE].strip():
            raise MetadataFileError(f"{where}: the '{FILE}' cell is empty")
        file = (path.parent / cells[FILE].strip()).resolve()
        if file in rows:
            raise MetadataFileError(f"{where}: {cells[FILE]} has a row already")
        fields = {k: v for k, v in cells.items() if k not in FIXED and v.strip()}
        rows[file] = checked({"description": cells.get(DESCRIPTION, ""),
                              "user_tags": tag_list(cells.get(TAGS, "")), "fields": fields}, where)
    return rows


@dataclass
class ExportReport:
    rows: int = 0
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (file, field key) a column cannot carry


def _write_rows(f: TextIO, pages: Callable[[], Iterator[list[ClipRecord]]],
                audio_path: Callable[[ClipRecord], Path], keys: list[str], folder: Path | None,
                report: ExportReport) -> None:
    """The header and a row per clip into `f`, the files relative to `folder` when under it (None: every
    file absolute)."""
    f.write(BOM)  # a spreadsheet then reads it as UTF-8
    out = csv.writer(f)
    out.writerow([*FIXED, *keys])
    for records in pages():
        for r in records:
            file = _relative(audio_path(r), folder)
            fields = r.meta.field_dict
            report.left_out.extend((file, k) for k in FIXED if k in fields)
            cells = [file, r.meta.description, "; ".join(r.meta.tags), *(fields.get(k, "") for k in keys)]
            out.writerow([spreadsheet_text(c, reversible=True) for c in cells])
            report.rows += 1


def write_metadata_csv(pages: Callable[[], Iterator[list[ClipRecord]]],
                       audio_path: Callable[[ClipRecord], Path], path: Path | str) -> ExportReport:
    """Every clip of `pages()` (called twice: once for the fields' keys, once for the rows) as a row of the
    CSV `index add --metadata` reads: its file (`audio_path(record)`: relative to the CSV's folder when
    under it, else absolute), its description, its tags (`; `) and a column per field key; written whole or
    not at all. A field named as one of the fixed columns cannot be a column of its own: left out, listed.
    A cell a spreadsheet would take for a formula, or starting with `'`, gets a leading `'` (taken off again
    when the CSV is read); the text starts with a BOM, as a search's CSV export does. `path` `-` is
    standard output, in UTF-8 whatever the locale, every file absolute: where the shell puts the CSV,
    whose folder its relative paths would be read from, is not known here."""
    keys = sorted({k for records in pages() for r in records for k, _ in r.meta.fields} - set(FIXED))
    report = ExportReport()
    if str(path) == STDOUT:
        with utf8_stdout() as f:
            _write_rows(f, pages, audio_path, keys, None, report)
        return report
    path = Path(path)
    folder = path.absolute().parent.resolve()  # `..` and links taken out, as the files' own paths are
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        _write_rows(f, pages, audio_path, keys, folder, report)
    return report


@contextlib.contextmanager
def utf8_stdout() -> Iterator[TextIO]:
    """Standard output as UTF-8 text, as `--metadata` reads a CSV: through sys.stdout's own encoding (the
    locale's, or PYTHONIOENCODING's) an ASCII one stopped the CSV at its first accented row, half written.
    Written straight through to its bytes, then detached, not closed, so sys.stdout stays usable."""
    sys.stdout.flush()  # what was written before comes first
    if getattr(sys.stdout, "buffer", None) is None:  # a text-only stream (an IDE's console): as it is
        yield sys.stdout
        return
    f = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
    try:
        yield f
    finally:
        f.flush()
        f.detach()


def _relative(file: Path, folder: Path | None) -> str:
    """`file` as the CSV names it: relative to the CSV's folder when under it, else (or with no folder)
    absolute."""
    file = file.resolve()
    return os.path.relpath(file, folder) if folder and file.is_relative_to(folder) else str(file)


def record_pages(ids: Iterable[int], records: Callable[[list[int]], dict[int, ClipRecord]],
                 page: int = 1000) -> Iterator[list[ClipRecord]]:
    """The records of `ids`, `page` at a time, in the ids' order (those removed meanwhile left out)."""
    ids = list(ids)
    for i in range(0, len(ids), page):
        chunk = ids[i:i + page]
        got = records(chunk)
        yield [got[j] for j in chunk if j in got]


def give_uploads(collection: Collection, metadata: LibraryMetadata,
                 found: set[Path]) -> tuple[set[Path], int]:
    """The CSV's rows that name an upload's stored copy in the data directory (as `export-metadata` writes
    an uploaded clip's row) and no file the run found: their metadata given to that clip as `index add`
    gives it to a file indexed already. The rows' paths, and how many clips changed."""
    audio = collection.audio_dir.resolve()
    rows, changed = set(), 0
    for path in metadata.rows:
        if path in found or path.parent != audio:
            continue
        record = collection.store.get_by_sha256(path.stem)
        if record is None or not record.stored_copy or collection.audio_path(record).resolve() != path:
            continue
        rows.add(path)
        changed += collection.give_metadata(record.id, metadata(path)) not in (record, None)
    return rows, changed
