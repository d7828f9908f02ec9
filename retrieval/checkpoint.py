"""The self-describing head checkpoint: one safetensors file with weights, tag embeddings and model spec.

Tensors: the head's state dict (``audio_norm.*``, ``audio_proj.*``, ``tag_embeddings``).
Metadata (strings): ``format`` = ``retrieval-head/1``, ``model_spec`` (JSON of
:class:`retrieval.model_spec.ModelSpec`: the encoders the head was trained on and its ``lam``; its ``head``
is the file's own sha256, filled in when it is read), ``metrics`` (JSON, validation figures of the training
run). Files written before the spec existed hold ``config`` instead; they open through the same converter.
"""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from retrieval.config import DEFAULT_LAMBDA, N_TAGS
from retrieval.durable import atomic_path, sha256_file
from retrieval.errors import CheckpointMismatch, ModelNotFound
from retrieval.head import RetrievalHead
from retrieval.model_spec import ZERO_SHOT, ModelSpec

FORMAT = "retrieval-head/1"


@dataclass
class Checkpoint:
    head: RetrievalHead
    spec: ModelSpec  # its `head` is the checkpoint's sha256 once saved or loaded, "zero-shot" for lam = 0
    metrics: dict = field(default_factory=dict)


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> str:
    """Write durably; return the file's sha256 (the head's identity in its spec)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in ckpt.head.state_dict().items()}
    spec = replace(ckpt.spec, head=None, lam=float(ckpt.head.lam))
    meta = {"format": FORMAT, "model_spec": json.dumps(spec.to_dict()), "metrics": json.dumps(ckpt.metrics)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return sha256_file(path)


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
    described = meta.get("model_spec") or meta.get("config")  # "config": files of the previous format
    if described is None:
        raise CheckpointMismatch(f"{path} does not say which models it was made with")
    spec = ModelSpec.from_dict(json.loads(described))
    head = RetrievalHead(tensors["tag_embeddings"], lam=DEFAULT_LAMBDA if spec.lam is None else spec.lam,
                         n_tags=N_TAGS)
    head.load_state_dict(tensors, strict=True)
    spec = replace(spec, head=sha256_file(path), lam=float(head.lam))
    return Checkpoint(head.eval(), spec, json.loads(meta.get("metrics", "{}")))


def zero_shot(tag_embeddings: torch.Tensor, encoders: ModelSpec) -> Checkpoint:
    """lam = 0: audio and text meet through the tag names alone; nothing is trained."""
    head = RetrievalHead(tag_embeddings, lam=0.0, n_tags=N_TAGS).eval()
    return Checkpoint(head, encoders.with_head(ZERO_SHOT, 0.0), {})
