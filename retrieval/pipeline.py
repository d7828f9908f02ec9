"""The whole model: decoded audio or text in, unit vectors of one shared space out."""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from retrieval.checkpoint import Checkpoint, HeadConfig, load_checkpoint, zero_shot
from retrieval.device import resolve_device
from retrieval.labels import audioset_labels, top_tags
from retrieval.settings import Settings
from retrieval.tagger import RANDOM_WEIGHTS, PasstTagger
from retrieval.text import TextEncoder

log = logging.getLogger(__name__)
MANIFEST = "retrieval-model.json"


def tag_text_embeddings(text: TextEncoder) -> torch.Tensor:
    """(527, D) embeddings of the AudioSet names, as is (no caption cleaning)."""
    return torch.from_numpy(text.encode(list(audioset_labels()), clean=False))


def cached_tag_text_embeddings(text: TextEncoder, settings: Settings) -> torch.Tensor:
    """The tag-name embeddings, kept in the data directory: encoding 527 names costs seconds on a CPU at
    every start otherwise. The key is the text model's identity and its weights file's size and time.
    They are always the fp32 model's: with an int8 query encoder they are computed by the fp32 export of
    the same folder, so the zero-shot model (and the index's vectors) do not depend on the query precision."""
    from safetensors.torch import load_file, save_file

    from retrieval.text_onnx import source_stamp

    folder = settings.models_path(settings.text_model)
    stamp = source_stamp(folder) if folder.is_dir() else {}
    key = hashlib.sha256(json.dumps({**text.describe(), **stamp}, sort_keys=True).encode()).hexdigest()[:16]
    path = settings.data_dir / "cache" / f"tag-text-{key}.safetensors"
    if path.is_file():
        try:
            E = load_file(str(path))["tag_text"]
            if E.shape == (len(audioset_labels()), text.dim):
                return E
        except Exception as e:  # a damaged cache file is only a cache: recompute it
            log.warning("recomputing the tag-name embeddings: %s is unreadable (%s)", path, e)
    E = tag_text_embeddings(_full_precision(text, settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"tag_text": E.contiguous()}, str(tmp))
    tmp.replace(path)
    return E


def _full_precision(text: TextEncoder, settings: Settings) -> TextEncoder:
    """`text` itself, or the fp32 ONNX encoder of the same model when `text` is a lower-precision one."""
    if getattr(text, "precision", "fp32") == "fp32":
        return text
    from retrieval.text_onnx import OnnxTextEncoder

    log.info("encoding the tag names with the fp32 export (the query encoder is %s)", text.precision)
    return OnnxTextEncoder.load(settings.models_path(settings.text_model), model_id=text.model_id,
                                revision=text.revision, onnx_path=_onnx_path(settings))


def _onnx_path(settings: Settings) -> Path:
    """Where the fp32 export of the text model is cached: the data directory is writable where the models
    directory may not be (read-only in the container). The int8 copy sits beside it."""
    name = settings.models_path(settings.text_model).name
    return settings.data_dir / "cache" / "onnx" / f"{name}-fp32.onnx"


class Retriever:
    """PaSST tagger + head + text encoder; checks at construction that the three belong together."""

    def __init__(self, tagger: PasstTagger, text: TextEncoder, ckpt: Checkpoint):
        ckpt.config.check_against(text=text.describe(), tagger=tagger.describe())
        self.tagger = tagger
        self.text = text
        self.ckpt = ckpt
        self.head = ckpt.head.to("cpu").eval()

    @property
    def fingerprint(self) -> dict:
        """What the vectors depend on: an index refuses vectors of another fingerprint."""
        return {"head": self.ckpt.fingerprint, **self.text.describe(), **self.tagger.describe()}

    @property
    def fingerprint_id(self) -> str:
        blob = json.dumps(self.fingerprint, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def logits(self, wave: np.ndarray) -> np.ndarray:
        """(n,) samples -> (527,) PaSST logits."""
        return self.tagger.logits(wave)

    @torch.inference_mode()
    def project(self, logits: np.ndarray) -> np.ndarray:
        """(N, 527) logits -> (N, D) unit vectors through the head and the tag fusion."""
        x = torch.as_tensor(np.asarray(logits, dtype=np.float32)).reshape(-1, self.head.n_tags)
        return self.head.encode_audio(x).numpy()

    def encode_audio(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) samples -> ((D,) vector, (527,) logits)."""
        logits = self.logits(wave)
        return self.project(logits[None])[0], logits

    @torch.inference_mode()
    def encode_text(self, queries: list[str]) -> np.ndarray:
        """(M,) queries -> (M, D) unit vectors in the audio space."""
        emb = torch.from_numpy(self.text.encode(queries))
        return self.head.encode_text(emb).numpy()

    def top_tags(self, logits: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        return top_tags(logits, k)


def load_text_encoder(settings: Settings) -> TextEncoder:
    """The configured text model on the configured backend (ONNX Runtime runs on CPU only)."""
    path = settings.models_path(settings.text_model)
    manifest = path / MANIFEST
    meta = json.loads(manifest.read_text()) if manifest.is_file() else {}
    model_id, revision = meta.get("model_id", settings.text_model), meta.get("revision")
    if settings.text_backend == "onnx" and resolve_device(settings.device).type == "cpu":
        from retrieval.text_onnx import OnnxTextEncoder

        return OnnxTextEncoder.load(path, model_id=model_id, revision=revision,
                                    onnx_path=_onnx_path(settings), precision=settings.text_precision)
    if settings.text_backend == "onnx":
        log.warning("text_backend=onnx runs on CPU only; using torch on %s", settings.device)
    if settings.text_precision != "fp32":
        log.warning("text_precision=%s applies to the onnx backend only; the torch encoder runs fp32",
                    settings.text_precision)
    return TextEncoder.load(path, model_id=model_id, revision=revision, device=settings.device)


def load_tagger(settings: Settings) -> PasstTagger:
    weights = settings.passt_weights
    if weights != RANDOM_WEIGHTS:
        weights = str(settings.models_path(weights))
    return PasstTagger.load(weights, device=settings.device, batch_windows=settings.batch_windows)


def build_retriever(settings: Settings, *, tagger: PasstTagger | None = None,
                    text: TextEncoder | None = None) -> Retriever:
    """Everything from the settings: the configured checkpoint, or the zero-shot model without one."""
    text = text or load_text_encoder(settings)
    tagger = tagger or load_tagger(settings)
    if settings.checkpoint is not None:
        ckpt = load_checkpoint(settings.checkpoint)
    else:
        cfg = HeadConfig(text_model=text.model_id, text_model_revision=text.revision, dim=text.dim,
                         passt_arch=tagger.arch, windowing=tagger.windowing.as_dict())
        ckpt = zero_shot(cached_tag_text_embeddings(text, settings), cfg)
    log.info("serving model %s", ckpt.fingerprint)
    return Retriever(tagger, text, ckpt)
