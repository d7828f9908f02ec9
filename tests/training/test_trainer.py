import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.checkpoint import load_checkpoint
from retrieval.errors import CheckpointMismatch, RetrievalError
from tests.training.synthetic import planted_features, planted_world
from training.evaluate import metrics_of, similarity
from training.trainer import CHECKPOINT, RUN_LOG, TrainConfig, TrainingDiverged, optimizer_path, train

CHANCE_MAP10 = sum(1 / r for r in range(1, 11)) / 100  # 100 validation clips, random order


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def planted():
    world = planted_world(dim=32)
    return (planted_features(world, n_clips=200, seed=1, split="train"),
            planted_features(world, n_clips=100, seed=2, split="validation"))


@pytest.fixture(scope="module")
def trained(one_thread, planted, tmp_path_factory):
    train_fs, val_fs = planted
    out = tmp_path_factory.mktemp("run")
    return train(TrainConfig(batch_size=32, epochs=8, seed=0), train_fs=train_fs, val_fs=val_fs, out_dir=out)


def test_training_lifts_validation_map_far_above_chance_and_the_untrained_head(trained):
    untrained = trained.history[0]["val_mAP@10"]
    assert untrained < 0.1
    assert trained.metrics["mAP@10"] > 10 * CHANCE_MAP10
    assert trained.metrics["mAP@10"] > untrained + 0.2


def test_the_checkpoint_is_the_best_validation_epoch(trained, planted):
    _, val_fs = planted
    records = [json.loads(line) for line in (trained.checkpoint.parent / RUN_LOG).read_text().splitlines()]
    epochs = [r for r in records if r.get("epoch", 0) >= 1]
    assert [r["epoch"] for r in epochs] == list(range(1, 9))
    best = max(epochs, key=lambda r: r["val_mAP@10"])
    assert trained.best_epoch == best["epoch"] == trained.metrics["epoch"]
    ckpt = load_checkpoint(trained.checkpoint)
    again = metrics_of(similarity(ckpt.head, val_fs), val_fs)
    for k in ("R@1", "R@5", "R@10", "mAP@10"):
        assert again[k] == pytest.approx(best[f"val_{k}"]) == pytest.approx(ckpt.metrics[k])
    assert ckpt.spec.lam == ckpt.head.lam == 0.8 and ckpt.spec.dim == 32 and ckpt.spec.text_model == "planted"
    assert records[0]["config"]["batch_size"] == 32
    assert {"train_loss", "lr", "val_loss"} <= set(epochs[0])


def test_same_seed_same_weights_other_seed_other_weights(planted, tmp_path):
    train_fs, val_fs = planted
    runs = [train(TrainConfig(batch_size=64, epochs=1, seed=s), train_fs=train_fs, val_fs=val_fs,
                  out_dir=tmp_path / str(i)) for i, s in enumerate((5, 5, 6))]
    w = [load_checkpoint(r.checkpoint).head.audio_proj.weight for r in runs]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_fine_tuning_starts_from_the_checkpoint_and_carries_adam_state(trained, planted, tmp_path):
    train_fs, val_fs = planted
    cfg = TrainConfig(batch_size=32, epochs=1, init=trained.checkpoint, init_optimizer=True, lr=5e-4)
    tuned = train(cfg, train_fs=train_fs, val_fs=val_fs, out_dir=tmp_path)
    assert tuned.history[0]["val_mAP@10"] == pytest.approx(trained.metrics["mAP@10"])
    before = torch.load(optimizer_path(trained.checkpoint), weights_only=True)
    after = torch.load(optimizer_path(tuned.checkpoint), weights_only=True)
    steps_per_epoch = int(np.ceil(len(train_fs.caption_clip) / 32))
    assert float(after["state"][0]["step"]) == float(before["state"][0]["step"]) + steps_per_epoch
    assert after["param_groups"][0]["lr"] == 5e-4


def test_no_tags_trains_the_projection_alone(planted, tmp_path):
    train_fs, val_fs = planted
    result = train(TrainConfig(batch_size=32, epochs=2, lam=1.0), train_fs=train_fs, val_fs=val_fs,
                   out_dir=tmp_path)
    assert load_checkpoint(result.checkpoint).spec.lam == 1.0
    assert result.metrics["mAP@10"] > result.history[0]["val_mAP@10"]


def test_features_of_other_models_are_refused(planted, tmp_path):
    train_fs, val_fs = planted
    other = planted_features(planted_world(dim=16), n_clips=10, seed=3)
    with pytest.raises(CheckpointMismatch):
        train(TrainConfig(epochs=1), train_fs=train_fs, val_fs=other, out_dir=tmp_path)
    assert not (tmp_path / RUN_LOG).exists()


