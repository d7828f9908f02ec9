"""index/exports.py: each format parses as its target reads it, with the hits' values."""

import csv
import io
import json

import pytest

from index.exports import (
    BOM,
    COLUMNS,
    REAPER_HEADER,
    export,
    fixed,
    from_spreadsheet_text,
    reaper_time,
    rows_of,
)
from index.store.records import ClipRecord, Hit, Moment, Tag

NAMES = ("door, slam.wav", 'say "hi"\tnow.flac', "rain on the roof.wav")


def hit(i: int, name: str, start: float | None, end: float | None, score: float) -> Hit:
    record = ClipRecord(name=name, location=f"/audio/{name}", sha256=f"{i:064x}", duration=7300.25,
                        sample_rate=48_000, tags=(Tag("Door", 0.9),), id=10 + i)
    segment = None if start is None or end is None else Moment(start, end, score, 0)
    return Hit(record, score, segment)


def csv_rows(text: str) -> list[dict[str, str]]:
    """The CSV's rows as a spreadsheet reads them: after its BOM, without which Excel takes the system's
    code page for UTF-8."""
    assert text.startswith(BOM + "rank,")
    return list(csv.DictReader(io.StringIO(text.removeprefix(BOM))))


HITS = [hit(1, NAMES[0], 12.5, 20.0, 0.61234567), hit(2, NAMES[1], 3599.9996, 3725.0, -0.03125),
        hit(3, NAMES[2], None, None, 0.1)]


def test_csv_has_the_columns_and_each_hits_values():
    rows = csv_rows(export("csv", HITS))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 3
    for rank, (row, h) in enumerate(zip(rows, HITS, strict=True), 1):
        assert (int(row["rank"]), int(row["id"]), row["name"]) == (rank, h.record.id, h.record.name)
        assert float(row["score"]) == pytest.approx(h.score, abs=1e-6)
        assert float(row["duration"]) == h.record.duration
        if h.segment is None:
            assert row["start"] == row["end"] == ""
        else:
            assert float(row["start"]) == pytest.approx(h.segment.start, abs=1e-6)
            assert float(row["end"]) == pytest.approx(h.segment.end, abs=1e-6)


def test_json_lines_are_one_object_per_hit_rounded_as_the_csv():
    """Rounded as the CSV is, so that the same search exported by the CLI and the service (whose scores may
    differ in a float32's last bit: another process encodes the query) is the same text."""
    lines = export("jsonl", HITS).splitlines()
    objects = [json.loads(line) for line in lines]
    assert [tuple(o) for o in objects] == [COLUMNS] * 3
    assert objects[0] == {"rank": 1, "id": 11, "name": NAMES[0], "score": 0.612346, "start": 12.5,
                          "end": 20.0, "duration": 7300.25}
    rows = csv_rows(export("csv", HITS))
    assert [o["score"] for o in objects] == [float(r["score"]) for r in rows]
    assert [o["start"] for o in objects] == [float(r["start"]) if r["start"] else None for r in rows]
    assert objects[2]["start"] is None and objects[2]["end"] is None


def test_audacity_labels_are_start_end_label_per_span():
    lines = export("audacity", HITS).splitlines()
    assert len(lines) == 2  # the hit without a segment has no span
    parsed = [line.split("\t") for line in lines]
    assert all(len(p) == 3 for p in parsed)
    assert [(float(s), float(e)) for s, e, _ in parsed] == [(12.5, 20.0), (3599.9996, 3725.0)]
    assert parsed[0][2] == "1 door, slam.wav" and parsed[1][2] == '2 say "hi" now.flac'  # a tab is a space


def seconds(reaper: str) -> float:
    """A REAPER Minutes:Seconds time back in seconds."""
    *hm, s = reaper.split(":")
    return sum(int(x) * 60 ** (len(hm) - i) for i, x in enumerate(hm)) + float(s)


