"""The library entry point: `retrieval.load_model(text_model, passt=..., checkpoint=..., device=...)`, its
audio files and text in one space, and the service's model (app.compose.build_retriever) built through it.

One model with random PaSST weights is loaded for the module, and two short clips go through PaSST a few
times; the other models reuse its tagger or build none."""

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import retrieval
from app.compose import build_retriever
from app.settings import Settings
from retrieval.checkpoint import Checkpoint, save_checkpoint
from retrieval.errors import AudioDecodeError, CheckpointMismatch, ModelNotFound
from retrieval.extract import extract
from retrieval.head import RetrievalHead
from retrieval.load import load_model
from retrieval.pipeline import Retriever, text_spec
from retrieval.query_cache import QueryCache
from tests.audio_fixtures import noise, sine, write


@pytest.fixture(scope="module")
def model(minilm_path) -> Retriever:
    return retrieval.load_model(minilm_path, passt="random")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("clips")
    return [write(folder / "tone.wav", sine(440.0, seconds=1.0)),
            write(folder / "hiss.flac", noise(seconds=1.5, rate=44_100), 44_100)]


@pytest.fixture(scope="module")
def audio(model, files) -> np.ndarray:
    return model.encode_files(files)


@pytest.fixture(scope="module")
def tag_cache(tmp_path_factory):
    """One cache of the zero-shot tag embeddings for the models built after `model` (527 names each)."""
    return tmp_path_factory.mktemp("cache")


def make_checkpoint(path, model: Retriever, *, text_model=None,
                    recorded_before=False) -> tuple[str, RetrievalHead]:
    """A trained-like head (random weights, lam 0.8) for `model`'s encoders, saved at `path`; with
    `recorded_before`, as a checkpoint of before a folder's weights were fingerprinted (no revision)."""
    torch.manual_seed(1)
    encoders = text_spec(model.spec, model.text)
    if text_model is not None:
        encoders = replace(encoders, text_model=text_model)
    if recorded_before:
        encoders = replace(encoders, text_model_revision=None)
    head = RetrievalHead(torch.randn(527, model.spec.dim), lam=0.8)
    return save_checkpoint(path, Checkpoint(head, encoders, {})), head


def test_load_model_from_a_folder_puts_files_and_text_in_one_space(model, audio, minilm_path):
    assert retrieval.load_model is load_model and retrieval.Retriever is Retriever
    assert isinstance(model, Retriever) and model.tagger is not None
    assert model.tagger.device == torch.device("cpu")
    assert model.spec.head == "zero-shot" and model.spec.passt_weights == "random"
    assert model.spec.text_model == minilm_path.name and model.spec.dim == 384  # a folder with no manifest
    text = model.encode_text(["a dog barking", "rain on a roof"])
    assert audio.shape == (2, 384) and text.shape == (2, 384)
    assert audio.dtype == text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    scores = text @ audio.T  # cosine similarities
    assert scores.shape == (2, 2) and np.all(np.abs(scores) <= 1.0 + 1e-5)


def test_encode_files_is_the_projection_of_each_files_mean_logits(model, audio, files):
    logits = np.stack([extract(path, model.tagger).logits for path in files])  # (2, 527), one file each
    np.testing.assert_allclose(audio, model.project(logits), atol=1e-5)
    np.testing.assert_allclose(model.encode_files(files[::-1], batch_files=1), audio[::-1], atol=1e-5)
    assert model.encode_files([]).shape == (0, 384)


def test_encode_files_refuses_one_path_and_names_a_file_that_is_not_audio(model, files, tmp_path):
    with pytest.raises(TypeError, match="paths are a list, not one path"):
        model.encode_files(files[0])
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AudioDecodeError, match="notes.wav"):
        model.encode_files([tmp_path / "notes.wav"])


def test_encode_text_is_the_text_models_embedding_through_the_head(model, text_encoder):
    got = model.encode_text(["a dog barking"])
    t = torch.from_numpy(text_encoder.encode(["a dog barking"]))
    want = torch.nn.functional.normalize(torch.nn.functional.layer_norm(t, (384,)), dim=-1)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_a_checkpoint_path_is_honoured(model, files, minilm_path, tmp_path):
    sha, head = make_checkpoint(tmp_path / "head.safetensors", model)
    trained = load_model(minilm_path, passt="random", checkpoint=tmp_path / "head.safetensors",
                         with_audio=False)
    assert trained.tagger is None and trained.spec.head == sha and trained.spec.lam == 0.8
    assert trained.spec.encoders() == model.spec.encoders()
    logits = np.random.default_rng(0).normal(size=(3, 527)).astype(np.float32)
    with torch.no_grad():
        want = head.eval().encode_audio(torch.from_numpy(logits)).numpy()
    np.testing.assert_allclose(trained.project(logits), want, atol=1e-6)
    assert not np.allclose(trained.project(logits), model.project(logits), atol=1e-3)
    with pytest.raises(ModelNotFound, match="without its PaSST tagger"):
        trained.encode_files(files)

    make_checkpoint(tmp_path / "other.safetensors", model, text_model="another-text-model")
    with pytest.raises(CheckpointMismatch, match="text_model"):
        load_model(minilm_path, passt="random", checkpoint=tmp_path / "other.safetensors", with_audio=False)


