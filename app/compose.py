"""The composition root: the one place that reads the settings and turns them into objects.

`app/` (the service) and `cli/` (the command line) build everything through these functions; the library
below (`retrieval/`, `index/`, `training/`) takes explicit arguments and never sees the settings.
"""

import difflib
import logging
import os
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError as PydanticSettingsError

from app.settings import Settings
from index.collection import Collection
from index.layout import CACHE_DIR, shard_ledger
from index.stores import StoreConfig, open_store
from retrieval.config import Windowing
from retrieval.contracts import SentenceEncoder
from retrieval.device import resolve_device
from retrieval.errors import RetrievalError
from retrieval.extract import AudioLimits
from retrieval.load import load_model, weights_spec
from retrieval.load import tag_embeddings as library_tag_embeddings
from retrieval.model_spec import RANDOM_WEIGHTS, ModelSpec
from retrieval.pipeline import Retriever
from retrieval.tagger import OFFICIAL_WEIGHTS, PasstTagger
from retrieval.text import TextEncoder

log = logging.getLogger(__name__)

CUDA_INDEX_THREADS = 4  # torch CPU threads for indexing beside a GPU (RESULTS.md, section 3)


class SettingsError(RetrievalError):
    """The configuration is invalid or contradicts itself; the message names the settings."""


def load_settings(**overrides) -> Settings:
    """The settings from the environment (RETRIEVAL_*), with `overrides` on top, validated; TypeError for an
    override that is no setting (a misspelt `datadir` was dropped without a word)."""
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        close = {k: difflib.get_close_matches(k, Settings.model_fields, n=1) for k in unknown}
        raise TypeError("load_settings got no setting named " + ", ".join(
            f"{k!r}" + (f" (did you mean {close[k][0]!r}?)" if close[k] else "") for k in unknown))
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}"
                             for err in e.errors())
        raise SettingsError(f"invalid configuration: {problems}") from None
    except PydanticSettingsError as e:  # a list or object variable that is not JSON
        raise SettingsError(f"invalid configuration: {e} (a list is written as JSON: "
                            '\'["https://a.example", "https://b.example"]\')') from None


# -- the parts of the model ------------------------------------------------------------------------------
def passt_weights(settings: Settings) -> str:
    """`random`, `official`, or the absolute path of the configured PaSST checkpoint."""
    weights = settings.passt_weights
    if weights in (RANDOM_WEIGHTS, OFFICIAL_WEIGHTS):
        return weights
    return str(settings.models_path(weights).resolve())


def passt_spec(settings: Settings) -> ModelSpec:
    """The PaSST part of the model: the method's architecture and windowing, the configured weights."""
    return weights_spec(passt_weights(settings))


def load_tagger(settings: Settings, spec: ModelSpec | None = None) -> PasstTagger:
    return PasstTagger.load(passt_weights(settings), spec=spec or passt_spec(settings),
                            device=settings.device, batch_windows=settings.batch_windows,
                            precision=settings.passt_precision)


def text_model_path(settings: Settings) -> Path:
    return settings.models_path(settings.text_model)


def onnx_path(settings: Settings) -> Path:
    """Where the fp32 export of the text model is cached: the data directory is writable where the models
    directory may not be (read-only in the container). The int8 copy sits beside it."""
    return settings.data_dir / CACHE_DIR / "onnx" / f"{text_model_path(settings).name}-fp32.onnx"


def text_backend(settings: Settings) -> str:
    """The query encoder's runtime, `onnx` or `torch`: `auto` (the default) is ONNX Runtime when the device
    resolves to the CPU (3x the torch path at the same top-10, benchmarks/RESULTS.md) and torch on CUDA."""
    if settings.text_backend == "auto":
        return "onnx" if resolve_device(settings.device).type == "cpu" else "torch"
    return settings.text_backend


def load_text_encoder(settings: Settings, *, precision: str | None = None) -> SentenceEncoder:
    """The configured text model on the configured backend (ONNX Runtime runs on CPU only), named as the
    library names it (:func:`retrieval.text.read_identity`), so that what one made the other opens."""
    path = text_model_path(settings)
    backend = text_backend(settings)
    if backend == "onnx" and resolve_device(settings.device).type == "cpu":
        from retrieval.text_onnx import OnnxTextEncoder

        return OnnxTextEncoder.load(path, onnx_path=onnx_path(settings),
                                    precision=precision or settings.text_precision)
    if backend == "onnx":
        log.warning("text_backend=onnx runs on CPU only; using torch on %s", settings.device)
    if (precision or settings.text_precision) != "fp32":
        log.warning("text_precision=%s applies to the ONNX encoder on CPU; using torch fp32 on %s",
                    precision or settings.text_precision, settings.device)
    return TextEncoder.load(path, device=settings.device)


def full_precision_text(settings: Settings) -> SentenceEncoder:
    """The configured text model at fp32 on the configured backend (what the tag names are encoded with)."""
    return load_text_encoder(settings, precision="fp32")


def tag_cache_dir(settings: Settings) -> Path | None:
    """Where the zero-shot tag embeddings are kept: the data directory's cache, once there is a data
    directory (a command refused for want of a collection, or a refused restore, leaves nothing behind)."""
    return settings.data_dir / CACHE_DIR if settings.data_dir.is_dir() else None


