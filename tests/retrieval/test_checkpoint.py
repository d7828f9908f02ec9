import json

import pytest
import torch
from safetensors.torch import save_file

from retrieval.checkpoint import FORMAT, Checkpoint, load_checkpoint, save_checkpoint, zero_shot
from retrieval.config import Windowing
from retrieval.durable import sha256_file
from retrieval.errors import CheckpointMismatch, ModelNotFound
from retrieval.head import RetrievalHead
from retrieval.model_spec import ENCODER_FIELDS, ModelSpec

TEXT = {"text_model": "all-MiniLM-L6-v2", "text_model_revision": None, "dim": 384}
TAGGER = {"passt_arch": "passt_s_swa_p16_128_ap476", **Windowing().as_dict()}
CONFIGURED = ModelSpec(**TEXT, **TAGGER)  # what a retriever of these encoders is


def make(dim=384, lam=0.8) -> Checkpoint:
    torch.manual_seed(0)
    spec = ModelSpec(text_model="all-MiniLM-L6-v2", text_model_revision=None, dim=dim, lam=lam)
    return Checkpoint(RetrievalHead(torch.randn(527, dim), lam=lam), spec, {"mAP@10": 0.25})


def check(ckpt: Checkpoint, wanted: ModelSpec = CONFIGURED) -> None:
    ckpt.spec.require_match(wanted, only=ENCODER_FIELDS, what="the head checkpoint")


def test_round_trip_keeps_weights_spec_and_metrics(tmp_path):
    ckpt = make()
    sha = save_checkpoint(tmp_path / "head.safetensors", ckpt)
    back = load_checkpoint(tmp_path / "head.safetensors")
    assert back.spec.encoders() == ckpt.spec.encoders() and back.metrics == {"mAP@10": 0.25}
    assert back.spec.head == sha == sha256_file(tmp_path / "head.safetensors")
    assert back.spec.lam == back.head.lam == 0.8 and back.spec.dim == 384
    assert back.spec.text_model == "all-MiniLM-L6-v2"
    x = torch.randn(2, 527)
    torch.testing.assert_close(back.head.encode_audio(x), ckpt.head.encode_audio(x))
    check(back)
    assert not list(tmp_path.glob(".*.tmp"))  # written durably, no temporary file left


def test_mismatches_are_refused_with_a_clear_message():
    with pytest.raises(CheckpointMismatch, match="dim: the head checkpoint has 768, configured 384"):
        check(make(dim=768))
    with pytest.raises(CheckpointMismatch, match="text_model"):
        check(make(), ModelSpec(**{**TEXT, "text_model": "other"}, **TAGGER))
    with pytest.raises(CheckpointMismatch, match="passt_arch"):
        check(make(), ModelSpec(**TEXT, **{**TAGGER, "passt_arch": "passt_s_kd_p16_128_ap486"}))
    with pytest.raises(CheckpointMismatch, match="hop_s"):
        check(make(), ModelSpec(**TEXT, **{**TAGGER, "hop_s": 5.0}))


def test_a_checkpoint_of_the_previous_format_still_loads(tmp_path):
    """Files written before the spec existed hold a HeadConfig as `config`."""
    ckpt = make(lam=0.6)
    tensors = {k: v.detach().contiguous() for k, v in ckpt.head.state_dict().items()}
    config = {**TEXT, "lam": 0.6, "n_tags": 527, "passt_arch": TAGGER["passt_arch"],
              "windowing": Windowing().as_dict()}
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path), metadata={"format": FORMAT, "config": json.dumps(config),
                                            "metrics": json.dumps({"mAP@10": 0.2})})
    back = load_checkpoint(path)
    assert back.spec.lam == back.head.lam == 0.6 and back.spec.head == sha256_file(path)
    assert back.spec.encoders() == CONFIGURED and back.metrics == {"mAP@10": 0.2}
    check(back)
    x = torch.randn(2, 527)
    torch.testing.assert_close(back.head.encode_audio(x), ckpt.head.encode_audio(x))


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointMismatch):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(ModelNotFound):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_zero_shot_is_tags_alone():
    E = torch.nn.functional.normalize(torch.randn(527, 384), dim=-1)
    zs = zero_shot(E, CONFIGURED)
    assert zs.spec.lam == zs.head.lam == 0.0 and zs.spec.head == "zero-shot" and zs.spec.zero_shot
    assert zs.spec.encoders() == CONFIGURED
    logits = torch.randn(3, 527)
    p = torch.sigmoid(logits)
    want = torch.nn.functional.normalize(p @ E, dim=-1)
    torch.testing.assert_close(zs.head.encode_audio(logits), want, atol=1e-5, rtol=0)