def test_captions_of_one_clip_are_refused_before_anything_is_written(planted, tmp_path):
    train_fs, val_fs = planted
    one = planted_features(planted_world(dim=32), n_clips=1, seed=4, split="train")
    assert len(np.unique(one.caption_clip)) == 1 and len(one.caption_clip) > 1  # its captions, one clip
    with pytest.raises(RetrievalError, match="fewer than 2 clips"):
        train(TrainConfig(epochs=1), train_fs=one, val_fs=val_fs, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_stops_and_keeps_the_head_of_its_best_epoch(planted, tmp_path):
    """An infinite learning rate: the loss is NaN in the first epoch; the run stops with the reason, and no
    head of NaNs is saved as the best (it was, and was scored R@1 = 1)."""
    train_fs, val_fs = planted
    with pytest.raises(TrainingDiverged, match="diverged in epoch 1 .*no head was saved"):
        train(TrainConfig(epochs=2, lr=1e30), train_fs=train_fs, val_fs=val_fs, out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / CHECKPOINT).exists() and (tmp_path / "run" / RUN_LOG).exists()


def test_fine_tuning_keeps_the_head_it_started_from_when_no_epoch_beats_it(trained, planted, tmp_path):
    """A learning rate that wrecks the head: the checkpoint is the starting head (epoch 0), not the best of
    the worse epochs after it."""
    train_fs, val_fs = planted
    cfg = TrainConfig(batch_size=32, epochs=2, init=trained.checkpoint, lr=1.0)
    tuned = train(cfg, train_fs=train_fs, val_fs=val_fs, out_dir=tmp_path)
    assert all(r["val_mAP@10"] < tuned.history[0]["val_mAP@10"] for r in tuned.history[1:])
    assert tuned.best_epoch == 0 == tuned.metrics["epoch"]
    assert tuned.metrics["mAP@10"] == pytest.approx(trained.metrics["mAP@10"])
    start, kept = load_checkpoint(trained.checkpoint).head, load_checkpoint(tuned.checkpoint).head
    assert all(torch.equal(start.state_dict()[k], v) for k, v in kept.state_dict().items())
    records = [json.loads(line) for line in (tmp_path / RUN_LOG).read_text().splitlines()[1:]]
    assert [r["best"] for r in records] == [True, False, False]


def test_a_folder_holding_a_run_is_refused_unless_replaced(planted, tmp_path):
    """A second run into the same folder would lay its log over the first's head (or, interrupted, leave the
    first's head beside its own log): it is refused and changes nothing; with overwrite the old run's files
    go before the new one writes."""
    train_fs, val_fs = planted
    first = train(TrainConfig(batch_size=64, epochs=1, seed=1), train_fs=train_fs, val_fs=val_fs,
                  out_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {CHECKPOINT, optimizer_path(first.checkpoint).name, RUN_LOG}
    with pytest.raises(RetrievalError, match="holds a run already .*--overwrite"):
        train(TrainConfig(batch_size=64, epochs=1, seed=2), train_fs=train_fs, val_fs=val_fs,
              out_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with pytest.raises(RetrievalError, match="is the head this run would replace"):
        train(TrainConfig(batch_size=64, epochs=1, init=first.checkpoint), train_fs=train_fs, val_fs=val_fs,
              out_dir=tmp_path, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    with pytest.raises(TrainingDiverged):  # replaced, then interrupted in its first epoch
        train(TrainConfig(batch_size=64, epochs=1, lr=1e30), train_fs=train_fs, val_fs=val_fs,
              out_dir=tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [RUN_LOG]  # no head of the first run left
    second = train(TrainConfig(batch_size=64, epochs=1, seed=2), train_fs=train_fs, val_fs=val_fs,
                   out_dir=tmp_path, overwrite=True)
    assert second.checkpoint.read_bytes() != before[CHECKPOINT]
    assert len((tmp_path / RUN_LOG).read_text().splitlines()) == 3  # its config and epochs 0 and 1


def folder_state(folder) -> dict | None:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None


def test_a_refused_run_leaves_the_folder_as_it_was(trained, planted, tmp_path, monkeypatch):
    """--overwrite removed the old run's files before the device, the --init head and its Adam state were
    checked: a refused run lost the run it was to replace (and without --overwrite left an empty folder)."""
    train_fs, val_fs = planted
    run = tmp_path / "run"
    first = train(TrainConfig(batch_size=64, epochs=1), train_fs=train_fs, val_fs=val_fs, out_dir=run)
    other_text = tmp_path / "other" / CHECKPOINT  # a head of another text model (dim 16)
    other = planted_features(planted_world(dim=16), n_clips=20, seed=5)
    train(TrainConfig(batch_size=32, epochs=1), train_fs=other, val_fs=other, out_dir=other_text.parent)
    no_adam = tmp_path / "no-adam" / CHECKPOINT  # a head without its Adam state beside it
    no_adam.parent.mkdir()
    no_adam.write_bytes(trained.checkpoint.read_bytes())
    before = folder_state(run)
    refusals = [(TrainConfig(device="cuda:99"), "cuda:99"),
                (TrainConfig(init=other_text), "dim"),
                (TrainConfig(init=no_adam, init_optimizer=True),
                 f"{optimizer_path(no_adam)} is not there: copy it beside the head, or leave out "
                 "--init-optimizer")]
    for cfg, says in refusals:
        for folder, overwrite in ((run, True), (tmp_path / "new", False)):
            with pytest.raises(RetrievalError, match=re.escape(says)):
                train(cfg, train_fs=train_fs, val_fs=val_fs, out_dir=folder, overwrite=overwrite)
        assert folder_state(run) == before and not (tmp_path / "new").exists()

    from retrieval import durable  # a folder that cannot be written in (a read-only mount; root may write)

    real_access = durable.os.access
    monkeypatch.setattr(durable.os, "access",
                        lambda p, mode, **kw: Path(p) != run and real_access(p, mode, **kw))
    with pytest.raises(PermissionError, match=f"cannot write in {run}"):
        train(TrainConfig(batch_size=64, epochs=1), train_fs=train_fs, val_fs=val_fs, out_dir=run,
              overwrite=True)
    assert folder_state(run) == before and first.checkpoint.is_file()


def test_a_validation_file_of_one_clip_is_refused(planted, tmp_path):
    """One clip ranks first for every caption: every epoch scored R@1 = 1 and loss 0, and epoch 1 was kept."""
    train_fs, _ = planted
    one = planted_features(planted_world(dim=32), n_clips=1, seed=4, split="validation")
    with pytest.raises(RetrievalError, match="validation features hold captions of fewer than 2 clips"):
        train(TrainConfig(epochs=1), train_fs=train_fs, val_fs=one, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def strict_json(line: str):
    def refuse(constant):
        raise ValueError(f"{constant} is no JSON")
    return json.loads(line, parse_constant=refuse)


def test_a_head_scoring_no_numbers_on_the_validation_file_is_never_kept(trained, planted, tmp_path):
    """Validation features holding a NaN: training losses stay finite, the validation loss is NaN. The first
    epoch was kept as the best (its metrics and the log held bare NaN, which is no JSON)."""
    train_fs, val_fs = planted
    bad = planted_features(planted_world(dim=32), n_clips=100, seed=2, split="validation")
    bad.logits[3, 7] = np.nan
    for init in (None, trained.checkpoint):
        run = tmp_path / str(init is None)
        with pytest.raises(TrainingDiverged, match=r"before training scores no numbers .*val_loss nan"):
            train(TrainConfig(batch_size=64, epochs=2, init=init), train_fs=train_fs, val_fs=bad, out_dir=run)
        assert not (run / CHECKPOINT).exists()
        records = [strict_json(line) for line in (run / RUN_LOG).read_text().splitlines()]
        assert records[1]["epoch"] == 0 and records[1]["val_loss"] is None and records[1]["best"] is False
        assert records[-1] == {"stopped": "diverged", "epoch": 0, "best_epoch": None}

    with pytest.raises(TrainingDiverged, match=r"diverged in epoch 1 \(train_loss nan"):  # training diverges
        train(TrainConfig(epochs=2, lr=1e30), train_fs=train_fs, val_fs=val_fs, out_dir=tmp_path / "lr")
    records = [strict_json(line) for line in (tmp_path / "lr" / RUN_LOG).read_text().splitlines()]
    assert records[-2]["epoch"] == 1 and records[-2]["train_loss"] is None and records[-2]["val_loss"] is None
    assert records[-1] == {"stopped": "diverged", "epoch": 1, "best_epoch": None}


def test_an_interrupt_says_which_head_was_kept_and_marks_the_run(trained, planted, tmp_path, monkeypatch):
    """Ctrl-C in epoch 3 (here: while it is scored, after two epochs): rc 130 and no word, and the folder
    looked like a finished run."""
    import training.trainer as trainer

    train_fs, val_fs = planted
    real_validate, calls = trainer.validate, []

    def interrupted_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # epochs 0, 1, 2 scored; epoch 3 is interrupted
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", interrupted_in_epoch_3)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as e:
        train(TrainConfig(batch_size=32, epochs=5, init=trained.checkpoint, lr=1.0), train_fs=train_fs,
              val_fs=val_fs, out_dir=run)
    assert str(e.value) == (f"training interrupted in epoch 3: {run / CHECKPOINT} holds epoch 0, "
                            "the best before it")
    records = [strict_json(line) for line in (run / RUN_LOG).read_text().splitlines()]
    assert [r.get("epoch") for r in records[1:-1]] == [0, 1, 2]
    assert records[-1] == {"stopped": "interrupted", "epoch": 3, "best_epoch": 0}
    assert load_checkpoint(run / CHECKPOINT).metrics["epoch"] == 0
