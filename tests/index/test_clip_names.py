"""A clip's name is stored the same way whichever way the clip comes in (index/store/names.py clip_name):
`index add` from files on disk named with a direction override, macOS's decomposed form or a line break,
the library's ingest with an Item's name, and an upload (app/uploads.py bare_name; the route itself in
tests/app/test_clip_names_upload.py). A rerun over the same files adds nothing and keeps their names."""

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.compose import open_collection
from app.uploads import bare_name
from index.ingest.builder import index_paths
from index.ingest.worker import MISNAMED, Item, ingest
from index.store.names import MAX_NAME_CHARS, clip_name
from index.store.records import FileNow
from retrieval.durable import sha256_bytes, sha256_file
from tests.audio_fixtures import sine, write
from tests.index.ingesting import ODD_FILES, add, file, odd_files, upload, wav


@pytest.mark.parametrize(("given", "stored"), [
    *ODD_FILES.values(),
    ("caf\udce9.wav", "caf\ufffd.wav"),  # a Latin-1 byte as os.fsdecode holds it: the replacement character
    ("\udcff\udcfe.wav", "\ufffd\ufffd.wav"),  # one each
    ("\ud83c\udfb5.wav", "\U0001f3b5.wav"),  # a well-formed pair held as two surrogates: the one character
    ("e\x00\u0301.wav", "\u00e9.wav"),  # composed once the NUL between is gone: cleaning again is the same
    ("para\u2029graph\x85next.wav", "para graph next.wav"),  # Unicode's line breaks too
    ("  \n\t ", ""),
    ("a" * 300, "a" * MAX_NAME_CHARS),
    ("a" * (MAX_NAME_CHARS - 1) + " b", "a" * (MAX_NAME_CHARS - 1)),  # no space left at the end of the cut
])
def test_a_name_is_stored_cleaned_and_cleaning_it_again_changes_nothing(given, stored):
    assert clip_name(given) == stored
    assert clip_name(stored) == stored
    assert bare_name(given) == (stored or "upload")  # an upload of the same name


def test_an_upload_name_is_its_last_path_component_cleaned_the_same_way():
    assert bare_name("C:\\takes\\cafe\u0301.wav") == "caf\u00e9.wav"
    assert bare_name("dir/\u202e/x.wav") == "x.wav"
    assert bare_name("dir/\n", "fallback.wav") == "dir"  # cleaned, then split: as before
    assert bare_name("  ", "\u202e", "../x/\u202egnp.wav") == "gnp.wav"
    assert bare_name("dir/" + "a" * 300 + ".wav") == "a" * MAX_NAME_CHARS  # its component cut, not the path


def test_a_moved_files_new_name_is_stored_cleaned():
    assert FileNow(name="cafe\u0301\n.wav").name == "caf\u00e9 .wav"
    assert FileNow().name is None and FileNow(name="\u202e").name == ""  # none left: the name as it was


@pytest.fixture
def collection(settings, retriever):
    with open_collection(settings, retriever) as c:
        yield c


def names_by_location(collection) -> dict[str, str]:
    return {r.location: r.name for r in collection.list(limit=collection.count())}


def test_index_add_stores_the_cleaned_names_and_a_rerun_adds_nothing(tmp_path, collection):
    files = odd_files(tmp_path / "clips")
    report = index_paths(collection, [tmp_path / "clips"], progress=False)
    assert (report.added, report.failed) == (len(files), [])
    stored = names_by_location(collection)
    assert stored == {str(path.resolve()): ODD_FILES[case][1] for case, path in files.items()}
    assert stored == {str(path.resolve()): bare_name(path.name) for path in files.values()}  # an upload's
    again = index_paths(collection, [tmp_path / "clips"], progress=False)
    assert (again.added, again.skipped, again.moved, again.failed) == (0, len(files), 0, [])
    assert names_by_location(collection) == stored


