"""`--progress/--no-progress` on `retrieval features` and `retrieval index extract-ray`, as on every long
command: a bar by default only where someone watches it (standard error a terminal, which CliRunner's is
not), so a log, a pipe or cron's mail does not fill with redrawn lines."""

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.training.clotho_files import write_clotho_split
from tests.training.synthetic import PlantedTagger

pytestmark = pytest.mark.usefixtures("one_thread")
BAR = "PaSST logits"  # the features bar's name, drawn on standard error


@pytest.mark.parametrize("command", [["features"], ["index", "extract-ray"]])
def test_the_long_commands_offer_progress_and_no_progress(command):
    out = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "--progress" in out.output and "--no-progress" in out.output, out.output


@pytest.fixture
def clotho(monkeypatch, tmp_path, minilm_path):
    """A two-clip Clotho split, and the settings of a run with a tagger that needs no PaSST."""
    monkeypatch.setenv("RETRIEVAL_TEXT_MODEL", str(minilm_path))
    monkeypatch.setenv("RETRIEVAL_DEVICE", "cpu")
    monkeypatch.setenv("RETRIEVAL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr("app.compose.load_tagger", lambda settings: PlantedTagger())
    write_clotho_split(tmp_path / "clotho", "validation", 2, seconds=1.0)
    return tmp_path / "clotho"


@pytest.mark.parametrize(("option", "drawn"), [([], False), (["--no-progress"], False),
                                               (["--progress"], True)])
def test_features_draws_its_bar_only_when_asked_or_watched(clotho, tmp_path, option, drawn):
    """The clips' bar was drawn always: thousands of lines in a log of a long extraction."""
    out = CliRunner().invoke(app, ["features", "--dataset", "clotho", "--split", "validation", "--root",
                                   str(clotho), "--out", str(tmp_path / "f.safetensors"), *option])
    assert out.exit_code == 0, (out.output, out.exception)
    assert "2 clips, 10 captions" in out.stdout
    assert (BAR in out.stderr) == drawn, out.stderr


@pytest.mark.parametrize(("option", "drawn"), [([], False), (["--no-progress"], False),
                                               (["--progress"], True)])
def test_extract_ray_turns_ray_datas_bars_off_unless_asked_or_watched(monkeypatch, tmp_path, option, drawn):
    """Ray Data draws a bar a stage; the run sees them on or off as asked, and they are as they were after
    it (Ray itself is not started: the run is a stand-in that reads the setting)."""
    ray = pytest.importorskip("ray")
    from ray.data import DataContext

    seen = []

    def run(paths, out_dir, **kwargs) -> dict:
        seen.append(DataContext.get_current().enable_progress_bars)
        return {"shards": [], "written": []}

    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    monkeypatch.setenv("RETRIEVAL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(ray, "init", lambda **kwargs: None)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr("index.ingest.ray_shards.extract_shards", run)
    (tmp_path / "files.txt").write_text(str(tmp_path / "a.wav") + "\n")
    before = DataContext.get_current().enable_progress_bars
    out = CliRunner().invoke(app, ["index", "extract-ray", str(tmp_path / "files.txt"), "--out",
                                   str(tmp_path / "shards"), *option])
    assert out.exit_code == 0, (out.output, out.exception)
    assert seen == [drawn] and DataContext.get_current().enable_progress_bars == before
