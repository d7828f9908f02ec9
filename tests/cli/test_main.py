from typer.testing import CliRunner

from cli.main import app


def test_help_lists_the_commands():
    out = CliRunner().invoke(app, ["--help"])
    assert out.exit_code == 0
    for command in ("tag", "serve", "search", "features", "train", "evaluate", "score", "reproduce", "models",
                    "index"):
        assert f" {command} " in out.output, command
    index_help = CliRunner().invoke(app, ["index", "--help"]).output
    for command in ("add", "stats", "remove", "reproject", "extract-ray", "load-shards"):
        assert f" {command} " in index_help, command


def test_tag_prints_probabilities(tmp_path, monkeypatch, minilm_path):
    from retrieval.settings import get_settings
    from tests.audio_fixtures import sine, write

    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    monkeypatch.setenv("RETRIEVAL_DEVICE", "cpu")
    get_settings.cache_clear()
    path = write(tmp_path / "a.wav", sine(seconds=0.5))
    out = CliRunner().invoke(app, ["tag", str(path), "-k", "3"])
    get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 3 and all(0.0 <= float(line.split()[0]) <= 1.0 for line in lines)


def test_bad_file_is_one_line_and_exit_2(tmp_path, monkeypatch):
    from retrieval.settings import get_settings

    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    get_settings.cache_clear()
    (tmp_path / "x.wav").write_bytes(b"hello")
    out = CliRunner().invoke(app, ["tag", str(tmp_path / "x.wav")])
    get_settings.cache_clear()
    assert out.exit_code == 2 and "error:" in out.output
