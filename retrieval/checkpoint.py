"""The self-describing head checkpoint: one safetensors file with weights, tag embeddings and model spec.

Tensors: the head's state dict (``audio_norm.*``, ``audio_proj.*``, ``tag_embeddings``).
Metadata (strings): ``format`` = ``retrieval-head/1``, ``model_spec`` (JSON of
:class:`retrieval.model_spec.ModelSpec`: the encoders the head was trained on and its ``lam``; its ``head``
is the file's own sha256, filled in when it is read), ``metrics`` (JSON, validation figures of the training
run). Files written before the spec existed hold ``config`` instead; they open through the same converter.

The file is written in one spelling (:func:`canonical_safetensors`), so the same checkpoint saved twice is the
same bytes and has the same sha256, the identity an index keeps of its head.
"""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from retrieval.config import DEFAULT_LAMBDA, N_TAGS
from retrieval.durable import sha256_file, write_bytes_atomically
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
    meta = {"format": FORMAT, "model_spec": json.dumps(spec.to_dict()),
            "metrics": json.dumps(ckpt.metrics, allow_nan=False)}  # NaN is no JSON: refused, not written
    write_bytes_atomically(path, canonical_safetensors(save(tensors, metadata=meta)))
    return sha256_file(path)


def canonical_safetensors(blob: bytes) -> bytes:
    """A safetensors file with its JSON header in one spelling: keys sorted, no spaces, padded with spaces to
    a multiple of 8 bytes (as the format allows); the tensor bytes and their offsets are unchanged. The
    library writes the metadata in its hash map's order, which differs from one save to the next."""
    n = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + blob[8 + n:]


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
    tags = tensors.get("tag_embeddings")
    if tags is None or tags.ndim != 2 or tags.shape[0] != N_TAGS:
        raise CheckpointMismatch(f"{path} lacks the ({N_TAGS}, dim) tag_embeddings of a head")
    if spec.dim is not None and tags.shape[1] != spec.dim:
        raise CheckpointMismatch(f"{path} says dim {spec.dim} but its tensors are of dim {tags.shape[1]}: "
                                 "the file is damaged, or was edited")
    head = RetrievalHead(tags, lam=DEFAULT_LAMBDA if spec.lam is None else spec.lam, n_tags=N_TAGS)
    want = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != want:  # a tensor missing, left over, or of another shape than a head of this dim has
        bad = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        raise CheckpointMismatch(f"{path} does not hold the tensors of a head of dim {tags.shape[1]}: "
                                 + "; ".join(f"{k} {got.get(k, 'missing')} instead of {want.get(k, 'none')}"
                                             for k in bad))
    head.load_state_dict(tensors, strict=True)
    spec = replace(spec, head=sha256_file(path), lam=float(head.lam))
    return Checkpoint(head.eval(), spec, json.loads(meta.get("metrics", "{}")))


def zero_shot(tag_embeddings: torch.Tensor, encoders: ModelSpec) -> Checkpoint:
    """lam = 0: audio and text meet through the tag names alone; nothing is trained."""
    head = RetrievalHead(tag_embeddings, lam=0.0, n_tags=N_TAGS).eval()
    return Checkpoint(head, encoders.with_head(ZERO_SHOT, 0.0), {})
