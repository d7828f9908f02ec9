"""`retrieval search --mode keyword|hybrid` and its filters: the metadata a library's files carry, searched
from the shell as POST /search searches it (the same Collection calls, compared here)."""

import json

import pytest

from app.compose import build_retriever, load_settings, open_collection
from index.store.records import SearchFilter
from tests.audio_fixtures import noise, sine, write
from tests.cli.test_index_metadata import write_csv
from tests.index.test_cli import cli  # noqa: F401  (the fixture)


def names(out) -> list[str]:
    return [line.split()[2] for line in out.stdout.splitlines()]


@pytest.fixture
def library(cli, tmp_path):  # noqa: F811
    lib = tmp_path / "lib"
    lib.mkdir()
    write(lib / "door.wav", sine(220.0, seconds=0.4))
    write(lib / "kick.wav", sine(60.0, seconds=0.3))
    write(lib / "hiss.wav", noise(seconds=0.5))
    csv = write_csv(lib / "m.csv", "file,description,tags,pack\n"
                                   "door.wav,an old wooden door creaks open,foley;door,Doors\n"
                                   "kick.wav,deep kick drum,drums;kick,Drums\n"
                                   "hiss.wav,tape hiss between takes,noise,Tapes\n")
    out = cli("index", "add", str(lib), "--no-progress", "--metadata", str(csv))
    assert out.exit_code == 0, out.output
    return cli


def test_a_query_that_shows_nothing_is_refused(library):
    for query in ("   ", "\u200b\u200e"):
        out = library("search", query)
        assert out.exit_code == 2 and "the query is blank" in out.output, out.output


def test_keyword_mode_finds_the_words_of_the_metadata(library, tmp_path):
    out = library("search", "wooden creaks", "--mode", "keyword")
    assert out.exit_code == 0, out.output
    assert names(out) == ["door.wav"] and " at " not in out.stdout  # words say nothing of where
    out = library("search", "kick", "--mode", "keyword", "--export", "jsonl")
    [row] = [json.loads(line) for line in out.stdout.splitlines()]
    assert row["name"] == "kick.wav" and row["start"] is None
    labels = tmp_path / "labels.txt"
    out = library("search", "kick", "--mode", "keyword", "--export", "audacity", "--out", str(labels))
    assert out.exit_code == 0 and labels.read_text() == ""  # a label track needs spans: said, not hidden
    assert "wrote 0 results" in out.stderr and "1 of 1 results have no span" in out.stderr
    assert "keyword hits have none" in out.stderr


def test_hybrid_and_the_filters_answer_as_the_collection_does(library):
    settings = load_settings()
    with open_collection(settings, build_retriever(settings, with_audio=False)) as c:
        flt = SearchFilter(tags_any=("door", "noise"), max_duration=0.45)
        xq = c.retriever.encode_text(["a door"])
        want = [h.record.name for h in c.search_hybrid("a door", xq, 10, flt)]
        drums = SearchFilter(fields=(("pack", "Drums"),))
        vector = [h.record.name for h in c.search_text("sound", 10, drums)]
    out = library("search", "a door", "--mode", "hybrid", "--tags-any", "door; noise",
                  "--max-duration", "0.45")
    assert out.exit_code == 0, out.output
    assert names(out) == want == ["door.wav"] and " at " in out.stdout  # hiss is 0.5 s: filtered out
    out = library("search", "sound", "--fields", '{"pack": "Drums"}')
    assert names(out) == vector == ["kick.wav"]
    out = library("search", "sound", "--tags-all", "drums", "--tags-none", "kick")
    assert out.exit_code == 0 and out.stdout == ""
    assert "none of the collection's 3 clips passes the filters" in out.stderr
    # by keyword, a filter that clips pass is not blamed for words none of them has
    out = library("search", "zzzz", "--mode", "keyword", "--fields", '{"pack": "Drums"}')
    assert out.exit_code == 0 and out.stdout == ""
    assert "none of the clips that pass the filters has these words" in out.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["door", "--mode", "keyword", "--moments"], "use mode `vector` with them"),
    (["?!", "--mode", "keyword"], "needs a word"),
    (["door", "--mode", "fuzzy"], "fuzzy"),
    (["door", "--fields", "[1]"], "a JSON object of strings"),
    (["door", "--fields", '{"bad key": "x"}'], "--fields"),
    (["door", "--min-duration", "2", "--max-duration", "1"], "longer than --max-duration"),
])
def test_a_search_that_cannot_be_run_is_refused(library, args, words):
    out = library("search", *args)
    said = " ".join(out.output.replace("│", " ").split())  # the message, out of its box
    assert out.exit_code == 2 and words in said, out.output
