"""Which folders hold a text model (the layouts sentence-transformers loads), and how a folder without a
manifest is named: its folder's name and a fingerprint of its weights."""

import json
import shutil
from pathlib import Path

import pytest

from retrieval.errors import CheckpointMismatch, ModelNotFound
from retrieval.fetch.text_model import MPNET, find_model_folder
from retrieval.model_spec import ModelSpec
from retrieval.text import model_folder_problem, read_identity, require_model_folder

TRANSFORMER = "sentence_transformers.models.Transformer"


def make(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def modules(path: str) -> str:
    pooling = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
    return json.dumps([{"idx": 0, "name": "0", "path": path, "type": TRANSFORMER}, pooling])


SHARDS = json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                    "b": "model-00002-of-00002.safetensors"}})


@pytest.mark.parametrize("files", [
    {"modules.json": modules(""), "config.json": "{}", "model.safetensors": "w"},  # `models fetch`'s
    {"modules.json": modules(""), "config.json": "{}", "pytorch_model.bin": "w"},
    {"modules.json": modules("0_Transformer"), "0_Transformer/config.json": "{}",  # older: no root config
     "0_Transformer/pytorch_model.bin": "w"},
    {"config.json": "{}", "model.safetensors": "w"},  # a plain Hugging Face folder: mean pooling is added
    {"modules.json": modules(""), "config.json": "{}", "model.safetensors.index.json": SHARDS,  # sharded
     "model-00001-of-00002.safetensors": "a", "model-00002-of-00002.safetensors": "b"},
    {"config.json": "{}", "pytorch_model.bin.index.json": "{}"},
], ids=["safetensors", "pytorch-bin", "0-transformer", "plain-hf", "sharded-safetensors", "sharded-bin"])
def test_each_layout_sentence_transformers_loads_is_a_model_folder(tmp_path, files):
    folder = make(tmp_path / "m", files)
    assert model_folder_problem(folder) is None and require_model_folder(folder) == folder
    assert read_identity(folder)[1] is not None  # its weights are found, and fingerprinted


def test_the_transformer_folder_modules_json_names_is_where_its_weights_are(tmp_path):
    folder = make(tmp_path / "m", {"modules.json": modules("0_Transformer"), "model.safetensors": "w"})
    with pytest.raises(ModelNotFound, match=r"\(missing model.safetensors or .* in 0_Transformer/\)"):
        require_model_folder(folder)


def test_models_fetch_still_takes_only_the_layout_it_installs(tmp_path):
    """`models fetch --from` holds a folder to its pin: modules.json, config.json and model.safetensors."""
    for files in ({"config.json": "{}", "model.safetensors": "w"},
                  {"modules.json": modules(""), "config.json": "{}", "pytorch_model.bin": "w"},
                  {"modules.json": modules("0_Transformer"), "config.json": "{}",
                   "0_Transformer/model.safetensors": "w"}):
        folder = make(tmp_path / f"m{len(list(tmp_path.iterdir()))}", files)
        assert model_folder_problem(folder) is None and find_model_folder(folder, spec=MPNET) is None
    folder = make(tmp_path / "fetched", {"modules.json": modules(""), "config.json": "{}",
                                         "model.safetensors": "w"})
    assert find_model_folder(folder, spec=MPNET) == folder


def spec_of(folder: Path) -> ModelSpec:
    model_id, revision = read_identity(folder)
    return ModelSpec(text_model=model_id, text_model_revision=revision, dim=384)


def copy_model(minilm_path: Path, dest: Path, *, change_byte: int | None = None) -> Path:
    shutil.copytree(minilm_path, dest, ignore=shutil.ignore_patterns("onnx", "retrieval-model.json"))
    if change_byte is not None:
        weights = bytearray((dest / "model.safetensors").read_bytes())
        weights[change_byte] ^= 1
        (dest / "model.safetensors").write_bytes(bytes(weights))
    return dest


@pytest.mark.parametrize("where", ["first-mib", "last-mib"])
def test_two_folders_of_one_name_with_other_weights_are_two_models(minilm_path, tmp_path, where):
    """Two fine-tunes, each in a folder named `model`, were one model (a head trained with one was served
    with the other, silently): a folder without a manifest is named by its name and its weights."""
    a = copy_model(minilm_path, tmp_path / "runs" / "a" / "model")
    at = 1000 if where == "first-mib" else -10  # a tensor's bytes (the header is the first few KiB)
    size = (a / "model.safetensors").stat().st_size
    b = copy_model(minilm_path, tmp_path / "runs" / "b" / "model", change_byte=at % size)
    assert read_identity(a)[0] == read_identity(b)[0] == "model"
    assert read_identity(a)[1] != read_identity(b)[1]
    with pytest.raises(CheckpointMismatch, match="text_model_revision"):
        spec_of(a).require_match(spec_of(b), what="the index")


def test_a_folder_copied_elsewhere_is_the_same_model(minilm_path, tmp_path):
    a = copy_model(minilm_path, tmp_path / "here" / "model")
    b = copy_model(minilm_path, tmp_path / "there" / "model")
    assert read_identity(a) == read_identity(b) and read_identity(a)[1].startswith("weights-")
    spec_of(a).require_match(spec_of(b), what="the index")
    assert spec_of(a).id == spec_of(b).id


def test_files_made_before_fingerprints_still_open(minilm_path, tmp_path):
    """A store or checkpoint of before recorded the folder's name (or a path to it) and no revision: it
    matches the folder whatever its fingerprint, still by name; a hub revision is still held to itself."""
    spec = spec_of(copy_model(minilm_path, tmp_path / "model"))
    for recorded in ("model", "models/model", "/srv/models/model"):
        before = ModelSpec(text_model=recorded, dim=384)
        assert spec.diff(before) == {} and before.diff(spec) == {}
        before.require_match(spec, what="the index")
        spec.require_match(before, what="the index")
    assert set(spec.diff(ModelSpec(text_model="other", dim=384))) == {"text_model"}
    hub = ModelSpec(text_model="sentence-transformers/model", text_model_revision="r1", dim=384)
    assert "text_model_revision" in hub.diff(ModelSpec(text_model="sentence-transformers/model", dim=384))


def test_the_fingerprint_is_cheap(tmp_path):
    """Its first and last MiB of a big file, not the whole of it: far under a second for 420 MB."""
    import time

    folder = make(tmp_path / "big", {"config.json": "{}"})
    with open(folder / "model.safetensors", "wb") as f:
        f.truncate(420 * 1024 * 1024)  # sparse: nothing is written
    start = time.perf_counter()
    read_identity(folder)
    assert time.perf_counter() - start < 0.5
