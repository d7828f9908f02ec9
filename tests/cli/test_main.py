import pytest
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
    from tests.audio_fixtures import sine, write

    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    monkeypatch.setenv("RETRIEVAL_DEVICE", "cpu")
    path = write(tmp_path / "a.wav", sine(seconds=0.5))
    out = CliRunner().invoke(app, ["tag", str(path), "-k", "3"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 3 and all(0.0 <= float(line.split()[0]) <= 1.0 for line in lines)
    for k in ("0", "-1", "528"):  # refused before PaSST runs: there are 527 tags
        refused = CliRunner().invoke(app, ["tag", str(path), "-k", k])
        assert refused.exit_code == 2 and "-k" in refused.output, refused.output


def test_bad_file_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    (tmp_path / "x.wav").write_bytes(b"hello")
    out = CliRunner().invoke(app, ["tag", str(tmp_path / "x.wav")])
    assert out.exit_code == 2 and "error:" in out.output


CONTRADICTIONS = {
    "int8-with-torch": ({"RETRIEVAL_TEXT_PRECISION": "int8"},
                        ["RETRIEVAL_TEXT_PRECISION=int8", "RETRIEVAL_TEXT_BACKEND=onnx"]),
    "qdrant-url-with-faiss": ({"RETRIEVAL_QDRANT_URL": "http://localhost:6333"},
                              ["RETRIEVAL_QDRANT_URL", "RETRIEVAL_STORE_BACKEND=faiss"]),
    "fp16-on-cpu": ({"RETRIEVAL_PASST_PRECISION": "fp16", "RETRIEVAL_DEVICE": "cpu"},
                    ["RETRIEVAL_PASST_PRECISION=fp16"]),
    "onnx-on-cuda": ({"RETRIEVAL_TEXT_BACKEND": "onnx", "RETRIEVAL_DEVICE": "cuda:0"},
                     ["RETRIEVAL_TEXT_BACKEND=onnx", "RETRIEVAL_DEVICE=cuda:0"]),
    "hnsw-with-qdrant": ({"RETRIEVAL_STORE_BACKEND": "qdrant", "RETRIEVAL_INDEX_KIND": "hnsw"},
                         ["RETRIEVAL_INDEX_KIND=hnsw"]),
    "two-at-once": ({"RETRIEVAL_TEXT_PRECISION": "int8", "RETRIEVAL_QDRANT_URL": "http://localhost:6333"},
                    ["RETRIEVAL_TEXT_PRECISION=int8", "RETRIEVAL_QDRANT_URL"]),
    "out-of-range": ({"RETRIEVAL_BATCH_WINDOWS": "0"}, ["batch_windows"]),
    "not-a-device": ({"RETRIEVAL_DEVICE": "gpu7"}, ["device", "auto|cpu|cuda"]),
    "data-dir-not-a-folder": ({"RETRIEVAL_DATA_DIR": "/dev/null"},
                              ["RETRIEVAL_DATA_DIR=/dev/null is not a folder"]),
}


def test_a_device_this_machine_lacks_is_one_line_and_exit_2(tmp_path, monkeypatch, minilm_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for key, value in {"RETRIEVAL_DATA_DIR": str(tmp_path / "data"), "RETRIEVAL_PASST_WEIGHTS": "random",
                       "RETRIEVAL_TEXT_MODEL": str(minilm_path), "RETRIEVAL_DEVICE": "cuda"}.items():
        monkeypatch.setenv(key, value)
    for args in (["search", "rain"], ["index", "remove", "1"],
                 ["index", "add", str(tmp_path), "--no-progress"], ["serve", "--port", "1"]):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 2, (args, out.output, out.exception)
        assert out.stderr.strip().splitlines() == [
            "error: device 'cuda' was asked for, but CUDA is not available on this machine: use cpu or auto"]


def test_a_data_directory_without_a_collection_is_said_not_made_into_one(tmp_path, monkeypatch, minilm_path):
    """A mistyped RETRIEVAL_DATA_DIR: the commands that read a collection say there is none there, and
    leave no store behind (a search, a check or a backup made an empty one and reported on it)."""
    data = tmp_path / "typo"
    for key, value in {"RETRIEVAL_DATA_DIR": str(data), "RETRIEVAL_PASST_WEIGHTS": "random",
                       "RETRIEVAL_TEXT_MODEL": str(minilm_path), "RETRIEVAL_DEVICE": "cpu"}.items():
        monkeypatch.setenv(key, value)
    for args in (["search", "rain"], ["index", "stats"], ["index", "remove", "1"], ["check"],
                 ["backup", str(tmp_path / "b.zip")], ["index", "reproject"]):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 2, (args, out.output, out.exception)
        assert out.stderr.strip().splitlines()[-1].startswith(f"error: no collection in {data} "), args
        assert not data.exists() and not (tmp_path / "b.zip").exists(), args  # not even its cache folder
    (tmp_path / "not-shards").mkdir()  # a folder extract-ray did not write: no collection is made for it
    out = CliRunner().invoke(app, ["index", "load-shards", str(tmp_path / "not-shards"), "--no-progress"])
    assert out.exit_code == 2 and "has no manifest.json" in out.output and not data.exists(), out.output


def commands(tmp_path) -> dict[str, list[str]]:
    """Every command that reads the settings, with arguments that would otherwise get it going."""
    audio, files = str(tmp_path / "a.wav"), str(tmp_path / "files.txt")
    feats, out = str(tmp_path / "f.safetensors"), str(tmp_path / "out")
    return {
        "tag": ["tag", audio],
        "search": ["search", "a dog barks"],
        "index add": ["index", "add", audio, "--no-progress"],
        "index stats": ["index", "stats"],
        "index remove": ["index", "remove", "1"],
        "index reproject": ["index", "reproject", "--checkpoint", str(tmp_path / "head.safetensors")],
        "index load-shards": ["index", "load-shards", str(tmp_path), "--no-progress"],
        "index extract-ray": ["index", "extract-ray", files, "--out", out],
        "features": ["features", "--dataset", "clotho", "--split", "development", "--root", str(tmp_path),
                     "--out", feats],
        "train": ["train", "--train", feats, "--val", feats, "--out", out],
        "reproduce": ["reproduce", "--clotho", str(tmp_path), "--out", out],
        "serve": ["serve", "--port", "1"],
        "models fetch": ["models", "fetch", "--from", str(tmp_path), "--models-dir", str(tmp_path / "m")],
        "models verify": ["models", "verify", "--models-dir", str(tmp_path / "m")],
    }


@pytest.mark.parametrize("contradiction", list(CONTRADICTIONS))
def test_a_contradictory_configuration_is_one_line_naming_the_settings_and_exit_2(tmp_path, monkeypatch,
                                                                                  contradiction):
    from tests.audio_fixtures import sine, write

    env, named = CONTRADICTIONS[contradiction]
    monkeypatch.setenv("RETRIEVAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    write(tmp_path / "a.wav", sine(seconds=0.2))
    (tmp_path / "files.txt").write_text(str(tmp_path / "a.wav") + "\n")
    for name, args in commands(tmp_path).items():
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 2, (name, out.output, out.exception)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, out.stderr)
        assert "configuration" in lines[0] and all(s in lines[0] for s in named), (name, lines[0])
        assert out.stdout == "", name
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()  # refused before any work


def test_a_mistyped_qdrant_collection_is_said_not_made_into_one(tmp_path, monkeypatch, minilm_path):
    """Embedded Qdrant: a collection name that is none of the folder's is refused by the commands that read
    one, naming those it holds, and none is created (a search made `clipy` and answered 'no clips')."""
    from index.layout import qdrant_collections
    from index.stores import StoreConfig, open_store
    from tests.index.store_fixtures import SPEC

    data = tmp_path / "data"
    open_store(StoreConfig(data_dir=data, backend="qdrant"), SPEC).close()
    assert qdrant_collections(data) == {"clips"}
    for key, value in {"RETRIEVAL_DATA_DIR": str(data), "RETRIEVAL_PASST_WEIGHTS": "random",
                       "RETRIEVAL_TEXT_MODEL": str(minilm_path), "RETRIEVAL_DEVICE": "cpu",
                       "RETRIEVAL_STORE_BACKEND": "qdrant", "RETRIEVAL_QDRANT_COLLECTION": "clipy"}.items():
        monkeypatch.setenv(key, value)
    for args in (["search", "rain"], ["index", "stats"], ["check"], ["backup", str(tmp_path / "b.zip")]):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 2, (args, out.output, out.exception)
        assert "no Qdrant collection 'clipy'" in out.stderr and "it holds clips" in out.stderr, args
    assert qdrant_collections(data) == {"clips"} and not (tmp_path / "b.zip").exists()


def test_index_add_of_paths_none_of_which_is_there_makes_no_collection(tmp_path, monkeypatch, minilm_path):
    """A mistyped folder: said at once, before the models load, and no store is made in the data directory
    (which `search` then took for an empty collection)."""
    data = tmp_path / "data"
    for key, value in {"RETRIEVAL_DATA_DIR": str(data), "RETRIEVAL_PASST_WEIGHTS": "random",
                       "RETRIEVAL_TEXT_MODEL": str(minilm_path), "RETRIEVAL_DEVICE": "cpu"}.items():
        monkeypatch.setenv(key, value)
    typo = tmp_path / "sonuds"
    out = CliRunner().invoke(app, ["index", "add", str(typo), str(tmp_path / "nope.wav"), "--no-progress"])
    assert out.exit_code == 2, out.output
    missing = f"{typo}, {tmp_path / 'nope.wav'}"
    assert out.stderr.strip() == f"error: no such file or folder: {missing}; nothing was indexed"
    assert not data.exists()
