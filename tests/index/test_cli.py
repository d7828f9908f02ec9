"""`retrieval index ...` and `retrieval search` from the command line, offline, with random PaSST + MiniLM;
and a `retrieval index add` killed with SIGKILL in the middle, then resumed."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from index.faiss.store import FaissStore
from index.layout import CLIP_DB
from retrieval.model_spec import ModelSpec
from retrieval.moments import iou
from tests.audio_fixtures import noise, sine, write
from tests.tone_tagger import ToneTagger, sections

CHILD = "from cli.main import app; app(prog_name='retrieval')"


def env_for(data_dir, minilm_path) -> dict[str, str]:
    return {"RETRIEVAL_PASST_WEIGHTS": "random", "RETRIEVAL_TEXT_MODEL": str(minilm_path),
            "RETRIEVAL_DEVICE": "cpu", "RETRIEVAL_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def cli(tmp_path, minilm_path, monkeypatch):
    """Invoke the command line in this process with the test's settings (each command reads them anew)."""
    for key, value in env_for(tmp_path / "data", minilm_path).items():
        monkeypatch.setenv(key, value)

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args))

    return invoke


def make_clips(folder, n: int, *, seconds: float) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    waves = [sine(150.0 * (i + 1), seconds=seconds) + noise(seconds=seconds, seed=i, amplitude=0.05)
             for i in range(n)]
    return [write(folder / f"clip{i:02d}.wav", w) for i, w in enumerate(waves)]


def test_index_add_and_backfill_run_with_the_indexing_threads_and_decoders(cli, tmp_path, monkeypatch):
    import torch

    import index.ingest.builder as builder

    asked, decoders = [], []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)  # recorded, not applied to the test process
    index_paths = builder.index_paths
    monkeypatch.setattr(builder, "index_paths", lambda *a, **kw: decoders.append(kw["decoders"]) or
                        index_paths(*a, **kw))
    monkeypatch.setenv("RETRIEVAL_INDEX_THREADS", "1")
    monkeypatch.setenv("RETRIEVAL_INDEX_DECODERS", "1")
    make_clips(tmp_path / "clips", 2, seconds=0.5)
    out = cli("index", "add", str(tmp_path / "clips"), "--no-progress")
    assert out.exit_code == 0 and "added 2" in out.output, out.output
    assert cli("index", "backfill-windows", "--no-progress").exit_code == 0
    assert asked == [1, 1] and decoders == [1]


def test_index_add_says_what_it_left_a_name_not_utf8_and_folders_not_walked(cli, tmp_path):
    make_clips(tmp_path / "clips", 1, seconds=0.5)
    (tmp_path / "clips" / "more").mkdir()
    latin1 = os.fsdecode(str(tmp_path).encode() + b"/clips/caf\xe9.wav")
    os.rename(make_clips(tmp_path / "spare", 1, seconds=0.5)[0], latin1)
    out = cli("index", "add", str(tmp_path / "clips"), "--no-progress")
    assert out.exit_code == 1, out.output  # one file failed; the other went in
    assert "added 1, skipped 0 already indexed, failed 1" in out.stdout
    assert re.search(r"new clips/s, \d+\.\d\d PaSST windows/s\)", out.stdout)  # a 0.5 s clip: 1 window
    assert "1 sub-folder not walked: add --recursive" in out.stdout
    assert f"failed: {tmp_path}/clips/caf\\xe9.wav: its name is not UTF-8 text" in out.stderr
    assert "convmv" in out.stderr
    (tmp_path / "empty").mkdir()
    out = cli("index", "add", str(tmp_path / "empty"), "--no-progress")
    assert out.exit_code == 0 and "no audio files found" in out.stderr


