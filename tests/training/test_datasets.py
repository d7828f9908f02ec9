import json

import pytest

from tests.audio_fixtures import sine, write
from tests.training.clotho_files import write_captions_csv
from training.datasets import DatasetError, read_audiocaps, read_clotho, read_dataset, read_moment_queries

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
    (tmp_path / "clotho_captions_evaluation.csv").write_text("")
    with pytest.raises(DatasetError, match="is empty: its first line must name the columns"):
        read_clotho(tmp_path, "evaluation")
    write_captions_csv(tmp_path / "clotho_captions_evaluation.csv", [("x.wav", CAPS), ("x.wav", CAPS)])
    with pytest.raises(DatasetError, match=r"1 file names are listed twice or more, e\.g\. \['x\.wav'\]"):
        read_clotho(tmp_path, "evaluation")


def test_a_row_of_more_fields_than_the_header_is_refused_naming_its_line(tmp_path):
    """An unquoted comma in the last caption: the field past the header was dropped without a word."""
    (tmp_path / "evaluation").mkdir()
    write(tmp_path / "evaluation" / "x.wav", sine(seconds=0.1))
    header = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    (tmp_path / "clotho_captions_evaluation.csv").write_text(
        header + 'x.wav,"a, b",c,d,e,"f"\n' + "x.wav,a,b,c,d,rain, then thunder\n")
    with pytest.raises(DatasetError, match=r"evaluation.csv, line 3: 7 cells for the 6 columns .*quotes"):
        read_clotho(tmp_path, "evaluation")
    (tmp_path / "val.csv").write_text("audiocap_id,youtube_id,start_time,caption\n1,abc,0,dogs, barking\n")
    with pytest.raises(DatasetError, match="val.csv, line 2: 5 cells for the 4 columns"):
        read_audiocaps(tmp_path, "val")


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


def test_a_file_named_by_a_video_cut_twice_is_no_clip(tmp_path):
    """`abc.wav` cannot be both cuts of video abc that val.csv names: neither takes it (they were two clips of
    the same audio); a cut named with its start time is found, and the error says how to name the others."""
    (tmp_path / "val").mkdir()
    write(tmp_path / "val" / "abc.wav", sine(seconds=0.1))
    write(tmp_path / "val" / "def_5.wav", sine(seconds=0.1))
    write(tmp_path / "val" / "def.wav", sine(seconds=0.1))
    write_audiocaps(tmp_path, [("abc", "30", "a dog barks"), ("abc", "120", "a car passes"),
                               ("def", "5", "wind"), ("def", "40", "rain")])
    with pytest.raises(DatasetError, match=r"3 AudioCaps val clips .* 2 of them, e\.g\. \['abc', 'def'\], "
                       r"are files named by the video alone .* <youtube_id>_<start_time>"):
        read_audiocaps(tmp_path, "val")
    assert [c.file_name for c in read_audiocaps(tmp_path, "val", skip_missing=True)] == ["def_5.wav"]


def write_jsonl(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def moment_line(qid, vid, query="a dog barks", windows=((2, 4),), duration=30):
    return {"qid": qid, "query": query, "duration": duration, "vid": vid,
            "relevant_windows": [list(w) for w in windows]}


def test_moment_annotations_are_read_in_file_order(tmp_path):
    path = write_jsonl(tmp_path / "castella_test_release.jsonl", [
        moment_line("v1_1", "v1", windows=[(27, 28), (289, 290)], duration=299),
        "",  # a blank line is skipped
        {**moment_line(7, "v2", query="rain", windows=[(55.5, 61)], duration=60), "fg_dB": -2.1},
    ])
    queries = read_moment_queries(path)
    assert [(q.qid, q.vid, q.query, q.duration) for q in queries] == [("v1_1", "v1", "a dog barks", 299.0),
                                                                   (7, "v2", "rain", 60.0)]
    assert queries[0].relevant.tolist() == [[27.0, 28.0], [289.0, 290.0]]
    assert queries[1].relevant.tolist() == [[55.5, 61.0]]  # past the duration, as CASTELLA's may be


@pytest.mark.parametrize("line, problem", [
    ('{"qid": 1, "query": "x"', "not JSON"),
    ("[1, 2]", "a JSON object"),
    ({"qid": 1, "query": "x", "vid": "v", "duration": 5}, r"lacks \['relevant_windows'\]"),
    (moment_line(True, "v"), "qid must be"),
    (moment_line(1, ""), "vid must be a non-empty string"),
    (moment_line(1, "v", query=" "), "query must be a non-empty string"),
    (moment_line(1, "v", duration=0), "duration must be a positive"),
    (moment_line(1, "v", windows=[]), "non-empty list of"),
    (moment_line(1, "v", windows=[(1, 2, 3)]), "non-empty list of"),
    (moment_line(1, "v", windows=[(1, "2")]), "non-empty list of"),
    (moment_line(1, "v", windows=[(4, 4)]), "0 <= start < end"),
    (moment_line(1, "v", windows=[(-1, 4)]), "0 <= start < end"),
])
def test_a_bad_annotation_line_is_named(tmp_path, line, problem):
    path = write_jsonl(tmp_path / "a.jsonl", [moment_line(0, "v"), line])
    with pytest.raises(DatasetError, match=rf"a\.jsonl, line 2: .*{problem}"):
        read_moment_queries(path)


def test_duplicate_qids_missing_and_empty_files_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [moment_line("q", "v"), moment_line("r", "v"),
                                              moment_line("q", "w")])
    with pytest.raises(DatasetError, match="line 3: qid 'q' is also on line 1"):
        read_moment_queries(path)
    with pytest.raises(DatasetError, match="not found"):
        read_moment_queries(tmp_path / "absent.jsonl")
    with pytest.raises(DatasetError, match="holds no queries"):
        read_moment_queries(write_jsonl(tmp_path / "empty.jsonl", [""]))


def test_moment_clips_are_the_vids_with_their_queries(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [moment_line(1, "Wildlife_0.0_60.0", query="water"),
                                              moment_line(2, "gone"), moment_line(3, "-x1", query="a horn"),
                                              moment_line(4, "Wildlife_0.0_60.0", query="birds")])
    audio = tmp_path / "audio"
    audio.mkdir()
    write(audio / "Wildlife_0.0_60.0.wav", sine(seconds=0.1))
    write(audio / "-x1.flac", sine(seconds=0.1))
    with pytest.raises(DatasetError, match=r"1 clips of .* not in .*'gone'.*--skip-missing"):
        read_dataset("moments", audio, "test", annotations=path)
    clips = read_dataset("moments", audio, "test", annotations=path, skip_missing=True)
    assert [(c.file_name, c.path.name, c.captions) for c in clips] == [
        ("Wildlife_0.0_60.0", "Wildlife_0.0_60.0.wav", ("water", "birds")), ("-x1", "-x1.flac", ("a horn",))]
    with pytest.raises(DatasetError, match="annotations"):
        read_dataset("moments", audio, "test")
    with pytest.raises(DatasetError, match="annotations"):
        read_dataset("clotho", audio, "evaluation", annotations=path)
