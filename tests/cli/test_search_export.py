"""`retrieval search QUERY --export FORMAT [--out FILE]`: the results as files, with the values the search
found (the tone stand-in for PaSST: 440 Hz -> "Dog"; the real MiniLM)."""

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from index.exports import REAPER_HEADER
from tests.audio_fixtures import write
from tests.index.test_cli import env_for
from tests.tone_tagger import ToneTagger, sections


@pytest.fixture
def cli(tmp_path, minilm_path, monkeypatch):
    """The command line over a collection of two clips, a dog in each (long.wav from 20 s to 40 s)."""
    for key, value in env_for(tmp_path / "data", minilm_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("app.compose.load_tagger", lambda settings, spec: ToneTagger(spec))

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args))

    long = write(tmp_path / "long.wav", sections((880.0, 20.0), (440.0, 20.0), (1760.0, 20.0)))
    short = write(tmp_path / "short, dog.wav", sections((440.0, 3.0)))
    assert invoke("index", "add", str(long), str(short), "--no-progress").exit_code == 0
    return invoke


MOMENTS = ("search", "a dog barking", "--moments", "-k", "3", "--per-clip", "1")


def moments_shown(cli) -> list[tuple[str, float, float, float]]:
    """(name, start, end, score) of each moment as the plain output prints them (spans to 0.1 s)."""
    shown = []
    for line in cli(*MOMENTS).stdout.splitlines():
        name, rest = line.split(None, 1)[1].split("  (id ")
        span, score = rest.split(")  ")[1].rsplit("  ", 1)
        start, end = span.removesuffix(" s").split("-")
        shown.append((name, float(start), float(end), float(score)))
    return shown


def test_each_format_holds_the_moments_found(cli, tmp_path):
    shown = moments_shown(cli)
    assert [s[0] for s in shown] == ["long.wav", "short, dog.wav"]

    out = cli(*MOMENTS, "--export", "csv")
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["name"], round(float(r["start"]), 1), round(float(r["end"]), 1)) for r in rows] == \
        [(n, s, e) for n, s, e, _ in shown]
    assert [float(r["score"]) for r in rows] == pytest.approx([s[3] for s in shown], abs=1e-4)

    lines = [json.loads(line) for line in cli(*MOMENTS, "--export", "jsonl").stdout.splitlines()]
    assert [(o["rank"], o["name"]) for o in lines] == [(1, "long.wav"), (2, "short, dog.wav")]
    assert [(o["start"], o["end"]) for o in lines] == [(float(r["start"]), float(r["end"])) for r in rows]

    labels = [line.split("\t") for line in cli(*MOMENTS, "--export", "audacity").stdout.splitlines()]
    assert [(float(s), float(e), label) for s, e, label in labels] == \
        [(o["start"], o["end"], f"{o['rank']} {o['name']}") for o in lines]

    target = tmp_path / "regions.csv"
    out = cli(*MOMENTS, "--export", "reaper", "--out", str(target))
    assert out.exit_code == 0 and out.stdout == "" and f"wrote 2 results to {target}" in out.stderr
    regions = list(csv.reader(io.StringIO(target.read_text())))
    assert tuple(regions[0]) == REAPER_HEADER and [r[:2] for r in regions[1:]] == \
        [["R1", "1 long.wav"], ["R2", "2 short, dog.wav"]]
    m, s = regions[1][2].split(":")
    assert int(m) * 60 + float(s) == pytest.approx(lines[0]["start"], abs=5e-4)


@pytest.mark.parametrize(("args", "words"), [(("--export", "wav"), "none of csv, jsonl, audacity, reaper"),
                                             (("--out", "x.csv"), "--out needs --export")])
def test_a_bad_export_option_is_a_usage_error(cli, args, words, tmp_path):
    out = cli("search", "a dog barking", *args)
    assert out.exit_code == 2 and words in out.output
    assert not (tmp_path / "x.csv").exists()
