import pytest

from tests.audio_fixtures import sine, write
from tests.training.clotho_files import write_captions_csv
from training.datasets import DatasetError, read_audiocaps, read_clotho, read_dataset

CAPS = ["one, with a comma", 'two "quoted"', "three", "four", "five"]


def test_clotho_split_is_read_in_file_order_with_quoted_captions(tmp_path):
    (tmp_path / "validation").mkdir()
    for name in ("b.wav", "a.wav"):
        write(tmp_path / "validation" / name, sine(seconds=0.1))
    write_captions_csv(tmp_path / "clotho_captions_validation.csv", [("b.wav", CAPS), ("a.wav", CAPS[::-1])])
    clips = read_clotho(tmp_path, "validation")
    assert [c.file_name for c in clips] == ["b.wav", "a.wav"]
    assert clips[0].captions == tuple(CAPS) and clips[1].captions[0] == "five"
    assert clips[0].path == tmp_path / "validation" / "b.wav"


def test_clotho_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_clotho(tmp_path, "evaluation")
    with pytest.raises(DatasetError, match="split"):
        read_clotho(tmp_path, "test")
    write_captions_csv(tmp_path / "clotho_captions_evaluation.csv", [("gone.wav", CAPS)])
    with pytest.raises(DatasetError, match=r"1 clips .* not in .*gone\.wav"):
        read_clotho(tmp_path, "evaluation")
    (tmp_path / "clotho_captions_evaluation.csv").write_text("file,caption\nx.wav,hello\n")
    with pytest.raises(DatasetError, match="lacks the columns"):
        read_clotho(tmp_path, "evaluation")
    write_captions_csv(tmp_path / "clotho_captions_evaluation.csv", [("x.wav", CAPS[:4] + [""])])
    with pytest.raises(DatasetError, match="line 2"):
        read_clotho(tmp_path, "evaluation")


def write_audiocaps(root, rows):
    (root / "val.csv").write_text("audiocap_id,youtube_id,start_time,caption\n"
                                  + "".join(f"{i},{y},{s},\"{c}\"\n" for i, (y, s, c) in enumerate(rows)))


def test_audiocaps_groups_captions_by_clip_and_finds_both_namings(tmp_path):
    (tmp_path / "val").mkdir()
    write(tmp_path / "val" / "abc_30.wav", sine(seconds=0.1))
    write(tmp_path / "val" / "xyz.flac", sine(seconds=0.1), format="FLAC")
    write_audiocaps(tmp_path, [("abc", "30", "a dog barks"), ("xyz", "0", "rain, then thunder"),
                               ("abc", "30", "barking")])
    clips = read_dataset("audiocaps", tmp_path, "val")
    assert [(c.file_name, c.captions) for c in clips] == [("abc_30.wav", ("a dog barks", "barking")),
                                                         ("xyz.flac", ("rain, then thunder",))]


def test_absent_audiocaps_clips_raise_or_are_skipped(tmp_path):
    (tmp_path / "val").mkdir()
    write(tmp_path / "val" / "abc_30.wav", sine(seconds=0.1))
    write_audiocaps(tmp_path, [("abc", "30", "a dog barks"), ("gone", "10", "wind")])
    with pytest.raises(DatasetError, match="skip-missing"):
        read_audiocaps(tmp_path, "val")
    assert [c.file_name for c in read_audiocaps(tmp_path, "val", skip_missing=True)] == ["abc_30.wav"]
    with pytest.raises(DatasetError):
        read_dataset("esc50", tmp_path, "val")
