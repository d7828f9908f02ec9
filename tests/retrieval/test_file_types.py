"""One table of audio suffixes (retrieval/file_types.py) for the folder walk, the type a clip's file is
served with, its download name and a dataset's clip looked up by stem: a `.wave` file was walked but served
as application/octet-stream, and `.mp2` and `.snd` were served as audio but never walked."""

import re
from pathlib import Path

import pytest

from app.excerpts import file_name, file_type
from index.ingest.builder import find_audio
from retrieval.audio import decode_audio
from retrieval.file_types import AUDIO_TYPES, suffix_list
from tests.audio_fixtures import need, run, sine, write
from training.datasets import find_audio as find_dataset_audio

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(("suffix", "kind", "download"), [
    (".wave", "audio/wav", "take.wave"), (".WAV", "audio/wav", "take.WAV"),
    (".aifc", "audio/aiff", "take.aifc"), (".mp2", "audio/mpeg", "take.mp2"),
    (".snd", "audio/basic", "take.snd"),
    (".txt", "application/octet-stream", "take.txt"),
])
def test_each_audio_suffix_is_served_with_its_type(suffix, kind, download):
    assert file_type(f"/library/take{suffix}") == kind
    assert file_name("take" + suffix, f"/library/take{suffix}") == download
    if kind == "audio/wav":
        assert file_name("take.mp3", f"/library/take{suffix}") == "take.wav"  # another audio suffix replaced


def test_a_folder_walk_takes_every_audio_suffix_and_nothing_else(tmp_path):
    for suffix in (*AUDIO_TYPES, ".WAV", ".txt", ".wav.part", ".pdf"):
        (tmp_path / f"a{suffix}").write_bytes(b"")
    walked = {p.name for p in find_audio([tmp_path]).files}
    assert walked == {f"a{suffix}" for suffix in (*AUDIO_TYPES, ".WAV")}


@pytest.mark.parametrize("suffix", [".mp2", ".snd"])
def test_the_suffixes_walked_now_are_decoded(tmp_path, suffix):
    """`.mp2` (MPEG layer II) and `.snd` (AU) files, walked now, decode to their length."""
    wav = write(tmp_path / "tone.wav", sine(seconds=1.0))
    out = tmp_path / f"tone{suffix}"
    codec = ["-c:a", "mp2"] if suffix == ".mp2" else ["-f", "au"]
    run(need("ffmpeg"), "-v", "error", "-i", wav, *codec, out)
    assert decode_audio(out).duration_s == pytest.approx(1.0, abs=0.05)


def test_a_dataset_clip_is_found_under_any_audio_suffix(tmp_path):
    (tmp_path / "rain.aiff").write_bytes(b"")
    assert find_dataset_audio(tmp_path, "rain") == tmp_path / "rain.aiff"
    assert find_dataset_audio(tmp_path, "wind") is None


def test_the_docs_list_the_suffixes_a_walk_takes():
    text = (DOCS / "indexing.md").read_text()
    listed = re.search(r"a folder walk takes\s+`([^`]+)`", text)
    assert listed and listed.group(1).split() == list(AUDIO_TYPES)
    assert suffix_list().startswith(".wav, .wave, ") and suffix_list().endswith(" and .w64")
