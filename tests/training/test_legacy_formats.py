"""Head checkpoints, feature files and partial feature files written by the code before ModelSpec (written
here by hand, see tests/legacy_files.py) load through the new code and are compared as before."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from retrieval.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from retrieval.durable import sha256_file
from retrieval.errors import CheckpointMismatch
from retrieval.head import RetrievalHead
from retrieval.model_spec import ModelSpec
from tests.legacy_files import (
    PASST_ARCH,
    TAGGER,
    WINDOWING,
    head_config,
    write_old_checkpoint,
    write_old_features,
    write_old_partial,
)
from tests.training.clotho_files import write_clotho_split
from tests.training.synthetic import planted_features, planted_world
from tests.training.test_features import CountingTagger
from training.datasets import read_clotho
from training.evaluate import check_checkpoint_fits, load_heads, metrics_of, similarity, zero_shot_head
from training.features import (
    check_same_models,
    extract_features,
    load_features,
    partial_path,
    save_features,
)
from training.trainer import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

DIM = 16


@pytest.fixture(scope="module")
def world():
    return planted_world(dim=DIM)


@pytest.fixture
def old_features(world, tmp_path):
    """A planted validation split saved in the previous sidecar format (model keys at the top level)."""
    fs = planted_features(world, n_clips=20, seed=2, split="validation")
    path = tmp_path / "old-val.safetensors"
    write_old_features(path, logits=fs.logits, text=fs.text, caption_clip=fs.caption_clip,
                       tag_text=fs.tag_text, text_model="planted")
    return path, fs


def test_a_feature_file_of_the_previous_format_loads_with_its_models(old_features):
    path, planted = old_features
    fs = load_features(path)
    for k in ("logits", "text", "caption_clip", "tag_text"):
        np.testing.assert_array_equal(getattr(fs, k), getattr(planted, k))
    assert fs.spec == ModelSpec(text_model="planted", text_model_revision=None, dim=DIM,
                                passt_arch=PASST_ARCH, **WINDOWING)
    assert fs.spec.passt_weights is None and fs.spec.head is None
    check_same_models(fs, planted)  # the same models as a file of the new format says
    other = planted_features(planted_world(dim=DIM), n_clips=4, seed=3)
    other.meta["model_spec"] = {**other.meta["model_spec"], "text_model": "another-model"}
    with pytest.raises(CheckpointMismatch, match="another-model"):
        check_same_models(fs, other)
    zero = zero_shot_head(fs)  # evaluation needs nothing else
    assert 0 <= metrics_of(similarity(zero, fs), fs)["mAP@10"] <= 1


def test_a_feature_file_of_the_previous_format_trains_beside_one_of_the_new(old_features, world, tmp_path):
    path, _ = old_features
    new_train = planted_features(world, n_clips=60, seed=1, split="train")
    result = train(TrainConfig(batch_size=32, epochs=1), train_fs=new_train, val_fs=load_features(path),
                   out_dir=tmp_path / "run")
    assert load_checkpoint(result.checkpoint).spec.encoders() == new_train.spec
    other_windowing = tmp_path / "other.safetensors"
    write_old_features(other_windowing, logits=new_train.logits[:4], text=new_train.text[:20],
                       caption_clip=new_train.caption_clip[:20], tag_text=new_train.tag_text,
                       text_model="planted", windowing={**WINDOWING, "hop_s": 5.0})
    with pytest.raises(CheckpointMismatch, match="hop_s"):
        train(TrainConfig(epochs=1), train_fs=new_train, val_fs=load_features(other_windowing),
              out_dir=tmp_path / "refused")
    # and saved again by the new code, the old file's sidecar keeps its meaning
    save_features(tmp_path / "resaved.safetensors", load_features(path))
    assert load_features(tmp_path / "resaved.safetensors").spec == load_features(path).spec


def test_a_checkpoint_of_the_previous_format_loads_with_its_spec_and_weights(world, tmp_path):
    path = tmp_path / "old-head.safetensors"
    tensors = write_old_checkpoint(path, head_config(text_model="planted", dim=DIM, lam=0.6),
                                   tag_embeddings=world["E"], metrics={"mAP@10": 0.3, "epoch": 7})
    ckpt = load_checkpoint(path)
    for k, v in tensors.items():
        np.testing.assert_array_equal(ckpt.head.state_dict()[k].numpy(), v)
    assert ckpt.head.lam == ckpt.spec.lam == 0.6 and ckpt.metrics == {"mAP@10": 0.3, "epoch": 7}
    assert ckpt.spec == ModelSpec(text_model="planted", text_model_revision=None, dim=DIM,
                                  passt_arch=PASST_ARCH, **WINDOWING, head=sha256_file(path), lam=0.6)
    # its scores are those of the head it describes
    head = RetrievalHead(torch.from_numpy(world["E"].astype(np.float32)), lam=0.6)
    head.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    fs = planted_features(world, n_clips=10, seed=4)
    np.testing.assert_allclose(similarity(ckpt.head, fs), similarity(head, fs), atol=1e-6)


def test_a_checkpoint_of_the_previous_format_is_held_to_the_features_models(world, old_features, tmp_path):
    path = tmp_path / "old-head.safetensors"
    write_old_checkpoint(path, head_config(text_model="planted", dim=DIM, lam=0.8), tag_embeddings=world["E"])
    old_fs, _ = old_features
    new_fs = planted_features(world, n_clips=10, seed=5)
    for fs in (load_features(old_fs), new_fs):  # the same models in either sidecar format
        check_checkpoint_fits(load_checkpoint(path), fs)
        assert len(load_heads([path], fs)) == 1
    for name, config in {
        "text_model": head_config(text_model="another-model", dim=DIM, lam=0.8),
        "window_s": head_config(text_model="planted", dim=DIM, lam=0.8,
                                windowing={**WINDOWING, "window_s": 5.0}),
        "passt_arch": head_config(text_model="planted", dim=DIM, lam=0.8, passt_arch="passt_other"),
    }.items():
        other = tmp_path / f"{name}.safetensors"
        write_old_checkpoint(other, config, tag_embeddings=world["E"])
        with pytest.raises(CheckpointMismatch, match=name):
            load_heads([other], new_fs)


def test_fine_tuning_starts_from_a_checkpoint_of_the_previous_format(world, tmp_path):
    path = tmp_path / "old-head.safetensors"
    write_old_checkpoint(path, head_config(text_model="planted", dim=DIM, lam=0.8), tag_embeddings=world["E"])
    train_fs = planted_features(world, n_clips=40, seed=1, split="train")
    val_fs = planted_features(world, n_clips=20, seed=2, split="validation")
    tuned = train(TrainConfig(batch_size=32, epochs=1, init=path), train_fs=train_fs, val_fs=val_fs,
                  out_dir=tmp_path / "run")
    start = metrics_of(similarity(load_checkpoint(path).head, val_fs), val_fs)["mAP@10"]
    assert tuned.history[0]["val_mAP@10"] == pytest.approx(start)  # epoch 0 is the old head
    # and a head saved by the new code from it keeps the models
    ckpt = load_checkpoint(path)
    save_checkpoint(tmp_path / "resaved.safetensors", Checkpoint(ckpt.head, ckpt.spec))
    again = load_checkpoint(tmp_path / "resaved.safetensors")
    assert again.spec == replace(ckpt.spec, head=sha256_file(tmp_path / "resaved.safetensors"))


def test_a_partial_feature_file_of_the_previous_format_resumes_or_is_refused(tmp_path, random_tagger,
                                                                           text_encoder):
    write_clotho_split(tmp_path, "development", 2, seconds=0.3)
    clips = read_clotho(tmp_path, "development")
    out = tmp_path / "dev.safetensors"
    done = {clips[0].file_name: np.full(527, 0.25, np.float32)}  # (what the interrupted run had computed)
    write_old_partial(partial_path(out), done, tagger={**TAGGER, "hop_s": 5.0})
    with pytest.raises(CheckpointMismatch, match="delete it") as e:
        extract_features(clips, tagger=random_tagger, text=text_encoder, out=out, dataset="clotho",
                         split="development")
    assert "hop_s" in str(e.value) and not out.exists()

    write_old_partial(partial_path(out), done)
    counting = CountingTagger(random_tagger)
    fs = extract_features(clips, tagger=counting, text=text_encoder, out=out, dataset="clotho",
                          split="development")
    assert counting.calls == 1  # the clip the old run had done is taken from its file
    np.testing.assert_array_equal(fs.logits[0], done[clips[0].file_name])
    assert not partial_path(out).exists() and fs.spec.passt_weights == "random"
