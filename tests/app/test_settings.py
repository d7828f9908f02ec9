"""The settings: read from RETRIEVAL_* by the composition root, and refused at start when they contradict
each other, with a message naming the settings."""

import logging
import os

import pytest
import torch
from pydantic import ValidationError

from app import compose
from app.compose import SettingsError, audio_limits, load_settings, store_config
from app.settings import Settings, configure_logging
from retrieval.errors import RetrievalError
from retrieval.load import with_query_cache
from retrieval.query_cache import QueryCache

# each contradiction: the settings, and every setting its message must name
CONTRADICTIONS = {
    "int8 text on torch": ({"text_precision": "int8", "text_backend": "torch"},
                           ["RETRIEVAL_TEXT_PRECISION=int8", "RETRIEVAL_TEXT_BACKEND"]),
    "int8 text with auto on cuda": ({"text_precision": "int8", "device": "cuda"},
                                    ["RETRIEVAL_TEXT_PRECISION=int8", "RETRIEVAL_TEXT_BACKEND=auto",
                                     "RETRIEVAL_DEVICE=cuda"]),
    "onnx on cuda": ({"text_backend": "onnx", "device": "cuda"},
                     ["RETRIEVAL_TEXT_BACKEND=onnx", "RETRIEVAL_DEVICE=cuda"]),
    "onnx on cuda:1": ({"text_backend": "onnx", "device": "cuda:1"},
                       ["RETRIEVAL_TEXT_BACKEND=onnx", "RETRIEVAL_DEVICE=cuda:1"]),
    "fp16 PaSST on cpu": ({"passt_precision": "fp16", "device": "cpu"},
                          ["RETRIEVAL_PASST_PRECISION=fp16", "RETRIEVAL_DEVICE=cpu"]),
    "qdrant url with faiss": ({"store_backend": "faiss", "qdrant_url": "http://qdrant:6333"},
                              ["RETRIEVAL_QDRANT_URL", "RETRIEVAL_STORE_BACKEND=faiss"]),
    "qdrant key without a server": ({"store_backend": "qdrant", "qdrant_api_key": "k"},
                                    ["RETRIEVAL_QDRANT_API_KEY", "RETRIEVAL_QDRANT_URL"]),
    "hnsw with qdrant": ({"store_backend": "qdrant", "index_kind": "hnsw"},
                         ["RETRIEVAL_INDEX_KIND=hnsw", "RETRIEVAL_STORE_BACKEND=qdrant"]),
    "flat16 with qdrant": ({"store_backend": "qdrant", "index_kind": "flat16"},
                           ["RETRIEVAL_INDEX_KIND=flat16", "RETRIEVAL_STORE_BACKEND=qdrant"]),
    "ivf16 with qdrant": ({"store_backend": "qdrant", "index_kind": "ivf16"},
                          ["RETRIEVAL_INDEX_KIND=ivf16", "RETRIEVAL_STORE_BACKEND=qdrant"]),
    "int8 windows with faiss": ({"qdrant_window_quantization": "int8"},
                                ["RETRIEVAL_QDRANT_WINDOW_QUANTIZATION=int8",
                                 "RETRIEVAL_STORE_BACKEND=faiss"]),
    "moment window without hop": ({"moment_window_s": "2"}, ["RETRIEVAL_MOMENT_WINDOW_S",
                                                            "RETRIEVAL_MOMENT_HOP_S"]),
    "moment hop longer than window": ({"moment_window_s": "2", "moment_hop_s": "3"},
                                      ["RETRIEVAL_MOMENT_HOP_S=3.0", "RETRIEVAL_MOMENT_WINDOW_S=2.0"]),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("RETRIEVAL_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("case", CONTRADICTIONS)
def test_each_contradiction_is_refused_at_construction_naming_the_settings(case):
    values, names = CONTRADICTIONS[case]
    with pytest.raises(ValidationError) as e:
        Settings(**values)
    for name in names:
        assert name in str(e.value), (case, name, str(e.value))


@pytest.mark.parametrize("case", CONTRADICTIONS)
def test_load_settings_wraps_them_as_a_settings_error(case, monkeypatch):
    values, names = CONTRADICTIONS[case]
    for key, value in values.items():
        monkeypatch.setenv(f"RETRIEVAL_{key.upper()}", value)
    with pytest.raises(SettingsError, match="invalid configuration") as e:
        load_settings()
    assert isinstance(e.value, RetrievalError)
    for name in names:
        assert name in str(e.value)


def test_every_contradiction_at_once_is_listed():
    with pytest.raises(ValidationError) as e:
        Settings(text_precision="int8", text_backend="torch", passt_precision="fp16", device="cpu",
                 qdrant_url="http://q:6333")
    msg = str(e.value)
    assert "RETRIEVAL_TEXT_PRECISION" in msg and "RETRIEVAL_PASST_PRECISION" in msg
    assert "RETRIEVAL_QDRANT_URL" in msg


@pytest.mark.parametrize("values", [
    {},
    {"text_backend": "onnx", "text_precision": "int8"},
    {"text_precision": "int8", "device": "cpu"},  # auto runs ONNX on the CPU
    {"text_precision": "int8"},  # device auto: decided when the encoder is built
    {"text_backend": "onnx", "device": "cpu"},
    {"passt_precision": "fp16", "device": "cuda"},
    {"passt_precision": "fp16", "device": "auto"},  # decided when the tagger is built
    {"passt_precision": "bf16", "device": "cpu"},
    {"store_backend": "qdrant", "qdrant_url": "http://qdrant:6333"},
    {"store_backend": "qdrant"},  # embedded; the default index_kind (auto) is FAISS's and goes unused
    {"store_backend": "qdrant", "index_kind": "auto"},  # as compose passes it: FAISS's default, unused
    {"store_backend": "qdrant", "index_kind": "flat"},  # exact: what the tests and older setups name
    {"store_backend": "qdrant", "qdrant_window_quantization": "int8"},
    {"store_backend": "faiss", "index_kind": "hnsw"},
    {"qdrant_url": ""},  # compose passes an empty variable for "unset"
])
def test_consistent_settings_are_accepted(values):
    """Kept as given, every other setting at its default (an empty Qdrant URL is no URL)."""
    expected = {**Settings().model_dump(), **values, "qdrant_url": values.get("qdrant_url") or None}
    assert Settings(**values).model_dump() == expected


def test_load_settings_reads_the_environment_with_overrides_on_top(monkeypatch, tmp_path):
    monkeypatch.setenv("RETRIEVAL_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("RETRIEVAL_PASST_PRECISION", "bf16")
    s = load_settings()
    assert s.data_dir == tmp_path / "env" and s.passt_precision == "bf16"
    s = load_settings(data_dir=tmp_path / "arg", passt_precision=None)  # None: not overridden
    assert s.data_dir == tmp_path / "arg" and s.passt_precision == "bf16"
    monkeypatch.setenv("RETRIEVAL_PASST_PRECISION", "fp8")
    with pytest.raises(SettingsError, match="passt_precision"):
        load_settings()


def test_store_and_audio_settings_become_their_configs(tmp_path):
    s = Settings(data_dir=tmp_path, index_kind="hnsw", search_threads=3, max_duration_s=12.5, max_channels=2)
    cfg = store_config(s)
    assert (cfg.data_dir, cfg.backend, cfg.index_kind, cfg.search_threads) == (tmp_path, "faiss", "hnsw", 3)
    assert cfg.qdrant_url is None and cfg.qdrant_window_quantization == "none"
    quantized = store_config(Settings(data_dir=tmp_path, store_backend="qdrant",
                                      qdrant_window_quantization="int8"))
    assert quantized.qdrant_window_quantization == "int8"
    limits = audio_limits(s)
    assert (limits.max_duration_s, limits.max_channels) == (12.5, 2)
    assert compose.moment_windowing(s) is None  # moments of the PaSST windows
    fine = compose.moment_windowing(Settings(moment_window_s=2.0, moment_hop_s=1.0))
    assert fine is not None and (fine.window, fine.hop, fine.pad) == (64_000, 32_000, 32_000)


def test_the_defaults_are_onnx_fp32_and_auto_on_cpu_and_torch_on_cuda(monkeypatch, minilm_path, tmp_path):
    built = []
    monkeypatch.setattr("retrieval.text_onnx.OnnxTextEncoder.load",
                        lambda path, **kw: built.append(("onnx", kw["precision"])))
    monkeypatch.setattr(compose.TextEncoder, "load", lambda path, **kw: built.append(("torch", kw["device"])))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s = Settings(text_model=str(minilm_path), data_dir=tmp_path)
    assert (s.text_backend, s.text_precision, s.index_kind, s.device) == ("auto", "fp32", "auto", "auto")
    assert compose.text_backend(s) == "onnx" and store_config(s).index_kind == "auto"  # flat16 below 1M
    compose.load_text_encoder(s)
    assert built == [("onnx", "fp32")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the same settings on a CUDA machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert compose.text_backend(s) == "torch"
    assert compose.text_backend(s.model_copy(update={"device": "cpu"})) == "onnx"
    assert compose.text_backend(s.model_copy(update={"device": "cuda:0"})) == "torch"
    compose.load_text_encoder(s)
    assert built[-1] == ("torch", "auto")
    # explicit choices win over auto
    assert compose.text_backend(s.model_copy(update={"text_backend": "torch", "device": "cpu"})) == "torch"
    assert compose.text_backend(s.model_copy(update={"text_backend": "onnx", "device": "cpu"})) == "onnx"


def test_indexing_threads_are_capped_beside_a_gpu_and_torch_s_own_on_the_cpu(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert compose.index_threads(Settings()) is None  # the CPU: torch's one thread a core
    assert compose.index_threads(Settings(index_threads=3)) == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the same settings on a CUDA machine
    assert compose.index_threads(Settings(), cores=16) == compose.CUDA_INDEX_THREADS == 4
    assert compose.index_threads(Settings(), cores=2) == 2
    assert compose.index_threads(Settings(device="cpu"), cores=16) is None
    assert compose.index_threads(Settings(index_threads=16), cores=16) == 16  # asked for: kept
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert compose.index_threads(Settings(), cores=16) is None  # the environment's choice is kept
    assert compose.index_threads(Settings(index_threads=2), cores=16) == 2
    with pytest.raises(ValidationError):
        Settings(index_threads=-1)


def test_index_add_runs_torch_with_the_indexing_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        compose.use_index_threads(Settings(index_threads=1))
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        compose.use_index_threads(Settings())  # torch's own default: left as it is
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_load_settings_defaults_from_an_empty_environment(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s = load_settings()
    assert (s.text_backend, s.index_kind) == ("auto", "auto") and compose.text_backend(s) == "onnx"


def test_queries_go_through_one_cache_sized_by_the_setting(monkeypatch, retriever, text_encoder):
    # the service's retriever (build_retriever's) encodes queries through the cache
    assert isinstance(retriever.text, QueryCache) and retriever.text.encoder is text_encoder
    assert retriever.text.size == Settings().query_cache_size == 1024
    sizes = []  # build_retriever hands the setting to load_model, whose with_query_cache wraps the encoder
    monkeypatch.setattr(compose, "load_model", lambda *a, **kw: sizes.append(kw["query_cache_size"]))
    for size in ("3", "0"):
        monkeypatch.setenv("RETRIEVAL_QUERY_CACHE_SIZE", size)
        compose.build_retriever(load_settings(), text=text_encoder, with_audio=False)
    assert sizes == [3, 0]
    cached = with_query_cache(text_encoder, 3)
    assert isinstance(cached, QueryCache) and cached.size == 3 and cached.encoder is text_encoder
    assert with_query_cache(text_encoder, 0) is text_encoder  # 0 disables it: the encoder itself
    monkeypatch.setenv("RETRIEVAL_QUERY_CACHE_SIZE", "-1")
    with pytest.raises(SettingsError, match="query_cache_size"):
        load_settings()


@pytest.mark.parametrize(("name", "words"), [("sfx-windows", "ends as the names"),
                                             ("sfx-g2", "ends as the names"), ("sfx-restoring", "-restoring"),
                                             ("a/b", "no collection name"),
                                             ("", "no collection name")])
def test_a_qdrant_collection_named_as_another_s_windows_or_generation_is_refused(name, words):
    """`<name>-windows` would be the windows of the collection `<name>` (whose windows collection, made on
    open, replaced it), `<name>-g<N>` one of its generations."""
    with pytest.raises(ValidationError, match=words):
        Settings(qdrant_collection=name)
    assert Settings(qdrant_collection="music.v2-takes").qdrant_collection == "music.v2-takes"


def test_an_empty_variable_is_unset_and_a_bad_list_or_an_infinite_number_is_said(monkeypatch):
    """Compose passes `RETRIEVAL_X=` for what the operator leaves out: a path read as "" named the current
    folder (`checkpoint not found: .`). A list that is not JSON was a 21-frame traceback."""
    for key in ("CHECKPOINT", "PASST_WEIGHTS", "TEXT_MODEL", "API_KEY", "QDRANT_URL", "MAX_DURATION_S"):
        monkeypatch.setenv(f"RETRIEVAL_{key}", "")
    settings = load_settings()
    assert settings.checkpoint is None and settings.api_key is None and settings.qdrant_url is None
    assert (settings.passt_weights, settings.text_model, settings.max_duration_s) == (
        Settings().passt_weights, Settings().text_model, Settings().max_duration_s)
    monkeypatch.setenv("RETRIEVAL_CORS_ORIGINS", "https://example.org")
    with pytest.raises(SettingsError, match=r"cors_origins.*a list is written as JSON"):
        load_settings()
    monkeypatch.setenv("RETRIEVAL_CORS_ORIGINS", '["https://example.org"]')
    assert load_settings().cors_origins == ["https://example.org"]
    for value in ("inf", "nan", "-inf"):
        monkeypatch.setenv("RETRIEVAL_MAX_DURATION_S", value)
        with pytest.raises(SettingsError, match="max_duration_s: Input should be a finite number"):
            load_settings()


@pytest.mark.parametrize("given", [
    {"store_backend": "qdrant", "qdrant_url": "http://qdrant:6333", "qdrant_api_key": "k"},
    {"store_backend": "qdrant"},
    {"store_backend": "faiss", "window_index_kind": "ivf16", "ivf_nprobe": 8, "index_kind": "hnsw"},
    {"api_key": "s3cret", "protect_reads": True, "max_upload_bytes": 2048},
])
def test_the_ingest_workers_process_makes_the_same_settings(given, tmp_path):
    """The worker process is given the service's settings and makes them again: every value dumped read as
    set explicitly, so a Qdrant server's store had faiss-only settings refused and its worker died at start
    (uploads acknowledged, never tagged)."""
    settings = Settings(data_dir=tmp_path, **given)
    again = Settings(**settings.as_given())
    assert again == settings and again.model_fields_set == settings.model_fields_set


def test_an_override_that_is_no_setting_is_refused_naming_the_one_meant():
    """`load_settings(datadir=...)` dropped the misspelt keyword: the collection went to ./data unsaid."""
    with pytest.raises(TypeError, match="no setting named 'datadir' \\(did you mean 'data_dir'\\?\\)"):
        load_settings(datadir="/tmp/mine")
    with pytest.raises(TypeError, match="'colour'$"):
        load_settings(colour="blue")


@pytest.mark.parametrize(("level", "loader"), [(logging.INFO, logging.WARNING),
                                              (logging.DEBUG, logging.NOTSET)])
def test_the_commands_and_the_ingest_worker_log_alike(monkeypatch, level, loader):
    """One logging set-up for the commands and the service's ingest worker process (which logged FAISS's
    loader's "Could not load library ..." lines the commands hide): the loader is quiet unless debugging."""
    monkeypatch.setattr(logging.getLogger("faiss.loader"), "level", logging.NOTSET)
    configure_logging(level)
    assert logging.getLogger("faiss.loader").level == loader