def tag_embeddings(settings: Settings, text: SentenceEncoder):
    """The zero-shot tag embeddings of the configured text model, cached in the data directory."""
    return library_tag_embeddings(text, text_model_path(settings), cache_dir=tag_cache_dir(settings),
                                  full_precision=lambda: full_precision_text(settings))


def build_retriever(settings: Settings, *, with_audio: bool = True, tagger: PasstTagger | None = None,
                    text: SentenceEncoder | None = None) -> Retriever:
    """The model the settings describe, through :func:`retrieval.load.load_model`: the configured checkpoint,
    or the zero-shot model without one (its tag embeddings cached in the data directory); PaSST is built
    only `with_audio` (text search, listing, removing and re-projecting never run it), on the configured
    batch and precision. Queries go through the query cache; the tag names do not."""
    text = text or load_text_encoder(settings)
    if tagger is None and with_audio:
        tagger = load_tagger(settings, passt_spec(settings))
    return load_model(text_model_path(settings), passt=passt_weights(settings),
                      checkpoint=settings.checkpoint, device=settings.device, with_audio=with_audio,
                      text=text, tagger=tagger, cache_dir=tag_cache_dir(settings),
                      full_precision=lambda: full_precision_text(settings),
                      query_cache_size=settings.query_cache_size)


# -- the collection --------------------------------------------------------------------------------------
def store_config(settings: Settings) -> StoreConfig:
    return StoreConfig(data_dir=settings.data_dir, backend=settings.store_backend,
                       index_kind=settings.index_kind, search_threads=settings.search_threads,
                       window_index_kind=settings.window_index_kind, ivf_nprobe=settings.ivf_nprobe,
                       qdrant_url=settings.qdrant_url, qdrant_collection=settings.qdrant_collection,
                       qdrant_api_key=None if settings.qdrant_api_key is None
                       else settings.qdrant_api_key.get_secret_value(),
                       qdrant_window_quantization=settings.qdrant_window_quantization)


def audio_limits(settings: Settings) -> AudioLimits:
    """What an upload may be."""
    return AudioLimits(max_duration_s=settings.max_duration_s, max_channels=settings.max_channels,
                       setting="RETRIEVAL_MAX_DURATION_S", channels_setting="RETRIEVAL_MAX_CHANNELS")


def example_limits(settings: Settings) -> AudioLimits:
    """What a search's audio example may be: short, since PaSST runs on it while the client waits."""
    return AudioLimits(max_duration_s=settings.max_example_duration_s, max_channels=settings.max_channels,
                       setting="RETRIEVAL_MAX_EXAMPLE_DURATION_S", channels_setting="RETRIEVAL_MAX_CHANNELS")


def index_limits(settings: Settings) -> AudioLimits:
    """What a file `index add` or the Ray extraction indexes where it lies may be: recordings of hours."""
    return AudioLimits(max_duration_s=settings.max_index_duration_s, max_channels=settings.max_channels,
                       setting="RETRIEVAL_MAX_INDEX_DURATION_S", channels_setting="RETRIEVAL_MAX_CHANNELS")


def index_threads(settings: Settings, *, cores: int | None = None) -> int | None:
    """The torch CPU threads `index add` and `backfill-windows` run with, or None for torch's own default
    (one a core, or OMP_NUM_THREADS): RETRIEVAL_INDEX_THREADS when set; else CUDA_INDEX_THREADS when PaSST
    runs on CUDA, where the CPU only cuts windows and hands them over, and a thread a core leaves the decoding
    process none (an hour-long file 1.3-1.5x slower with 16 than with 1 to 8 on a 16-core GPU machine)."""
    if settings.index_threads:
        return settings.index_threads
    if "OMP_NUM_THREADS" in os.environ or resolve_device(settings.device).type != "cuda":
        return None
    return min(CUDA_INDEX_THREADS, cores or os.cpu_count() or 1)


def use_index_threads(settings: Settings) -> None:
    """Sets torch's CPU threads for indexing in this process (`index_threads`)."""
    n = index_threads(settings)
    if n is not None:
        import torch

        torch.set_num_threads(n)


def moment_windowing(settings: Settings) -> Windowing | None:
    """The finer windows of a second PaSST pass for moments, or None: moments of the PaSST windows."""
    if settings.moment_window_s is None or settings.moment_hop_s is None:
        return None
    return Windowing(window_s=settings.moment_window_s, hop_s=settings.moment_hop_s)


def open_collection(settings: Settings, retriever: Retriever, *, check: bool = True) -> Collection:
    """The collection in the configured data directory and store. check=False accepts a store made with
    another model (only to re-project it)."""
    config = store_config(settings)
    store = open_store(config, retriever.spec, check=check)
    return Collection.open(store, retriever, data_dir=settings.data_dir, limits=audio_limits(settings),
                           moment_windowing=moment_windowing(settings), store_name=config.name)


def ledger_path(settings: Settings) -> Path:
    """Where the shards loaded into the configured store are remembered (one ledger per store)."""
    return shard_ledger(settings.data_dir, store_config(settings).name)
