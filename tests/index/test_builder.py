"""Walking files and folders, and which failures stop a run."""

import os
from pathlib import Path

import pytest

from app.compose import open_collection
from index.ingest.builder import find_audio, index_paths, shown_path
from retrieval.errors import ModelNotFound
from retrieval.pipeline import Retriever
from tests.audio_fixtures import sine, write


def test_find_audio_walks_folders_by_suffix_in_a_stable_order(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    files = [write(tmp_path / "a" / n, sine(seconds=0.1), format="WAV") for n in ("z.wav", "b.WAV", "m.bwf")]
    deep = write(tmp_path / "a" / "deep" / "c.wav", sine(seconds=0.1))
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    (tmp_path / "a" / "._z.wav").write_bytes(b"\x00\x05\x16\x07")  # macOS's sidecar of z.wav
    odd = tmp_path / "named.bin"
    odd.write_bytes(b"tried because it was named")
    walk = find_audio([tmp_path / "a", odd, tmp_path / "nope", files[0]])
    assert walk.files == [files[1], files[2], files[0], odd] and walk.missing == [tmp_path / "nope"]
    assert (walk.misnamed, walk.folders) == ([], 1)  # a/deep, not walked
    walk = find_audio([tmp_path / "a"], recursive=True)
    assert walk.files == sorted([*files, deep]) and walk.folders == 0


def test_a_folder_named_like_audio_is_walked_as_a_folder_and_a_name_that_is_not_utf8_is_set_apart(tmp_path):
    (tmp_path / "take.wav").mkdir()  # a folder, whatever its name
    inner = write(tmp_path / "take.wav" / "inner.wav", sine(seconds=0.1))
    latin1 = Path(os.fsdecode(str(tmp_path).encode() + b"/caf\xe9.wav"))  # as Linux hands a Latin-1 name over
    os.rename(write(tmp_path / "x.wav", sine(seconds=0.1)), latin1)
    fine = write(tmp_path / "café.wav", sine(seconds=0.1))
    walk = find_audio([tmp_path])
    assert (walk.files, walk.misnamed, walk.folders) == ([fine], [latin1], 1)
    walk = find_audio([tmp_path, latin1], recursive=True)
    assert (walk.files, walk.misnamed) == (sorted([fine, inner]), [latin1])
    assert shown_path(latin1) == f"{tmp_path}/caf\\xe9.wav" and shown_path(fine) == str(fine)


def test_a_recursive_walk_follows_links_to_folders_once_and_names_links_to_nothing(tmp_path):
    """A library's folders are often links to other disks: walked, each real folder once (a link back up
    does not loop), a file reached twice indexed once; a link to an audio file that is gone is missing."""
    disk = tmp_path / "disk" / "doors"
    disk.mkdir(parents=True)
    door = write(disk / "door.wav", sine(seconds=0.1))
    library = tmp_path / "library"
    (library / "own").mkdir(parents=True)
    own = write(library / "own" / "own.wav", sine(seconds=0.1))
    (library / "doors").symlink_to(disk)  # another disk's folder
    (library / "again").symlink_to(disk)  # the same folder twice
    (library / "own" / "up").symlink_to(library)  # a loop
    (library / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    walk = find_audio([library], recursive=True)
    assert walk.files == sorted([door, own]) and walk.missing == [library / "gone.wav"]
    flat = find_audio([library])
    assert flat.files == [] and flat.folders == 3 and flat.missing == [library / "gone.wav"]


class MissingWeightsTagger:
    def __init__(self, real):
        self.spec, self.windowing = real.spec, real.windowing

    def window_logits(self, wave):
        raise ModelNotFound("PaSST weights not found")

    def window_logits_many(self, waves, *, on_batch=None, windowing=None):
        raise ModelNotFound("PaSST weights not found")


def test_a_missing_model_stops_the_run_instead_of_failing_every_file(tmp_path, settings, retriever):
    broken = Retriever(retriever.text, retriever.ckpt, passt=retriever.tagger.spec,
                       tagger=MissingWeightsTagger(retriever.tagger))
    for i in range(3):
        write(tmp_path / f"{i}.wav", sine(200 + 100 * i, seconds=0.2))
    (tmp_path / "bad.wav").write_bytes(b"RIFF")
    with open_collection(settings, broken) as c:
        with pytest.raises(ModelNotFound):
            index_paths(c, [tmp_path], progress=False)
        assert c.count() == 0
