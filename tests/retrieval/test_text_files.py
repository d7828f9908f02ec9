"""The CSVs a user hands a command (the metadata CSV of `index add --metadata`, Clotho's and AudioCaps'
captions, a submission's predictions) read by one reader: UTF-8 (a byte-order mark taken off), strict
quoting, the file's own line numbers in every message, a row of more cells than the header refused alike."""

import re

import pytest

from cli.metadata_csv import MetadataFileError, read_metadata_csv
from retrieval.errors import RetrievalError
from retrieval.text_files import NotText, read_csv_rows
from training.datasets import CLOTHO_HEADER, DatasetError, read_audiocaps, read_clotho_captions

HEADER = ",".join(CLOTHO_HEADER) + "\n"


class Bad(RetrievalError):
    pass


def read(path, **kw):
    return read_csv_rows(path, columns=kw.pop("columns", ["a"]), what="table", error=Bad, **kw)


def test_rows_carry_the_line_they_start_on(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('\ufeffa,b\n\n1,"two\nlines"\n,\n3,x\n', encoding="utf-8")
    rows = read(path)
    assert rows == [{"a": "1", "b": "two\nlines"}, {"a": "3", "b": "x"}]  # blank and empty rows passed over
    assert [r.line for r in rows] == [3, 6]


def test_a_short_row_reads_its_missing_cells_as_empty_unless_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1\n", encoding="utf-8")
    assert read(path) == [{"a": "1", "b": "", "c": ""}]
    with pytest.raises(Bad, match=re.escape(f"{path}, line 2: 1 cell for the 3 columns of the header")):
        read(path, short_rows=False)


@pytest.mark.parametrize(("text", "message"), [
    ("", r"t\.csv is empty: its first line must name the columns \['a'\]"),
    ("b,c\n1,2\n", r"t\.csv, line 1: the header lacks the columns \['a'\] \(it names \['b', 'c'\]\)"),
    ('a,b\n1,2\n3,"unclosed\n4,5\n', r"t\.csv, line 3: cannot read the row \(unexpected end of data\)"),
    ('a,b\n1,"x"y\n', r"t\.csv, line 2: cannot read the row \(',' expected after '\"'\)"),
])
def test_a_bad_header_or_quoting_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Bad, match=message):
        read(path)


def test_a_file_not_there_is_named_by_what_it_is(tmp_path):
    with pytest.raises(Bad, match=r"table not found: .*gone\.csv"):
        read(tmp_path / "gone.csv")
    with pytest.raises(Bad, match=r"cannot read table .*: Is a directory"):
        read(tmp_path)


def test_latin1_metadata_and_captions_csvs_both_say_save_it_as_utf8(tmp_path):
    """The metadata CSV said "cannot read ...: 'utf-8' codec can't decode byte 0xe9 ..." where every other
    text file says what to do."""
    (tmp_path / "meta.csv").write_bytes("file,description\na.wav,caf\xe9 noise\n".encode("latin-1"))
    (tmp_path / "captions.csv").write_bytes((HEADER + "a.wav,caf\xe9,b,c,d,e\n").encode("latin-1"))
    for read_it in (lambda: read_metadata_csv(tmp_path / "meta.csv"),
                    lambda: read_clotho_captions(tmp_path / "captions.csv")):
        with pytest.raises(NotText, match=r"\.csv is not UTF-8 text \(invalid continuation byte\): save it "
                                          "as UTF-8"):
            read_it()


def test_an_error_after_a_caption_of_two_lines_names_the_files_line(tmp_path):
    """Rows were counted, not lines: a quoted caption holding a line break moved every later error's line."""
    path = tmp_path / "captions.csv"
    path.write_text(HEADER + 'a.wav,"rain\non a roof",b,c,d,e\nb.wav,a,b,c,d,\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 4: a file name and five non-empty")):
        read_clotho_captions(path)
    (tmp_path / "val.csv").write_text('audiocap_id,youtube_id,start_time,caption\n1,abc,0,"dogs\nbark"\n'
                                      "2,,0,rain\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"val\.csv, line 4: youtube_id and caption are needed"):
        read_audiocaps(tmp_path, "val")


def test_a_row_of_more_cells_than_the_header_is_refused_alike_in_both(tmp_path):
    """An unquoted comma: the metadata CSV and the captions said so in words of their own."""
    (tmp_path / "meta.csv").write_text('file,description\na.wav,"rain\non a roof"\n'
                                       "b.wav,rain, then thunder\n", encoding="utf-8")
    (tmp_path / "captions.csv").write_text(HEADER + 'a.wav,"rain\non a roof",b,c,d,e\n'
                                           "b.wav,a,b,c,d,rain, then thunder\n", encoding="utf-8")
    messages = []
    readers = ((lambda: read_metadata_csv(tmp_path / "meta.csv"), MetadataFileError, 2),
               (lambda: read_clotho_captions(tmp_path / "captions.csv"), DatasetError, 6))
    for read_it, error, columns in readers:
        with pytest.raises(error) as e:
            read_it()
        assert f", line 4: {columns + 1} cells for the {columns} columns of the header (a comma in a cell " \
               'needs the cell in double quotes: "a, b")' in str(e.value)
        messages.append(re.sub(r"\d+", "N", str(e.value).split(", line 4: ")[1]))
    assert messages[0] == messages[1]  # the same words