def test_paths_that_are_not_there_say_so(model, minilm_path, tmp_path, tag_cache):
    with pytest.raises(ModelNotFound, match=r"no sentence-transformers model at .*nowhere \(no such fold"):
        load_model(tmp_path / "nowhere", passt="random")
    with pytest.raises(ModelNotFound, match="checkpoint not found: .*gone.safetensors"):
        load_model(minilm_path, passt="random", checkpoint=tmp_path / "gone.safetensors", text=model.text)
    with pytest.raises(ModelNotFound, match="PaSST weights not found at .*gone.pt"):
        load_model(minilm_path, passt=tmp_path / "gone.pt", text=model.text, cache_dir=tag_cache)
    # text only: no PaSST is built, and weights not there are not recorded (a store's record stands)
    text_only = load_model(minilm_path, passt=tmp_path / "gone.pt", text=model.text, cache_dir=tag_cache,
                           with_audio=False)
    assert text_only.tagger is None and text_only.spec.passt_weights is None
    with pytest.raises(TypeError, match="passt"):
        load_model(minilm_path)  # type: ignore[call-arg]  # no silent random weights


def test_the_parts_built_elsewhere_are_used_as_they_are(model, minilm_path, tag_cache):
    r = load_model(minilm_path, passt="random", text=model.text, tagger=model.tagger, cache_dir=tag_cache,
                   query_cache_size=3)
    assert r.tagger is model.tagger and r.spec == model.spec
    assert isinstance(r.text, QueryCache) and r.text.encoder is model.text and r.text.size == 3
    assert list(tag_cache.glob("tag-text-*.safetensors"))  # the zero-shot tag embeddings, kept
    np.testing.assert_allclose(r.encode_text(["rain"]), model.encode_text(["rain"]), atol=1e-6)


def test_the_service_builds_its_model_through_load_model(model, audio, files, settings, monkeypatch):
    from app import compose

    calls = []
    monkeypatch.setattr(compose, "load_model", lambda *a, **kw: calls.append(kw) or load_model(*a, **kw))
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the cache is kept in a data directory there
    served = build_retriever(settings)  # its own text encoder and random PaSST, as the settings say
    assert len(calls) == 1 and calls[0]["passt"] == "random" and calls[0]["device"] == "cpu"
    assert served.spec == model.spec and served.spec.id == model.spec.id
    assert isinstance(served.text, QueryCache) and served.text.size == settings.query_cache_size
    assert list((settings.data_dir / "cache").glob("tag-text-*.safetensors"))
    np.testing.assert_allclose(served.encode_files(files), audio, atol=1e-5)
    queries = ["a dog barking", "a high pitched tone"]
    np.testing.assert_allclose(served.encode_text(queries), model.encode_text(queries), atol=1e-6)


def test_the_service_with_a_checkpoint_is_the_library_with_that_checkpoint(model, settings, minilm_path,
                                                                            tmp_path):
    make_checkpoint(tmp_path / "head.safetensors", model)
    configured = settings.model_copy(update={"checkpoint": tmp_path / "head.safetensors"})
    served = build_retriever(configured, with_audio=False)
    library = load_model(minilm_path, passt="random", checkpoint=tmp_path / "head.safetensors",
                         with_audio=False)
    assert served.spec == library.spec and served.tagger is None
    logits = np.random.default_rng(1).normal(size=(2, 527)).astype(np.float32)
    np.testing.assert_allclose(served.project(logits), library.project(logits), atol=1e-6)


def test_a_folder_without_a_manifest_is_one_model_to_the_service_and_the_library(minilm_path, tmp_path):
    """A text model copied by hand (no `retrieval-model.json`) is named once, by its folder: a checkpoint the
    service made opens in the library given the same folder, and the other way round."""
    models = tmp_path / "models"
    shutil.copytree(minilm_path, models / "minilm")
    settings = Settings(data_dir=tmp_path / "data", models_dir=models, text_model="minilm",
                        passt_weights="random", device="cpu", text_backend="torch")
    served = build_retriever(settings, with_audio=False)
    make_checkpoint(tmp_path / "served.safetensors", served)
    library = load_model(models / "minilm", passt="random", checkpoint=tmp_path / "served.safetensors",
                         with_audio=False)
    assert library.spec.encoders() == served.spec.encoders()
    assert library.text.model_id == served.text.model_id == "minilm"
    assert library.text.revision == served.text.revision and library.text.revision.startswith("weights-")
    make_checkpoint(tmp_path / "library.safetensors", library)
    reopened = build_retriever(settings.model_copy(update={"checkpoint": tmp_path / "library.safetensors"}),
                               with_audio=False, text=served.text.encoder)
    assert reopened.spec.encoders() == library.spec.encoders()
    for before in (str(models / "minilm"), "minilm"):  # what the library and the service recorded before
        make_checkpoint(tmp_path / "before.safetensors", library, text_model=before, recorded_before=True)
        load_model(models / "minilm", passt="random", checkpoint=tmp_path / "before.safetensors",
                   text=library.text, with_audio=False)


def test_import_retrieval_loads_no_torch():
    code = "import sys, retrieval; assert 'torch' not in sys.modules; " \
           "assert {'load_model', 'Retriever'} <= set(dir(retrieval)); assert 'torch' not in sys.modules; " \
           "retrieval.load_model; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
