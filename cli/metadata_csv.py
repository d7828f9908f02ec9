"""`retrieval index add --metadata FILE.csv`: the user's metadata of a sample library, one row per file.

The CSV (UTF-8, a header row, comma-separated, cells quoted as usual) has a column `file` and optionally
`description` and `tags`; every other column is a field (its header the key, an identifier; empty cells are
left out). `file` is a path relative to the CSV's own folder, or absolute. `tags` are separated by `;` or `,`
(quote a cell holding commas). Every row is checked against the service's bounds (app/schemas/clips.py
MetadataIn) before anything is indexed; a bad row stops the run, naming its line. A row whose cells are all
empty (as spreadsheets write after the last one) is passed over.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from app.schemas.clips import MetadataIn, tag_list
from index.store.metadata import Metadata
from retrieval.errors import RetrievalError

FILE, DESCRIPTION, TAGS = "file", "description", "tags"


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


def read_metadata_csv(path: Path) -> dict[Path, Metadata]:
    """The CSV's rows by the resolved path of their file (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, strict=True)
            header = list(reader.fieldnames or [])
            if FILE not in header:
                raise MetadataFileError(f"{path}: the first line must name the columns, one of them "
                                        f"'{FILE}' (found {', '.join(header) or 'nothing'})")
            rows: dict[Path, Metadata] = {}
            for row in reader:
                where = f"{path} line {reader.line_num}"
                cells = [*(v for k, v in row.items() if k is not None), *(row.get(None) or [])]
                if not any((cell or "").strip() for cell in cells):
                    continue  # a row of empty cells (a spreadsheet's trailing `,,,`) says nothing
                if None in row or any(v is None for v in row.values()):
                    raise MetadataFileError(f"{where}: not as many cells as the header has columns")
                if not row[FILE].strip():
                    raise MetadataFileError(f"{where}: the '{FILE}' cell is empty")
                file = (path.parent / row[FILE].strip()).resolve()
                if file in rows:
                    raise MetadataFileError(f"{where}: {row[FILE]} has a row already")
                fields = {k: v for k, v in row.items() if k not in (FILE, DESCRIPTION, TAGS) and v.strip()}
                rows[file] = checked({"description": row.get(DESCRIPTION, ""),
                                      "user_tags": tag_list(row.get(TAGS, "")), "fields": fields}, where)
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise MetadataFileError(f"cannot read {path}: {e}") from None
