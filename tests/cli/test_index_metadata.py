"""`retrieval index add` with the user's metadata: the options, the CSV of a sample library (read and checked
before anything is indexed), and files already indexed taking the metadata given."""

from pathlib import Path

import pytest

from cli.metadata_csv import LibraryMetadata, MetadataFileError, read_metadata_csv
from index.faiss.store import FaissStore
from index.store.metadata import Metadata
from retrieval.model_spec import ModelSpec
from tests.audio_fixtures import noise, sine, write
from tests.index.test_cli import cli  # noqa: F401  (the fixture)


def write_csv(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_gives_each_file_its_description_tags_and_fields(tmp_path):
    (tmp_path / "lib" / "sub").mkdir(parents=True)
    csv = write_csv(tmp_path / "lib" / "meta.csv", "\ufefffile,description,tags,pack,bpm\n"
                    "Kick_808.wav,Deep kick,kick; 808,Drums Vol 1,\n"
                    'sub/snare.wav,,"snare, Rim,snare",Drums Vol 1,120\n'
                    f"{tmp_path / 'elsewhere.wav'},far away,,,\n"
                    ",,,,\n,\n")  # a spreadsheet's empty rows after the last: passed over
    rows = read_metadata_csv(csv)
    assert rows == {
        (tmp_path / "lib" / "Kick_808.wav").resolve(): Metadata("Deep kick", ("kick", "808"),
                                                                (("pack", "Drums Vol 1"),)),
        (tmp_path / "lib" / "sub" / "snare.wav").resolve():
            Metadata("", ("snare", "rim"), (("bpm", "120"), ("pack", "Drums Vol 1"))),
        (tmp_path / "elsewhere.wav").resolve(): Metadata("far away", (), ()),
    }


def test_the_options_and_a_row_combine():
    x, y = Path("/x.wav"), Path("/y.wav")
    common = Metadata.of(description="default", tags=["drums"], fields={"pack": "A", "kit": "1"})
    meta = LibraryMetadata(common, {x: Metadata.of(tags=["kick"], fields={"pack": "B"})})
    assert meta(x) == Metadata.of(description="default", tags=["drums", "kick"],
                                  fields={"pack": "B", "kit": "1"})
    assert meta(y) == common


@pytest.mark.parametrize(("text", "message"), [
    ("name,description\na.wav,x\n", r"line 1: the header lacks the columns \['file'\] \(it names \['name', "),
    ("file,tags\na.wav,ok\na.wav,again\n", "line 3: a.wav has a row already"),
    ("file,tags\n,kick\n", "line 2: the 'file' cell is empty"),
    ("file,tags\na.wav,kick,extra\n", "line 2: 3 cells for the 2 columns of the header .*quotes"),
    ("file,tags\na.wav\n", "line 2: 1 cell for the 2 columns of the header$"),
    ("file,Sample Rate\na.wav,44100\n", "line 2: fields.Sample Rate"),
    ("file,tags\na.wav," + "x" * 65 + "\n", "line 2: user_tags.0"),
    ("file,description\na.wav," + "x" * 2001 + "\n", "line 2: description"),
    ('file,description\na.wav,"unclosed\n', r"line 2: cannot read the row \(unexpected end of data\)"),
    ("", r"m\.csv is empty: its first line must name the columns \['file'\]"),
])
def test_a_bad_csv_is_refused_naming_the_line(tmp_path, text, message):
    with pytest.raises(MetadataFileError, match=message):
        read_metadata_csv(write_csv(tmp_path / "m.csv", text))


def records(data_dir) -> dict[str, Metadata]:
    with FaissStore(data_dir, ModelSpec(), check=False) as store:
        return {r.name: r.meta for r in store.list(limit=100)}


def test_index_add_with_metadata_stores_new_files_with_it_and_updates_indexed_ones(cli, tmp_path):  # noqa: F811
    lib = tmp_path / "lib"
    lib.mkdir()
    write(lib / "Kick_808.wav", sine(80.0, seconds=0.3))
    out = cli("index", "add", str(lib), "--no-progress", "--tags", "drums", "--fields", '{"pack": "A"}')
    assert out.exit_code == 0, out.output
    assert records(tmp_path / "data") == {"Kick_808.wav": Metadata.of(tags=["drums"], fields={"pack": "A"})}

    write(lib / "hiss.wav", noise(seconds=0.3))
    csv = write_csv(lib / "meta.csv", "file,description,tags,bpm\nKick_808.wav,deep kick,kick,120\n"
                    "hiss.wav,tape hiss,noise,\nmissing.wav,gone,,\n")
    out = cli("index", "add", str(lib), "--no-progress", "--metadata", str(csv), "--tags", "library")
    assert out.exit_code == 0, out.output
    assert "added 1, skipped 1 already indexed, failed 0" in out.stdout
    assert "gave 1 of the clips already indexed their new metadata" in out.stdout
    assert "1 row of" in out.stderr and "missing.wav" in out.stderr
    assert records(tmp_path / "data") == {
        "Kick_808.wav": Metadata.of(description="deep kick", tags=["library", "kick", "drums"],
                                    fields={"pack": "A", "bpm": "120"}),  # laid over what it held
        "hiss.wav": Metadata.of(description="tape hiss", tags=["library", "noise"])}

    bad = write_csv(lib / "bad.csv", "file,tags\nhiss.wav,a;b;" + "x" * 65 + "\n")
    before = records(tmp_path / "data")
    for args in (["--metadata", str(bad)], ["--fields", "not json"], ["--fields", '{"pack": 1}'],
                 ["--tags", "y" * 65]):
        out = cli("index", "add", str(lib), "--no-progress", *args)
        assert out.exit_code == 2 and "error: " in out.stderr, args
    assert records(tmp_path / "data") == before  # refused before anything was indexed or changed


def test_copies_of_one_sound_are_one_clip_with_its_own_files_metadata_and_are_said(cli, tmp_path):  # noqa: F811
    """Two files of the same bytes are one clip, of the first; the copy's CSV row is not laid over it (it
    overwrote the description and joined the tags), and the run names the copy and its clip."""
    lib = tmp_path / "lib"
    lib.mkdir()
    first = write(lib / "x1.wav", sine(523.0, seconds=0.3))
    (lib / "x2.wav").write_bytes(first.read_bytes())
    csv = write_csv(lib / "m.csv", "file,description,tags\nx1.wav,first take,one\nx2.wav,second take,two\n")
    for _ in range(2):  # new, then both indexed: the same either way
        out = cli("index", "add", str(lib), "--no-progress", "--metadata", str(csv))
        assert out.exit_code == 0, out.output
        assert records(tmp_path / "data") == {"x1.wav": Metadata.of(description="first take", tags=["one"])}
        assert "1 file is a copy of clips indexed from other files" in out.stdout
        assert f"{lib / 'x2.wav'} = clip 1 ({lib / 'x1.wav'})" in out.stdout
        assert "gave" not in out.stdout


def test_the_report_says_how_many_clips_followed_their_moved_or_retagged_files(capsys):
    from cli.index_cmds import _print_report
    from index.ingest.builder import BuildReport

    _print_report(BuildReport(skipped=3, moved=1, retagged=2, seconds=1.0))
    out = capsys.readouterr().out
    assert "moved 1 clip to where its file is now" in out
    assert "kept 2 clips of files retagged since they were indexed" in out
    _print_report(BuildReport(skipped=2, moved=2, seconds=1.0))
    out = capsys.readouterr().out
    assert "moved 2 clips to where their files are now" in out and "retagged" not in out
    _print_report(BuildReport(moved=2, retagged=2, retagged_moved=2, seconds=1.0))  # each clip said once
    out = capsys.readouterr().out
    assert "moved" not in out.split("kept")[0] and "kept 2 clips of files retagged" in out
    assert "2 of them moved or renamed too" in out


def test_a_result_is_one_line_and_a_short_moment_keeps_its_span():
    from cli.index_cmds import format_hit, format_moment
    from index.store.records import ClipRecord, Hit
    from retrieval.moments import Moment

    record = ClipRecord(id=7, name="take\n2\tb.wav", location="/x", sha256="1" * 64, duration=1.0,
                        sample_rate=32_000, tags=())
    line = format_moment(1, Hit(record, 0.5, Moment(0.25, 0.26, 0.5, 0)))
    assert line == "  1  take\\n2\\tb.wav  (id 7)  0.250-0.260 s  0.5000"
    assert "at 2.5-12.5 s" in format_hit(1, Hit(record, 0.5, Moment(2.5, 12.5, 0.5, 1)))


def test_export_metadata_writes_what_index_add_reads_back(cli, tmp_path, monkeypatch):  # noqa: F811
    """`index export-metadata` writes every clip's file, description, tags and fields as the CSV `index add
    --metadata` reads: files under the CSV's folder relative, others absolute; a cell starting as a formula
    escaped with `'` and read back as it was; a new collection given the CSV holds the same metadata."""
    lib, far = tmp_path / "lib", tmp_path / "far"
    lib.mkdir()
    far.mkdir()
    write(lib / "kick.wav", sine(80.0, seconds=0.3))
    write(lib / "hiss, tape.wav", noise(seconds=0.3))
    write(far / "tone.wav", sine(440.0, seconds=0.3))
    given = write_csv(tmp_path / "given.csv",
                      'file,description,tags,pack,bpm\nlib/kick.wav,"=SUM(A1) ""quoted""\nsecond line",'
                      'kick; -6db,Drums Vol 1,120\n"lib/hiss, tape.wav",tape hiss,,@pack,\n'
                      'far/tone.wav,,,,\n')
    out = cli("index", "add", str(lib), str(far), "--no-progress", "--metadata", str(given))
    assert out.exit_code == 0, out.output
    held = records(tmp_path / "data")
    kick = Metadata.of(description='=SUM(A1) "quoted"\nsecond line', tags=["kick", "-6db"],
                       fields={"pack": "Drums Vol 1", "bpm": "120"})
    assert held["kick.wav"] == kick

    exported = lib / "catalogue.csv"
    out = cli("index", "export-metadata", str(exported))
    assert out.exit_code == 0, out.output
    assert "wrote the metadata of 3 clips" in out.stdout
    text = exported.read_bytes().decode("utf-8")
    assert text.startswith("\ufefffile,description,tags,bpm,pack\r\n")  # a BOM: Excel reads UTF-8
    assert "kick.wav,\"'=SUM(A1) \"\"quoted\"\"\nsecond line\",kick; -6db,120,Drums Vol 1\r\n" in text
    assert f"{far / 'tone.wav'},,,,\r\n" in text and '"hiss, tape.wav",tape hiss,,,\'@pack\r\n' in text
    assert read_metadata_csv(exported) == {(lib / "kick.wav").resolve(): held["kick.wav"],
                                           (lib / "hiss, tape.wav").resolve(): held["hiss, tape.wav"],
                                           (far / "tone.wav").resolve(): Metadata()}

    other = tmp_path / "other"
    out = cli("index", "add", str(lib), str(far), "--no-progress", "--metadata", str(exported))
    assert out.exit_code == 0 and "gave" not in out.stdout  # given back unchanged: nothing to change
    monkeypatch.setenv("RETRIEVAL_DATA_DIR", str(other))
    out = cli("index", "add", str(lib), str(far), "--no-progress", "--metadata", str(exported))
    assert out.exit_code == 0, out.output
    assert records(other) == held


def test_export_metadata_leaves_out_a_field_named_as_a_column(tmp_path):
    from cli.metadata_csv import write_metadata_csv
    from index.store.records import ClipRecord

    def record(i, **fields):
        return ClipRecord(id=i, name=f"{i}.wav", location=f"/x/{i}.wav", sha256=str(i) * 64, duration=1.0,
                          sample_rate=32_000, tags=(), meta=Metadata.of(fields=fields))
    clips = [record(1, tags="a", mood="calm"), record(2, file="b")]
    out = tmp_path / "m.csv"
    report = write_metadata_csv(lambda: iter([clips]), lambda r: Path(r.location), out)
    assert report.rows == 2 and report.left_out == [("/x/1.wav", "tags"), ("/x/2.wav", "file")]
    assert out.read_text().splitlines() == ["\ufefffile,description,tags,mood", "/x/1.wav,,,calm",
                                            "/x/2.wav,,,"]


def a_clip(tmp_path, description: str):
    from index.store.records import ClipRecord

    (tmp_path / "lib").mkdir(exist_ok=True)
    return ClipRecord(id=1, name="a.wav", location=str(tmp_path / "lib" / "a.wav"), sha256="1" * 64,
                      duration=1.0, sample_rate=32_000, tags=(), meta=Metadata.of(description=description))


def test_export_metadata_to_a_dash_writes_standard_output_with_absolute_files_that_read_back_anywhere(
        tmp_path, monkeypatch, capsys):
    """`export-metadata -` is the usual name of standard output (no file named `-` is made); the files are
    absolute, as the CSV's folder is unknown: `export-metadata - > elsewhere/m.csv` read back by `index add
    --metadata` names the same files (relative to the working folder, they were read from elsewhere/)."""
    from cli.metadata_csv import write_metadata_csv

    clip = a_clip(tmp_path, "door")
    monkeypatch.chdir(tmp_path)
    report = write_metadata_csv(lambda: iter([[clip]]), lambda r: Path(r.location), Path("-"))
    assert report.rows == 1 and not (tmp_path / "-").exists()
    out = capsys.readouterr().out
    assert out.splitlines() == ["\ufefffile,description,tags",
                                f"{(tmp_path / 'lib' / 'a.wav').resolve()},door,"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    csv_file = elsewhere / "m.csv"
    csv_file.write_bytes(out.encode("utf-8"))
    assert read_metadata_csv(csv_file) == {(tmp_path / "lib" / "a.wav").resolve(): clip.meta}


def test_export_metadata_to_a_dash_writes_utf_8_whatever_the_locale(tmp_path, monkeypatch):
    """The CSV is UTF-8, as `--metadata` reads it: under an ASCII standard output (PYTHONIOENCODING=ascii, a
    C locale) the export stopped at the first accented row, the CSV half written. Standard output is still
    usable after."""
    import io
    import sys

    from cli.metadata_csv import write_metadata_csv

    clip = a_clip(tmp_path, "porte grinçante, 門")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stdout)
    stdout.write("before\n")
    report = write_metadata_csv(lambda: iter([[clip]]), lambda r: Path(r.location), "-")
    stdout.write("after\n")
    stdout.flush()
    monkeypatch.undo()
    assert report.rows == 1
    assert stdout.buffer.getvalue().decode("utf-8").split("\r\n") == [
        "before\n\ufefffile,description,tags",
        f'{(tmp_path / "lib" / "a.wav").resolve()},"porte grinçante, 門",',
        "after\n"]


def test_an_uploads_row_of_an_export_gives_its_clip_the_metadata_edited(cli, tmp_path):  # noqa: F811
    """export-metadata names an uploaded clip by its stored copy; given back to `index add` (whatever
    folder it walks), that row's metadata goes to the upload's clip, and the row is not said unused."""
    import csv

    import numpy as np

    from index.store.records import NewClip
    from retrieval.durable import sha256_bytes
    from tests.app.conftest import wav_bytes

    lib, data = tmp_path / "lib", tmp_path / "data"
    lib.mkdir()
    write(lib / "kick.wav", sine(80.0, seconds=0.3))
    assert cli("index", "add", str(lib), "--no-progress").exit_code == 0
    bytes_ = wav_bytes(sine(660.0, seconds=0.3))
    sha = sha256_bytes(bytes_)
    (data / "audio" / f"{sha}.wav").write_bytes(bytes_)
    with FaissStore(data, ModelSpec(), check=False) as store:
        vector = np.ones(store.dim, dtype=np.float32) / np.sqrt(store.dim)
        store.add(NewClip(name="take.wav", location=f"audio/{sha}.wav", sha256=sha, duration=0.3,
                          sample_rate=32_000, tags=(), stored_copy=True, meta=Metadata.of(description="old")),
                  vector, np.zeros(527, dtype=np.float32))
    exported = lib / "catalogue.csv"
    assert cli("index", "export-metadata", str(exported)).exit_code == 0
    rows = list(csv.reader(exported.open(encoding="utf-8", newline="")))
    assert [str(data / "audio" / f"{sha}.wav"), "old", ""] in [r[:3] for r in rows]
    for r in rows:
        if r[0].endswith(f"{sha}.wav"):
            r[1:3] = ["a take, edited", "vocal; take"]
    with exported.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    out = cli("index", "add", str(lib), "--no-progress", "--metadata", str(exported))
    assert out.exit_code == 0, out.output
    assert "gave 1 of the clips already indexed their new metadata" in out.stdout
    assert "did not find" not in out.stderr
    assert records(data)["take.wav"] == Metadata.of(description="a take, edited", tags=["vocal", "take"])


@pytest.mark.parametrize("text", ["'-- as the sign says", "'", "''", "-6 dB", "=SUM(1)", "plain", "@home"])
def test_export_metadata_gives_back_every_text_as_it_was(tmp_path, text):
    """The `'` that keeps a spreadsheet from reading a cell as a formula is taken off on reading, and a text
    that starts with `'` itself keeps it."""
    from cli.metadata_csv import write_metadata_csv
    from index.store.records import ClipRecord

    meta = Metadata.of(description=text, fields={"note": text})
    record = ClipRecord(id=1, name="a.wav", location=str(tmp_path / "a.wav"), sha256="1" * 64, duration=1.0,
                        sample_rate=32_000, tags=(), meta=meta)
    out = tmp_path / "m.csv"
    write_metadata_csv(lambda: iter([[record]]), lambda r: Path(r.location), out)
    assert read_metadata_csv(out)[(tmp_path / "a.wav").resolve()] == record.meta


def test_the_columns_are_named_in_any_case_and_files_under_a_link_are_relative(tmp_path):
    csv_file = write_csv(tmp_path / "m.csv", "File,Description,TAGS,Pack\na.wav,Kick,kick,Vol 1\n")
    assert read_metadata_csv(csv_file) == {(tmp_path / "a.wav").resolve(): Metadata.of(
        description="Kick", tags=["kick"], fields={"Pack": "Vol 1"})}
    from cli.metadata_csv import write_metadata_csv
    from index.store.records import ClipRecord

    (tmp_path / "lib").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "lib", target_is_directory=True)
    record = ClipRecord(id=1, name="a.wav", location=str(tmp_path / "lib" / "a.wav"), sha256="1" * 64,
                        duration=1.0, sample_rate=32_000, tags=())
    for out in (tmp_path / "link" / "m.csv", tmp_path / "lib" / "sub" / ".." / "n.csv"):
        write_metadata_csv(lambda: iter([[record]]), lambda r: Path(r.location), out)
        assert out.read_text().splitlines()[1] == "a.wav,,"
