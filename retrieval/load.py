"""The library's entry point: the whole model from explicit arguments, in the shape of open_clip's
``create_model(name, pretrained=..., device=...)``::

    import retrieval

    model = retrieval.load_model("models/all-mpnet-base-v2", passt="models/passt.pt", device="auto")
    audio = model.encode_files(["rain.wav", "dog.wav"])  # (2, D) unit vectors
    text = model.encode_text(["a dog barking"])  # (1, D)

:func:`load_model` is the one place the model is assembled. The service and the command line reach it through
the composition root (:func:`app.compose.build_retriever`), which reads the settings and hands over the parts
it builds its own way (the ONNX query encoder, a PaSST tagger of the configured batch and precision), the
data directory's cache and the query cache's size.
"""

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from retrieval.checkpoint import load_checkpoint, zero_shot
from retrieval.config import PASST_FILENAME
from retrieval.contracts import SentenceEncoder, Tagger
from retrieval.durable import sha256_file
from retrieval.model_spec import RANDOM_WEIGHTS, ModelSpec
from retrieval.pipeline import Retriever, cached_tag_text_embeddings, text_spec
from retrieval.query_cache import QueryCache
from retrieval.tagger import OFFICIAL_WEIGHTS, PasstTagger
from retrieval.text import TextEncoder

log = logging.getLogger(__name__)


def weights_identity(weights: str | Path) -> str | None:
    """What a spec records of PaSST weights: ``random``; the sha256 of a weights file (from the record that
    `retrieval models fetch` writes beside it when its size matches, else hashed); None for ``official`` or a
    file that is not there (building the tagger then says so)."""
    if str(weights) == RANDOM_WEIGHTS:
        return RANDOM_WEIGHTS
    path = Path(weights).expanduser()
    if str(weights) == OFFICIAL_WEIGHTS or not path.is_file():
        return None
    record = path.with_name(f"{path.name}.json")
    if path.name == PASST_FILENAME and record.is_file():
        recorded = json.loads(record.read_text())
        if recorded.get("size") == path.stat().st_size and recorded.get("sha256"):
            return str(recorded["sha256"])
    return sha256_file(path)


def weights_spec(weights: str | Path) -> ModelSpec:
    """The PaSST part of the model: the method's architecture and windowing, these weights."""
    return ModelSpec(passt_weights=weights_identity(weights))


def with_query_cache(text: SentenceEncoder, size: int) -> SentenceEncoder:
    """`text` behind a cache of the vectors of its `size` most recent sentences; `text` itself for 0."""
    return QueryCache(text, size=size) if size else text


def tag_embeddings(text: SentenceEncoder, text_model: str | Path, *, cache_dir: str | Path | None = None,
                   full_precision: Callable[[], SentenceEncoder] | None = None) -> torch.Tensor:
    """(527, D) the AudioSet names by the fp32 text model (the zero-shot head's tag embeddings), kept in
    `cache_dir` when one is given, keyed by the model's identity and its folder's weights file."""
    stamp: dict = {}
    folder = Path(text_model).expanduser()
    if cache_dir is not None and folder.is_dir():
        from retrieval.text_onnx import source_stamp

        stamp = source_stamp(folder)
    return cached_tag_text_embeddings(text, cache_dir=None if cache_dir is None else Path(cache_dir),
                                      stamp=stamp, full_precision=full_precision)


def load_model(text_model: str | Path, *, passt: str | Path, checkpoint: str | Path | None = None,
               device: str = "cpu", with_audio: bool = True, text: SentenceEncoder | None = None,
               tagger: Tagger | None = None, cache_dir: str | Path | None = None,
               full_precision: Callable[[], SentenceEncoder] | None = None,
               query_cache_size: int = 0) -> Retriever:
    """The retrieval model: `text_model`'s sentence space, `checkpoint`'s head (the zero-shot model without
    one) and, `with_audio`, PaSST with the weights `passt`.

    text_model: a folder holding a sentence-transformers model (what `retrieval models fetch` installs),
    named by its manifest, else by its folder's name (:func:`retrieval.text.read_identity`, as the service).
    passt: a PaSST weights file, ``"official"`` (hear21passt downloads them) or ``"random"`` (untrained
    weights, for tests only); required, so that random weights are never taken by default.
    checkpoint: a head checkpoint (``retrieval train``); None: the zero-shot model (the tag names alone).
    device: ``"cpu"``, ``"cuda[:N]"`` or ``"auto"`` (CUDA when present).
    with_audio: False builds no PaSST: the model encodes text and projects logits only.

    The other arguments hand over parts built elsewhere (the composition root's): `text`, an encoder of
    `text_model` used as it is (ONNX Runtime, say); `tagger`, a PaSST tagger whose spec names the weights;
    `cache_dir`, where the zero-shot tag embeddings are kept between loads; `full_precision`, the fp32 model
    of a lower-precision `text` (the tag names are always encoded in fp32); `query_cache_size`, the queries
    whose vectors :meth:`Retriever.encode_text` remembers (0: none).

    Raises ModelNotFound when a file or folder is not there (or the text model's folder lacks one of its
    files: :func:`retrieval.text.require_model_folder`), CheckpointMismatch when the parts do not
    belong together (a head trained with another text model or PaSST).
    """
    folder = Path(text_model).expanduser()
    if text is None:
        text = TextEncoder.load(folder, device=device)
    spec = tagger.spec if tagger is not None else weights_spec(passt)
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
    else:
        tags = tag_embeddings(text, folder, cache_dir=cache_dir, full_precision=full_precision)
        ckpt = zero_shot(tags, text_spec(spec, text))
    if tagger is None and with_audio:
        tagger = PasstTagger.load(passt, spec=spec, device=device)
    retriever = Retriever(with_query_cache(text, query_cache_size), ckpt, passt=spec, tagger=tagger)
    log.info("model %s (head %s)", retriever.spec.id, retriever.spec.head)
    return retriever
