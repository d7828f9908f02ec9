"""The ONNX Runtime encoder against the torch encoder on the real all-MiniLM-L6-v2."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.compose import load_text_encoder, tag_embeddings
from retrieval.errors import ModelNotFound
from retrieval.fetch.text_model import MPNET, find_model_folder
from retrieval.load import load_model
from retrieval.text import HOW_TO_GET, TextEncoder
from retrieval.text_onnx import OnnxTextEncoder, UnsupportedModel, check_mean_pooling, ensure_export

SENTENCES = [
    "A dog barks twice while cars pass by on a wet road",
    "rain",
    "Someone's whistling - and birds chirp in the background!",
    "an engine idles, then revs up three times and a man shouts over the noise of the crowd " * 3,
    "Water trickles   into a metal sink",
    "",
]


@pytest.fixture(scope="module")
def onnx_encoder_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx") / "minilm.onnx"


@pytest.fixture(scope="module")
def onnx_encoder(minilm_path, onnx_encoder_path) -> OnnxTextEncoder:
    return OnnxTextEncoder.load(minilm_path, model_id="all-MiniLM-L6-v2", onnx_path=onnx_encoder_path)


def test_matches_torch_encoder_per_sentence(onnx_encoder, text_encoder):
    for clean in (True, False):
        got = onnx_encoder.encode(SENTENCES, clean=clean, batch_size=4)  # batches pad to different lengths
        want = text_encoder.encode(SENTENCES, clean=clean)
        assert got.shape == want.shape == (len(SENTENCES), 384) and got.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert (got * want).sum(1).min() >= 0.9999


def test_single_query_equals_its_batched_row(onnx_encoder):
    batched = onnx_encoder.encode(SENTENCES[:4], batch_size=64)
    for i, s in enumerate(SENTENCES[:4]):
        np.testing.assert_allclose(onnx_encoder.encode([s])[0], batched[i], atol=1e-5)


def test_identity_and_dim_match_the_torch_encoder(onnx_encoder, text_encoder):
    identity = [(e.model_id, e.revision, e.dim) for e in (onnx_encoder, text_encoder)]
    assert identity[0] == identity[1] == ("all-MiniLM-L6-v2", None, 384)
    assert onnx_encoder.encode([]).shape == (0, 384)


def test_export_is_reused_until_the_weights_change(minilm_path, tmp_path, onnx_encoder_path):
    model = tmp_path / "minilm"
    shutil.copytree(minilm_path, model)
    out = tmp_path / "enc.onnx"
    for made in (onnx_encoder_path, onnx_encoder_path.with_suffix(".json")):  # an export of these weights
        shutil.copy2(made, out.with_suffix(made.suffix))
    made = out.stat().st_mtime_ns
    ensure_export(model, out)
    assert out.stat().st_mtime_ns == made  # cached
    (model / "model.safetensors").touch()
    ensure_export(model, out)
    assert out.stat().st_mtime_ns != made  # the weights changed: exported again
    assert json.loads(out.with_suffix(".json").read_text())["weights"] == "model.safetensors"


def test_refuses_other_pooling_and_missing_folders(minilm_path, tmp_path):
    model = tmp_path / "cls"
    shutil.copytree(minilm_path, model)
    cfg = model / "1_Pooling" / "config.json"
    pooling = json.loads(cfg.read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    cfg.write_text(json.dumps(pooling))
    with pytest.raises(UnsupportedModel, match="not mean pooling"):
        check_mean_pooling(model)
    with pytest.raises(ModelNotFound):
        OnnxTextEncoder.load(tmp_path / "absent")


def test_a_folder_that_holds_no_model_is_refused_alike_on_torch_and_onnx(minilm_path, settings, tmp_path):
    """One check of a text model folder (retrieval.text.require_model_folder) for both runtimes, the library
    and the service: it says what the folder lacks and how to get a model."""
    for name, files in {"empty": (), "weightless": ("config.json",),  # a transformer's config alone
                        "bare": ("modules.json", "config.json")}.items():  # no weights
        (tmp_path / name).mkdir()
        for file in files:
            (tmp_path / name / file).symlink_to(minilm_path / file)
    nested = tmp_path / "nested"  # an older layout: the transformer in 0_Transformer/, its weights not there
    (nested / "0_Transformer").mkdir(parents=True)
    (nested / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "0_Transformer",
                                                      "type": "sentence_transformers.models.Transformer"}]))
    (nested / "model.safetensors").symlink_to(minilm_path / "model.safetensors")  # beside, not in, it

    def refusals(folder: Path) -> set[str]:
        said = set()
        for load in (lambda: TextEncoder.load(folder, device="cpu"),
                     lambda: OnnxTextEncoder.load(folder, onnx_path=tmp_path / "onnx" / "x.onnx"),
                     lambda: load_model(folder, passt="random", with_audio=False),
                     lambda: load_text_encoder(settings.model_copy(update={"text_model": str(folder)})),
                     lambda: load_text_encoder(settings.model_copy(update={"text_model": str(folder),
                                                                           "text_backend": "onnx"}))):
            with pytest.raises(ModelNotFound) as refused:
                load()
            said.add(str(refused.value))
        return said

    weights = ("model.safetensors or pytorch_model.bin or model.safetensors.index.json or "
               "pytorch_model.bin.index.json")
    for name, lacks in {"empty": f"missing modules.json or config.json, {weights}",
                        "weightless": f"missing {weights}", "bare": f"missing {weights}",
                        "nested": f"missing {weights} in 0_Transformer/", "absent": "no such folder"}.items():
        folder = tmp_path / name
        assert refusals(folder) == {f"no sentence-transformers model at {folder} ({lacks}); {HOW_TO_GET}"}
        assert find_model_folder(folder, spec=MPNET) is None  # what `models fetch --from` takes: one rule
    assert "run `retrieval models fetch --only text`" in HOW_TO_GET and "--from DIR" in HOW_TO_GET
    assert find_model_folder(minilm_path, spec=MPNET) == minilm_path
    assert not (tmp_path / "onnx").exists()  # refused before anything was exported


def test_settings_choose_the_backend(settings, tmp_path, onnx_encoder):
    torch_side = load_text_encoder(settings.model_copy(update={"text_backend": "torch"}))
    assert type(torch_side).__name__ == "TextEncoder"
    onnx = load_text_encoder(settings.model_copy(update={"text_backend": "onnx"}))
    assert isinstance(onnx, OnnxTextEncoder)
    assert onnx.model_id == torch_side.model_id == "model"  # the folder's name, and its weights' fingerprint
    assert onnx.revision == torch_side.revision and onnx.revision.startswith("weights-")
    assert (settings.data_dir / "cache" / "onnx").is_dir()  # cached in the (writable) data directory
    np.testing.assert_allclose(onnx.encode(SENTENCES[:2]), onnx_encoder.encode(SENTENCES[:2]), atol=1e-6)


def test_int8_stays_close_to_the_torch_encoder(minilm_path, onnx_encoder_path, onnx_encoder, text_encoder):
    int8 = OnnxTextEncoder.load(minilm_path, onnx_path=onnx_encoder_path, precision="int8")
    assert onnx_encoder_path.with_name("minilm-int8.onnx").is_file()
    got, want = int8.encode(SENTENCES), text_encoder.encode(SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * want).sum(1).min() >= 0.99
    with pytest.raises(ValueError, match="precision"):
        OnnxTextEncoder.load(minilm_path, onnx_path=onnx_encoder_path, precision="int4")


def test_int8_setting_serves_int8_queries_but_fp32_tag_names(settings, onnx_encoder):
    from retrieval.pipeline import tag_text_embeddings

    int8_settings = settings.model_copy(update={"text_backend": "onnx", "text_precision": "int8"})
    int8 = load_text_encoder(int8_settings)
    assert isinstance(int8, OnnxTextEncoder) and int8.precision == "int8"
    fp32 = load_text_encoder(settings.model_copy(update={"text_backend": "onnx"}))
    assert fp32.precision == "fp32"
    assert not np.allclose(int8.encode(SENTENCES[:3]), fp32.encode(SENTENCES[:3]), atol=1e-4)  # really int8
    want = tag_text_embeddings(onnx_encoder)  # (527, D) by the fp32 export
    got = tag_embeddings(int8_settings, int8)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    assert np.abs(tag_text_embeddings(int8).numpy() - want.numpy()).max() > 1e-4  # int8 would have differed
