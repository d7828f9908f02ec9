from dataclasses import replace

import pytest
import torch

from retrieval.checkpoint import Checkpoint, HeadConfig, load_checkpoint, save_checkpoint, zero_shot
from retrieval.config import Windowing
from retrieval.errors import CheckpointMismatch, ModelNotFound
from retrieval.head import RetrievalHead

TEXT = {"text_model": "all-MiniLM-L6-v2", "text_model_revision": None, "dim": 384}
TAGGER = {"passt_arch": "passt_s_swa_p16_128_ap476", **Windowing().as_dict()}


def make(dim=384, lam=0.8) -> Checkpoint:
    torch.manual_seed(0)
    cfg = HeadConfig(text_model="all-MiniLM-L6-v2", text_model_revision=None, dim=dim, lam=lam)
    return Checkpoint(RetrievalHead(torch.randn(527, dim), lam=lam), cfg, {"mAP@10": 0.25})


def test_round_trip_keeps_weights_config_and_metrics(tmp_path):
    ckpt = make()
    sha = save_checkpoint(tmp_path / "head.safetensors", ckpt)
    back = load_checkpoint(tmp_path / "head.safetensors")
    assert back.config == ckpt.config and back.metrics == {"mAP@10": 0.25} and back.fingerprint == sha
    x = torch.randn(2, 527)
    torch.testing.assert_close(back.head.encode_audio(x), ckpt.head.encode_audio(x))
    back.config.check_against(text=TEXT, tagger=TAGGER)


def test_mismatches_are_refused_with_a_clear_message():
    cfg = make(dim=768).config
    with pytest.raises(CheckpointMismatch, match="768-d"):
        cfg.check_against(text=TEXT, tagger=TAGGER)
    with pytest.raises(CheckpointMismatch, match="text model"):
        make().config.check_against(text={**TEXT, "text_model": "other"}, tagger=TAGGER)
    with pytest.raises(CheckpointMismatch, match="PaSST"):
        make().config.check_against(text=TEXT, tagger={**TAGGER, "passt_arch": "passt_s_kd_p16_128_ap486"})
    with pytest.raises(CheckpointMismatch, match="PaSST"):
        make().config.check_against(text=TEXT, tagger={**TAGGER, "hop_s": 5.0})


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointMismatch):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(ModelNotFound):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_zero_shot_is_tags_alone():
    E = torch.nn.functional.normalize(torch.randn(527, 384), dim=-1)
    zs = zero_shot(E, replace(make().config, lam=0.8))
    assert zs.config.lam == 0.0 and zs.fingerprint == "zero-shot"
    logits = torch.randn(3, 527)
    p = torch.sigmoid(logits)
    want = torch.nn.functional.normalize(p @ E, dim=-1)
    torch.testing.assert_close(zs.head.encode_audio(logits), want, atol=1e-5, rtol=0)