def test_reaper_regions_are_its_region_manager_csv():
    rows = list(csv.reader(io.StringIO(export("reaper", HITS))))
    assert tuple(rows[0]) == REAPER_HEADER
    assert [r[0] for r in rows[1:]] == ["R1", "R2"]
    assert rows[1] == ["R1", "1 door, slam.wav", "0:12.500", "0:20.000", "0:07.500"]
    # 3599.9996 s rounds to 1:00:00.000; an hour on, the hours are shown
    assert rows[2][1:] == ['2 say "hi" now.flac', "1:00:00.000", "1:02:05.000", "2:05.000"]
    for r, h in zip(rows[1:], HITS, strict=False):
        assert h.segment is not None
        assert seconds(r[2]) == pytest.approx(h.segment.start, abs=5e-4)
        assert seconds(r[3]) == pytest.approx(h.segment.end, abs=5e-4)
        assert seconds(r[4]) == pytest.approx(seconds(r[3]) - seconds(r[2]), abs=1e-9)


def test_rounding_is_from_the_exact_value_ties_away_from_zero():
    assert fixed(0.03125, 4) == "0.0313" and fixed(-0.03125, 4) == "-0.0313"  # exact binary ties
    assert fixed(2.675, 2) == "2.67"  # 2.675 is 2.67499999... in binary
    assert fixed(-0.0, 3) == "0.000"
    assert reaper_time(59_999) == "0:59.999" and reaper_time(3_600_000) == "1:00:00.000"


def test_a_name_a_spreadsheet_would_run_as_a_formula_is_written_as_text():
    names = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "plain=name.wav", ""]
    hits = [hit(i, name, 1.0, 2.0, 0.5) for i, name in enumerate(names)]
    rows = csv_rows(export("csv", hits))
    assert [r["name"] for r in rows] == ["'=cmd|' /C calc'!A0", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx",
                                         "plain=name.wav", ""]
    assert [from_spreadsheet_text(r["name"]) for r in rows] == names
    assert [json.loads(line)["name"] for line in export("jsonl", hits).splitlines()] == names  # data, as is
    regions = list(csv.reader(io.StringIO(export("reaper", hits))))[1:]
    assert [r[1] for r in regions][:2] == ["1 =cmd|' /C calc'!A0", "2 +1+1"]  # a label starts with its rank


def test_a_value_that_rounds_to_zero_is_never_written_negative():
    hits = [hit(1, "a.wav", -0.0, 1.0, -4e-7)]
    row = csv_rows(export("csv", hits))[0]
    assert (row["score"], row["start"]) == ("0.000000", "0.000000")
    line = export("jsonl", hits)
    assert '"start": 0.0' in line and '"score": 0.0' in line  # rounded, and no negative zero


def test_rows_rank_from_one():
    assert [r.rank for r in rows_of(HITS)] == [1, 2, 3]


def test_csv_names_read_back_as_they_were_even_one_starting_with_a_quote():
    """`-3dB.wav` and `'-3dB.wav` were both written `'-3dB.wav`: a script could not tell the names apart.
    A name starting with `'` gets another, as the metadata CSV's cells do."""
    names = ["-3dB.wav", "'-3dB.wav", "'quoted'.wav", "''.wav"]
    rows = csv_rows(export("csv", [hit(i, name, 1.0, 2.0, 0.5) for i, name in enumerate(names)]))
    assert len({r["name"] for r in rows}) == 4
    assert [from_spreadsheet_text(r["name"]) for r in rows] == names


def test_json_lines_hold_one_hit_a_line_whatever_the_name():
    """U+2028, U+2029 and NEL are valid inside JSON strings, but str.splitlines() (and some editors) end a
    line there: a name holding one split its hit in two. They are escaped; json reads the name back."""
    names = ["para\u2028graph.wav", "next\x85line.wav", "sep\u2029.wav", "plain.wav"]
    text = export("jsonl", [hit(i, name, 1.0, 2.0, 0.5) for i, name in enumerate(names)])
    lines = text.splitlines()
    assert len(lines) == 4 and text.count("\n") == 4
    assert [json.loads(line)["name"] for line in lines] == names
