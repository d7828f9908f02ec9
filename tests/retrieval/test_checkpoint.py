import json

import pytest
import torch
from safetensors import safe_open
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


def test_the_same_checkpoint_saved_again_is_the_same_file(tmp_path):
    """safetensors writes its metadata in hash-map order, different at each save (6 sha256 in 8 saves): the
    head's identity changed, and an index built with it refused the same head retrained bit for bit."""
    ckpt = make()
    shas = {save_checkpoint(tmp_path / f"{i}.safetensors", ckpt) for i in range(12)}
    assert len(shas) == 1
    path = tmp_path / "0.safetensors"
    with safe_open(str(path), framework="pt") as f:  # the library's own reader
        assert f.metadata()["format"] == FORMAT and json.loads(f.metadata()["metrics"]) == {"mAP@10": 0.25}
        for k, v in ckpt.head.state_dict().items():
            assert torch.equal(f.get_tensor(k), v)
    back = load_checkpoint(path)
    assert back.spec.head == shas.pop() and back.metrics == {"mAP@10": 0.25}
    assert all(torch.equal(back.head.state_dict()[k], v) for k, v in ckpt.head.state_dict().items())
    assert save_checkpoint(tmp_path / "again.safetensors", back) == back.spec.head  # loaded, saved: the same


def test_a_file_of_the_library_s_own_spelling_keeps_its_bytes_and_identity(tmp_path):
    ckpt = make()
    path = tmp_path / "head.safetensors"
    tensors = {k: v.detach().contiguous() for k, v in ckpt.head.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": FORMAT, "metrics": "{}",
                                            "model_spec": json.dumps(ckpt.spec.to_dict())})
    before = path.read_bytes()
    assert load_checkpoint(path).spec.head == sha256_file(path) and path.read_bytes() == before


def test_a_head_whose_tensors_disagree_with_its_spec_is_refused_in_one_line(tmp_path):
    """A recorded dim other than its tensors' (or a tensor of another shape) was a raw traceback in
    `evaluate` and `train --init`."""
    ckpt = make(dim=16)
    tensors = {k: v.detach().contiguous() for k, v in ckpt.head.state_dict().items()}
    spec = json.dumps({**ckpt.spec.to_dict(), "dim": 384})
    save_file(tensors, str(tmp_path / "dim.safetensors"), metadata={"format": FORMAT, "model_spec": spec})
    with pytest.raises(CheckpointMismatch, match="says dim 384 but its tensors are of dim 16"):
        load_checkpoint(tmp_path / "dim.safetensors")
    spec = json.dumps(ckpt.spec.to_dict())
    wrong = {**tensors, "audio_proj.weight": torch.zeros(17, 527)}
    save_file(wrong, str(tmp_path / "shape.safetensors"), metadata={"format": FORMAT, "model_spec": spec})
    with pytest.raises(CheckpointMismatch, match=r"audio_proj.weight \(17, 527\) instead of \(16, 527\)"):
        load_checkpoint(tmp_path / "shape.safetensors")
    del tensors["tag_embeddings"]
    save_file(tensors, str(tmp_path / "tags.safetensors"), metadata={"format": FORMAT, "model_spec": spec})
    with pytest.raises(CheckpointMismatch, match="lacks the"):
        load_checkpoint(tmp_path / "tags.safetensors")