def test_a_file_moved_under_an_odd_name_keeps_its_clip_with_the_new_name_cleaned(tmp_path, collection):
    path = write(tmp_path / "plain.wav", sine(523.0, seconds=0.2))
    [(first, _)] = add(collection, file(path))
    moved = path.rename(path.with_name("cafe\u0301\u202e.wav"))
    report = index_paths(collection, [moved], progress=False)
    assert (report.added, report.moved) == (0, 1)
    [record] = collection.list()
    assert (record.id, record.name, record.location) == (first.id, "caf\u00e9.wav", str(moved))


def test_the_library_stores_an_items_name_cleaned_and_its_place_as_it_is(tmp_path, collection):
    files = odd_files(tmp_path / "clips")
    added = add(collection, *map(file, files.values()))
    records = {case: record for case, (record, created) in zip(files, added, strict=True) if created}
    assert {case: r.name for case, r in records.items()} == {case: ODD_FILES[case][1] for case in files}
    assert {c: r.location for c, r in records.items()} == {c: str(p.resolve()) for c, p in files.items()}
    again = add(collection, *map(file, files.values()))
    assert [(r.id, created) for r, created in again] == [(records[c].id, False) for c in files]
    data = wav(sine(1760.0, seconds=0.2))
    [(uploaded, _)] = add(collection, upload(data, os.fsdecode(b"caf\xe9.wav")))  # a name as Linux gives it
    assert uploaded.name == "caf\ufffd.wav" and uploaded.stored_copy
    assert collection.count() == len(files) + 1


@pytest.mark.skipif(sys.platform != "linux", reason="a file name of any bytes is Linux's")
def test_a_file_whose_path_is_not_utf8_fails_alone_and_is_listed_by_index_add(tmp_path, collection):
    """Its name could be stored (with U+FFFD) but not its place: a path that would not open again. The
    library's ingest fails that item alone (it raised UnicodeEncodeError from SQLite, stopping the batch);
    `index add` lists it as failed and indexes the rest, on every rerun."""
    folder = tmp_path / "clips"
    folder.mkdir()
    fine = write(folder / "fine.wav", sine(440.0, seconds=0.2))
    latin1 = Path(os.fsdecode(os.fsencode(folder) + b"/caf\xff.wav"))
    os.rename(write(folder / "x.wav", sine(660.0, seconds=0.2)), latin1)
    results = ingest(collection, [Item(latin1, latin1.name, latin1, sha256_file(latin1)), file(fine)])
    assert str(results[0].error) == MISNAMED and results[0].record is None
    assert results[1].error is None and results[1].created
    for _ in range(2):
        report = index_paths(collection, [folder], progress=False)
        assert (report.added, report.skipped) == (0, 1)
        assert report.failed == [(f"{folder}/caf\\xff.wav", MISNAMED)]
    assert [r.name for r in collection.list()] == ["fine.wav"]


def test_index_add_and_search_from_the_command_line_show_a_name_with_a_line_break_on_one_line(
        tmp_path, minilm_path, monkeypatch):
    from cli.main import app

    for key, value in {"RETRIEVAL_PASST_WEIGHTS": "random", "RETRIEVAL_TEXT_MODEL": str(minilm_path),
                       "RETRIEVAL_DEVICE": "cpu", "RETRIEVAL_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(key, value)
    folder = tmp_path / "clips"
    folder.mkdir()
    write(folder / "door\nslam\u202e.wav", sine(220.0, seconds=0.3))
    runner = CliRunner()
    out = runner.invoke(app, ["index", "add", str(folder), "--no-progress"])
    assert out.exit_code == 0 and "added 1, skipped 0" in out.stdout, out.output
    out = runner.invoke(app, ["search", "a door", "-k", "5"])
    assert out.exit_code == 0, out.output
    [line] = out.stdout.strip().splitlines()
    assert "door slam.wav" in line


def test_a_name_given_to_ingest_is_the_one_in_its_result(collection):
    data = wav(sine(880.0, seconds=0.2))
    [result] = ingest(collection, [Item("k", "x\n\u202ey.wav", data, sha256_bytes(data))])
    assert result.item.name == result.record.name == "x y.wav"
