"""The self-describing head checkpoint: one safetensors file with weights, tag embeddings and config.

Tensors: the head's state dict (``audio_norm.*``, ``audio_proj.*``, ``tag_embeddings``).
Metadata (strings): ``format`` = ``retrieval-head/1``, ``config`` (JSON of :class:`HeadConfig`),
``metrics`` (JSON, validation figures of the training run).
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from retrieval.config import DEFAULT_LAMBDA, N_TAGS, PASST_ARCH, Windowing
from retrieval.errors import CheckpointMismatch, ModelNotFound
from retrieval.head import RetrievalHead

FORMAT = "retrieval-head/1"
ZERO_SHOT = "zero-shot"


@dataclass(frozen=True)
class HeadConfig:
    text_model: str
    text_model_revision: str | None
    dim: int
    lam: float = DEFAULT_LAMBDA
    n_tags: int = N_TAGS
    passt_arch: str = PASST_ARCH
    windowing: dict = field(default_factory=lambda: Windowing().as_dict())

    def check_against(self, *, text: dict, tagger: dict) -> None:
        """Refuse a text encoder or tagger other than the ones this head was made with."""
        if text["dim"] != self.dim:
            raise CheckpointMismatch(
                f"the head expects {self.dim}-d text embeddings from {self.text_model}, but the text model "
                f"{text['text_model']} gives {text['dim']}-d; use the text model the head was trained with"
            )
        if text["text_model"] != self.text_model or text["text_model_revision"] != self.text_model_revision:
            raise CheckpointMismatch(
                f"the head was made with text model {self.text_model}@{self.text_model_revision}, not "
                f"{text['text_model']}@{text['text_model_revision']}"
            )
        windowing = {k: v for k, v in tagger.items() if k != "passt_arch"}
        if tagger["passt_arch"] != self.passt_arch or windowing != self.windowing:
            raise CheckpointMismatch(
                f"the head was made with PaSST {self.passt_arch} {self.windowing}, not "
                f"{tagger['passt_arch']} {windowing}"
            )


@dataclass
class Checkpoint:
    head: RetrievalHead
    config: HeadConfig
    metrics: dict = field(default_factory=dict)
    fingerprint: str = ZERO_SHOT


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> str:
    """Write atomically; return the file's sha256 (its fingerprint)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in ckpt.head.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(asdict(ckpt.config)), "metrics": json.dumps(ckpt.metrics)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return file_sha256(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise ModelNotFound(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointMismatch(f"{path} is not a head checkpoint (safetensors): {e}") from e
    if meta.get("format") != FORMAT:
        raise CheckpointMismatch(f"{path} is not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    config = HeadConfig(**json.loads(meta["config"]))
    head = RetrievalHead(tensors["tag_embeddings"], lam=config.lam, n_tags=config.n_tags)
    head.load_state_dict(tensors, strict=True)
    return Checkpoint(head.eval(), config, json.loads(meta.get("metrics", "{}")), file_sha256(path))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def zero_shot(tag_embeddings: torch.Tensor, config: HeadConfig) -> Checkpoint:
    """lam = 0: audio and text meet through the tag names alone; nothing is trained."""
    cfg = HeadConfig(**{**asdict(config), "lam": 0.0})
    return Checkpoint(RetrievalHead(tag_embeddings, lam=0.0, n_tags=cfg.n_tags).eval(), cfg, {}, ZERO_SHOT)