def test_index_add_then_search_from_the_command_line(cli, tmp_path):
    clips = make_clips(tmp_path / "clips", 3, seconds=0.5)
    (tmp_path / "clips" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really")
    (tmp_path / "clips" / "readme.txt").write_text("skipped by the walk")

    out = cli("index", "add", str(tmp_path / "clips"), "--no-progress")
    assert out.exit_code == 1, out.output  # one file failed; the others went in
    assert "added 3, skipped 0 already indexed, failed 1" in out.output
    assert "failed: " in out.output and "broken.wav" in out.output
    # a name with a line break is one line of the report, its break written as \n (a cron script reads it)
    (tmp_path / "clips" / "bad\nfake line.wav").write_bytes(b"xx")
    out = cli("index", "add", str(tmp_path / "clips"), "--no-progress")
    failed = [line for line in out.stderr.splitlines() if "fake line" in line]
    want = f"failed: {tmp_path}/clips/bad\\nfake line.wav: "
    assert len(failed) == 1 and failed[0].startswith(want), failed

    out = cli("search", "a low hum", "-k", "2")
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()  # (stderr carries the model loaders' progress bars)
    assert len(lines) == 2
    names = {c.name for c in clips}
    scores = []
    for rank, line in enumerate(lines, 1):
        fields = line.split()
        assert int(fields[0]) == rank and fields[2] in names and "(id" in line
        scores.append(float(fields[1]))
    assert scores == sorted(scores, reverse=True)
    for args, words in ((["  "], "the query is blank"), (["hum", "--threshold", "0.2"], "add --moments")):
        out = cli("search", *args)
        assert out.exit_code == 2 and words in out.stderr, out.output

    out = cli("index", "remove", "1", "42")  # 42 is no clip: said, and exit 1 for a script to see
    assert out.exit_code == 1 and "removed 1 of 2; not in the collection: 42" in out.output
    out = cli("index", "stats")
    assert out.exit_code == 0 and "clips: 2" in out.output and "index_kind: flat" in out.output


def test_index_stats_names_the_model_of_an_index_made_with_another(cli, tmp_path):
    from tests.index.store_fixtures import SPEC, clip, logits, unit_vectors

    with FaissStore(tmp_path / "data", SPEC) as store:  # another model's index, as after a reproject
        store.add(clip(0), unit_vectors(1)[0], logits(0))
    assert cli("search", "rain").exit_code == 2  # searching it with the configured model is refused
    out = cli("index", "stats")
    assert out.exit_code == 0, out.output
    assert "clips: 1" in out.output and f"model_id: {SPEC.id}" in out.output


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_index_stats_and_export_metadata_load_no_model(cli, tmp_path, monkeypatch, backend):
    """They read what the store holds: on a machine without the models (a restored backup looked at, a
    catalogue written) they answer, with the store's own model."""
    from index.stores import StoreConfig, open_store
    from tests.index.store_fixtures import SPEC, clip, logits, unit_vectors

    with open_store(StoreConfig(data_dir=tmp_path / "data", backend=backend), SPEC) as store:
        store.add(clip(0), unit_vectors(1)[0], logits(0))
    monkeypatch.setenv("RETRIEVAL_STORE_BACKEND", backend)
    monkeypatch.setenv("RETRIEVAL_TEXT_MODEL", str(tmp_path / "no model here"))
    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", str(tmp_path / "no weights here.pt"))
    assert cli("search", "rain").exit_code == 2  # the text model is needed to search
    out = cli("index", "stats")
    assert out.exit_code == 0, out.output
    assert f"backend: {backend}" in out.stdout and "clips: 1" in out.stdout
    assert f"model_id: {SPEC.id}" in out.stdout
    out = cli("index", "export-metadata", str(tmp_path / "catalogue.csv"))
    assert out.exit_code == 0 and "wrote the metadata of 1 clips" in out.stdout, out.output
    assert (tmp_path / "catalogue.csv").read_text().splitlines()[1].startswith(clip(0).location)
    if backend == "qdrant":  # a collection the folder does not hold is said, not made
        monkeypatch.setenv("RETRIEVAL_QDRANT_COLLECTION", "elsewhere")
        out = cli("index", "stats")
        assert out.exit_code == 2 and "no Qdrant collection 'elsewhere'" in out.stderr


def committed(db_path) -> int:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM clips").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_index_add_killed_mid_run_keeps_every_committed_add_and_resumes(tmp_path, minilm_path):
    n = 10
    make_clips(tmp_path / "clips", n, seconds=0.5)
    env = {**os.environ, **env_for(tmp_path / "data", minilm_path)}
    args = [sys.executable, "-c", CHILD, "index", "add", str(tmp_path / "clips"), "--no-progress"]
    db = tmp_path / "data" / CLIP_DB
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while (seen := committed(db)) < 3:
        assert child.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    with FaissStore(tmp_path / "data", ModelSpec(), check=False) as store:
        kept = store.list(limit=100)
        assert seen <= len(kept) < n  # every add seen committed is there, and the run was cut short
        ids = [r.id for r in kept]
        xb = store.db.blobs(ids, "vector", store.dim)  # (m, D)
        np.testing.assert_allclose(np.linalg.norm(xb, axis=1), 1.0, atol=1e-5)
        hits = store.search(xb, len(ids))  # the cache, rebuilt after the kill, agrees with SQLite
        got = np.array([[h.score for h in row] for row in hits])  # (m, m)
        np.testing.assert_allclose(got, -np.sort(-(xb @ xb.T), axis=1), atol=1e-5)

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"added {n - len(kept)}, skipped {len(kept)} already indexed, failed 0" in done.stdout
    assert "INFO index.ingest.builder" in done.stderr and "faiss.loader" not in done.stderr  # quiet loader
    with FaissStore(tmp_path / "data", ModelSpec(), check=False) as store:
        records = store.list(limit=100)
        assert len(records) == n == len({r.sha256 for r in records})
        assert records[:len(kept)] == kept


def test_search_never_builds_passt_and_the_recorded_weights_still_decide(cli, tmp_path, monkeypatch):
    """Text search needs no PaSST: it runs with the PaSST file gone (the weights are then unknown and the
    store's record stands), but configured weights known to differ from the store's are refused."""
    make_clips(tmp_path / "clips", 2, seconds=0.3)
    assert cli("index", "add", str(tmp_path / "clips"), "--no-progress").exit_code == 0
    import retrieval.tagger

    def no_passt(*args, **kwargs):
        raise AssertionError("PaSST was built")

    real_build = retrieval.tagger.build_passt
    monkeypatch.setattr(retrieval.tagger, "build_passt", no_passt)
    before = cli("search", "a low hum", "-k", "2")
    assert before.exit_code == 0, before.output
    assert len(before.stdout.strip().splitlines()) == 2

    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", str(tmp_path / "models" / "gone.pt"))
    out = cli("search", "a low hum", "-k", "2")
    assert out.exit_code == 0, out.output
    assert out.stdout == before.stdout  # the same hits, the same scores
    out = cli("index", "stats")
    assert out.exit_code == 0 and "clips: 2" in out.stdout
    assert "'passt_weights': 'random'" in out.stdout  # the store keeps its own record
    monkeypatch.setattr(retrieval.tagger, "build_passt", real_build)  # adding audio does need the weights
    extra = write(tmp_path / "extra.wav", sine(900.0, seconds=0.3))
    out = cli("index", "add", str(extra), "--no-progress")
    assert out.exit_code == 2 and "PaSST weights not found" in out.stderr
    assert "clips: 2" in cli("index", "stats").stdout

    other = tmp_path / "models" / "other.pt"
    other.parent.mkdir(exist_ok=True)
    other.write_bytes(b"weights that are not the ones the index was built with")
    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", str(other))
    out = cli("search", "a low hum")
    assert out.exit_code == 2
    errors = [line for line in out.stderr.splitlines() if "error" in line]  # (and the loaders' progress)
    assert len(errors) == 1 and errors[0].startswith("error: ") and out.stderr.strip().endswith(errors[0])
    assert "passt_weights" in errors[0] and "indexed again" in errors[0]


def test_search_moments_and_backfill_windows_from_the_command_line(cli, tmp_path, monkeypatch):
    """With the tone stand-in for PaSST (440 Hz -> "Dog"): where the dog is, and windows backfilled for
    clips stored without them."""
    monkeypatch.setattr("app.compose.load_tagger", lambda settings, spec: ToneTagger(spec))
    long = write(tmp_path / "long.wav", sections((880.0, 20.0), (440.0, 20.0), (1760.0, 20.0)))
    short = write(tmp_path / "short.wav", sections((440.0, 3.0)))
    assert cli("index", "add", str(long), str(short), "--no-progress").exit_code == 0

    out = cli("search", "a dog barking", "--moments", "-k", "3", "--per-clip", "1")
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    rank, name, _, clip_id, span, unit, score = lines[0].split()
    assert (rank, name, clip_id, unit) == ("1", "long.wav", "1)", "s") and 0 < float(score) <= 1
    start, end = map(float, span.split("-"))
    assert iou((start, end), (20.0, 40.0)) >= 0.7
    assert [line.split()[1] for line in lines] == ["long.wav", "short.wav"]  # one moment per clip
    def long_line() -> str:
        return next(line for line in cli("search", "a dog barking", "-k", "2").stdout.splitlines()
                    if "long.wav" in line)

    assert " at 20.0-30.0 s " in long_line()  # the hit's best window

    db = tmp_path / "data" / CLIP_DB  # as a store indexed before windows were kept
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM windows")
        con.execute("DELETE FROM waveforms")
    assert " at " not in long_line()
    out = cli("search", "a dog barking", "--moments")
    assert out.exit_code == 0 and out.stdout == ""
    assert "none of the collection's 2 clips has windows" in out.stderr  # not "no clips"
    assert "retrieval index backfill-windows" in out.stderr
    out = cli("search", "a dog barking", "--per-clip", "2")  # without --moments it would change nothing
    assert out.exit_code == 2 and "add --moments" in out.stderr
    short.unlink()
    out = cli("index", "backfill-windows", "--no-progress")
    assert out.exit_code == 1, out.output
    assert "backfilled the windows of 1 clips" in out.output
    assert f"unreachable: clip 2 ({short}): its audio is gone" in out.output
    assert " at 20.0-30.0 s " in long_line()


def test_an_interrupted_index_add_says_what_stays_and_exits_130(cli, tmp_path, monkeypatch):
    from cli import index_cmds

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_cmds, "add", interrupted)
    result = cli("index", "add", str(tmp_path))
    assert result.exit_code == 130 and "interrupted: the clips stored so far stay" in result.output
