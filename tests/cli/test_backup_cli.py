"""`retrieval backup | restore | check` from the command line, with the zero-shot model over MiniLM (no PaSST
forward pass: clips get synthetic logits, projected by the configured model as an `index add` would)."""

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.index.backup_fixtures import clip_logits, duration, new_clip


@pytest.fixture
def cli(tmp_path, minilm_path, monkeypatch):
    env = {"RETRIEVAL_PASST_WEIGHTS": "random", "RETRIEVAL_TEXT_MODEL": str(minilm_path),
           "RETRIEVAL_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def invoke(data_dir, *args: str):
        monkeypatch.setenv("RETRIEVAL_DATA_DIR", str(data_dir))
        return CliRunner().invoke(app, [*args])

    return invoke


def fill(data_dir, monkeypatch, n: int = 12, *, stray: int = 0, windows: bool = False) -> None:
    """`n` clips projected by the configured model, the first `stray` of them with vectors that are not; with
    `windows`, all but every fourth with windows (synthetic logits, projected as the collection does)."""
    from app.compose import build_retriever, load_settings, store_config
    from index.store.records import Timeline, Windows
    from index.stores import open_store

    monkeypatch.setenv("RETRIEVAL_DATA_DIR", str(data_dir))
    settings = load_settings()
    retriever = build_retriever(settings, with_audio=False)
    store = open_store(store_config(settings), retriever.spec)
    logits = np.stack([clip_logits(i) for i in range(n)])
    vectors = retriever.project(logits)
    vectors[:stray] = vectors[n - stray:][::-1]  # other clips' vectors
    timelines: list[Timeline | None] = [None] * n
    for i in range(n) if windows else ():
        if i % 4 == 3:
            continue
        rng = np.random.default_rng(i)
        starts = np.arange(1 + i % 3) * duration(i) / 8  # windows of half the clip, within it
        window_logits = (rng.standard_normal((len(starts), 527)) * 3).astype(np.float32)
        window_vectors = retriever.project(window_logits).astype(np.float16)
        timelines[i] = Timeline(Windows(starts, starts + duration(i) / 2, window_vectors, window_logits),
                                rng.integers(0, 256, 400).astype(np.uint8))
    store.add_many([new_clip(i, data_dir, upload=i % 2 == 0) for i in range(n)], vectors, logits, timelines)
    store.close()


def test_backup_restore_check_from_the_command_line(cli, tmp_path, monkeypatch):
    src, dst, path = tmp_path / "src", tmp_path / "dst", tmp_path / "backups" / "all.zip"
    fill(src, monkeypatch, windows=True)  # 9 clips with 1 to 3 windows (18 in all), 3 without

    out = cli(src, "backup", str(path), "--no-progress")
    assert out.exit_code == 0, out.output
    assert "backed up 12 clips (6 uploads with their audio, 6 indexed from folders) and 0 waiting" \
        in out.output
    out = cli(src, "backup", str(path), "--no-progress")
    assert out.exit_code == 2 and "never overwrites" in out.output

    want = cli(src, "search", "a dog barks", "-k", "5")
    assert want.exit_code == 0, want.output
    out = cli(dst, "restore", str(path), "--no-progress")
    assert out.exit_code == 0, out.output
    assert "restored 12 clips (6 uploads with their audio)" in out.output
    assert "restored the windows and peaks of 9 clips (18 windows); 3 clips had none in the backup either " \
        "(`retrieval index backfill-windows` makes them)" in out.output
    assert "6 clips indexed from folders have no file" in out.output
    got = cli(dst, "search", "a dog barks", "-k", "5")
    assert got.stdout == want.stdout and len(got.stdout.splitlines()) == 5  # ids, order, scores, names
    want = cli(src, "search", "a dog barks", "-k", "5", "--moments")  # moments and their segments too
    got = cli(dst, "search", "a dog barks", "-k", "5", "--moments")
    assert want.exit_code == 0, want.output
    assert got.stdout == want.stdout and len(got.stdout.splitlines()) == 5
    assert all(re.search(r"\(id \d+\)  \d+\.\d+-\d+\.\d+ s  ", line) for line in got.stdout.splitlines())

    out = cli(dst, "restore", str(path), "--no-progress")
    assert out.exit_code == 2 and "already holds 12 clips" in out.output
    assert "RETRIEVAL_DATA_DIR" in out.output
    assert "without their audio" not in cli(tmp_path / "dst2", "restore", str(path), "--no-progress").output

    bare = tmp_path / "backups" / "bare.zip"  # the uploads' records without their bytes: said at restore
    assert cli(src, "backup", str(bare), "--without-audio", "--no-progress").exit_code == 0
    out = cli(tmp_path / "dst3", "restore", str(bare), "--no-progress")
    assert out.exit_code == 0 and "restored 12 clips (0 uploads with their audio)" in out.output
    assert "restored the windows and peaks of 9 clips (18 windows)" in out.output
    assert "warning: 6 uploaded clips were backed up without their audio (--without-audio; ids " in out.output

    out = cli(dst, "check", "--no-progress")
    assert out.exit_code == 0, out.output
    assert "checked 12 clips and 18 windows: 0 errors, 6 warnings; the store is healthy" in out.output
    upload = next((dst / "audio").iterdir())
    upload.unlink()
    out = cli(dst, "check", "--repair", "--no-progress")
    assert out.exit_code == 1 and "stored upload" in out.output and str(upload) in out.output
    assert "the store is NOT healthy" in out.output


def test_a_progress_bar_is_drawn_by_default_only_on_a_terminal(cli, tmp_path, monkeypatch):
    """A long command run from cron or into a log draws no bar unless `--progress` asks for one; on a
    terminal it draws one unless `--no-progress`."""
    import sys

    src = tmp_path / "src"
    fill(src, monkeypatch, n=3)
    out = cli(src, "backup", str(tmp_path / "quiet.zip"))  # the runner's standard error is no terminal
    assert out.exit_code == 0 and "100%" not in out.stderr, out.stderr
    out = cli(src, "backup", str(tmp_path / "asked.zip"), "--progress")
    assert out.exit_code == 0 and "100%" in out.stderr, out.stderr
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    from cli.progress import shown
    assert shown(None) is True and shown(False) is False


def test_check_of_a_qdrant_server_that_does_not_answer_is_a_finding(cli, tmp_path, monkeypatch):
    """A cron's `check` of a server that is down says the store is NOT healthy (exit 1), naming the
    setting, as documented; it was refused as a command error (exit 2)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once it is closed
    monkeypatch.setenv("RETRIEVAL_STORE_BACKEND", "qdrant")
    monkeypatch.setenv("RETRIEVAL_QDRANT_URL", f"http://127.0.0.1:{port}")
    out = cli(tmp_path / "data", "check", "--no-progress")
    assert out.exit_code == 1 and "NOT healthy" in out.output, out.output
    assert "RETRIEVAL_QDRANT_URL" in out.output


def test_vectors_that_are_not_their_logits_projection_are_made_again_by_reproject(cli, tmp_path, monkeypatch):
    """The zero-shot store `check` finds wrong is mended by the command it names, with no checkpoint: the
    configured model re-projects the stored logits."""
    data = tmp_path / "data"
    fill(data, monkeypatch, n=6, stray=2)
    out = cli(data, "check", "--no-progress")
    assert out.exit_code == 1 and out.output.count("is not its logits' projection") == 2, out.output
    assert "`retrieval index reproject` rewrites the vectors" in out.output
    out = cli(data, "index", "reproject")
    assert out.exit_code == 0 and "re-projected 6 clips with the configured model" in out.output, out.output
    out = cli(data, "check", "--no-progress")
    assert out.exit_code == 0 and "0 errors" in out.output and "the store is healthy" in out.output


def test_damaged_backup_refused_from_the_command_line(cli, tmp_path, monkeypatch):
    src = tmp_path / "src"
    fill(src, monkeypatch, n=2)
    path = tmp_path / "b.zip"
    assert cli(src, "backup", str(path), "--no-progress").exit_code == 0
    cut = tmp_path / "cut.zip"
    cut.write_bytes(path.read_bytes()[:-100])
    out = cli(tmp_path / "dst", "restore", str(cut), "--no-progress")
    assert out.exit_code == 2 and "not a whole backup" in out.output
    assert not (tmp_path / "dst").exists()


def test_help_lists_backup_restore_and_check():
    out = CliRunner().invoke(app, ["--help"])
    for command in ("backup", "restore", "check"):
        assert f" {command} " in out.output, command


def test_a_restore_of_an_older_backup_says_its_clips_have_no_windows(cli, tmp_path, monkeypatch):
    from tests.index.backup_fixtures import first_format_copy

    src, path = tmp_path / "src", tmp_path / "b.zip"
    fill(src, monkeypatch, n=4, windows=True)
    assert cli(src, "backup", str(path), "--no-progress").exit_code == 0
    old = first_format_copy(path, tmp_path / "old.zip", "retrieval-backup/4")
    out = cli(tmp_path / "dst", "restore", str(old), "--no-progress")
    assert out.exit_code == 0, out.output
    assert "warning: this backup (retrieval-backup/4) was made before backups held clip windows: its 4 " \
        "clips were restored without windows and peaks" in out.output
    assert "`retrieval index backfill-windows` makes them" in out.output
    assert "restored the windows and peaks" not in out.output
