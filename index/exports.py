"""A search's answer as files that go back into the work: CSV and JSON lines of the hits (clips or moments),
an Audacity label track and REAPER regions of their spans.

The CLI writes them from `Hit`s (`retrieval search QUERY --export FORMAT`); the service from a search's JSON
answer sent back to it (`POST /exports/{format}`, what the web page's export buttons download).
Numbers are written rounded from their exact binary value, ties away from zero: seconds to the
microsecond, scores to 1e-6, REAPER's times to the millisecond.
"""

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal

from index.store.records import Hit

COLUMNS = ("rank", "id", "name", "score", "start", "end", "duration")
REAPER_HEADER = ("#", "Name", "Start", "End", "Length")
SECONDS_PLACES = 6
SCORE_PLACES = 6
ONE_LINE = str.maketrans("\t\r\n", "   ")
CSV_LINE = "\r\n"  # RFC 4180's; a field holding a comma, a quote, CR or LF is quoted
FORMULA_STARTS = frozenset("=+-@\t\r")
# a spreadsheet CSV's first character: without it Excel reads the file in the system's code page (`café` as
# `cafÃ©`); Python reads it with encoding="utf-8-sig", which also reads a file without one
BOM = "\ufeff"
# characters JSON leaves as they are that Python's str.splitlines() (and some editors) take for line ends
JSON_LINE_ENDS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True)
class ExportRow:
    """One hit as every format sees it; `start` and `end` are None for a hit without a segment."""

    rank: int
    id: int
    name: str
    score: float
    start: float | None
    end: float | None
    duration: float

    def __post_init__(self) -> None:
        for key in ("score", "start", "end", "duration"):  # -0.0 written as 0
            if (x := getattr(self, key)) is not None:
                object.__setattr__(self, key, x + 0.0)


def rows_of(hits: Iterable[Hit]) -> list[ExportRow]:
    """The hits, best first, as export rows ranked from 1."""
    return [ExportRow(rank, h.record.id, h.record.name, h.score, h.segment.start if h.segment else None,
                      h.segment.end if h.segment else None, h.record.duration)
            for rank, h in enumerate(hits, 1)]


def fixed(x: float, places: int) -> str:
    """`x` to `places` decimals from its exact value, ties away from zero (a value that rounds to zero is
    written 0, not -0)."""
    d = Decimal(x + 0.0).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return str(d.copy_abs() if d.is_zero() else d)


def spreadsheet_text(text: str, *, reversible: bool = False) -> str:
    """A text cell that a spreadsheet shows as text: one starting as a formula does (`=`, `+`, `-`, `@`, a
    tab or CR) gets a leading `'` (OWASP's advice against CSV injection: a clip's name is the uploader's).
    `reversible`: one starting with `'` gets another, so that :func:`from_spreadsheet_text` gives it back."""
    return "'" + text if text[:1] and (text[0] in FORMULA_STARTS or reversible and text[0] == "'") else text


def from_spreadsheet_text(text: str) -> str:
    """The text :func:`spreadsheet_text` was given (`reversible`): its leading `'` taken off before a
    formula's start or another `'`."""
    return text[1:] if text[:1] == "'" and text[1:2] and text[1] in FORMULA_STARTS | {"'"} else text


def _seconds(x: float | None) -> str:
    return "" if x is None else fixed(x, SECONDS_PLACES)


def _label(row: ExportRow) -> str:
    """A span's label: rank and clip name, on one line (a tab, CR or LF in the name becomes a space)."""
    return f"{row.rank} {row.name}".translate(ONE_LINE)


def _spans(rows: Iterable[ExportRow]) -> list[tuple[ExportRow, float, float]]:
    return [(r, r.start, r.end) for r in rows if r.start is not None and r.end is not None]


def to_csv(rows: Iterable[ExportRow]) -> str:
    """A BOM, a header of COLUMNS, then one line per hit (empty start and end without a segment); the names
    as `spreadsheet_text` (reversible) writes them."""
    out = io.StringIO(BOM)
    out.seek(0, io.SEEK_END)
    writer = csv.writer(out, lineterminator=CSV_LINE)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.rank, r.id, spreadsheet_text(r.name, reversible=True),
                         fixed(r.score, SCORE_PLACES), _seconds(r.start), _seconds(r.end),
                         _seconds(r.duration)])
    return out.getvalue()


def to_jsonl(rows: Iterable[ExportRow]) -> str:
    """One JSON object per hit, its keys COLUMNS, its numbers rounded as the CSV's (null start and end
    without a segment); a name's characters that some readers take for a line end are escaped."""
    def rounded(r: ExportRow) -> dict:
        seconds = {k: None if x is None else float(_seconds(x))
                   for k, x in (("start", r.start), ("end", r.end), ("duration", r.duration))}
        return {**asdict(r), "score": float(fixed(r.score, SCORE_PLACES)), **seconds}

    def line(r: ExportRow) -> str:
        text = json.dumps(rounded(r), ensure_ascii=False)
        for end, escaped in JSON_LINE_ENDS.items():  # outside strings JSON has only ASCII
            text = text.replace(end, escaped)
        return text + "\n"

    return "".join(line(r) for r in rows)


def to_audacity(rows: Iterable[ExportRow]) -> str:
    """Audacity's label track (File > Import > Labels): `start<TAB>end<TAB>label` in seconds, a line per
    hit with a span."""
    return "".join(f"{_seconds(s)}\t{_seconds(e)}\t{_label(r)}\n" for r, s, e in _spans(rows))


def millis(seconds: float) -> int:
    """Whole milliseconds, rounded as `fixed` rounds."""
    return int(Decimal(fixed(seconds, 3)) * 1000)


def reaper_time(ms: int) -> str:
    """REAPER's Minutes:Seconds time of `ms` milliseconds, `m:ss.mmm` (`h:mm:ss.mmm` from an hour on)."""
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m}:{s:02d}.{ms:03d}"


def to_reaper(rows: Iterable[ExportRow]) -> str:
    """The Region/Marker Manager's CSV (its Import reads it back): `#,Name,Start,End,Length`, a region
    `R1`, `R2`, ... per hit with a span, times in Minutes:Seconds."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=CSV_LINE)
    writer.writerow(REAPER_HEADER)
    for i, (r, s, e) in enumerate(_spans(rows), 1):
        start, end = millis(s), millis(e)
        writer.writerow([f"R{i}", _label(r), reaper_time(start), reaper_time(end), reaper_time(end - start)])
    return out.getvalue()


WRITERS: dict[str, Callable[[Iterable[ExportRow]], str]] = {
    "csv": to_csv, "jsonl": to_jsonl, "audacity": to_audacity, "reaper": to_reaper}
SPANS_ONLY = frozenset({"audacity", "reaper"})  # formats that write the hits with a span alone
SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl", "audacity": ".txt", "reaper": ".csv"}
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8",
               "audacity": "text/plain; charset=utf-8", "reaper": "text/csv; charset=utf-8"}


def file_name(fmt: str, *, moments: bool) -> str:
    """What a download of an answer in `fmt` is called: `results-csv.csv`, `moments-reaper.csv`, ..."""
    return f"{'moments' if moments else 'results'}-{fmt}{SUFFIXES[fmt]}"


def export(fmt: str, hits: Iterable[Hit]) -> str:
    """The hits in format `fmt` (a key of WRITERS)."""
    return WRITERS[fmt](rows_of(hits))
