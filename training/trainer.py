"""Training the head on feature files: one loop, read top to bottom.

Each epoch shuffles all (clip, caption) pairs of the training file into batches; a batch may hold several
captions of one clip, and the loss (training/loss.py) never takes a caption or the audio of the pair's own
clip as an impostor. After each epoch the head is scored on the validation file; the epoch with the best
validation mAP@10 becomes the checkpoint, and its optimiser state is saved beside it for fine-tuning. A run
started from a checkpoint (`init`) counts that head as epoch 0, so fine-tuning never keeps a head worse on the
validation file than the one it started from. A run folder holding a run already is refused unless it is to
be replaced (`overwrite`), and then its files go before the new run writes any: an interrupted run never
leaves an earlier run's head beside its own log. Everything a run can be refused for (the device, the `init`
checkpoint and its optimiser state, a folder that cannot be written) is checked before the folder changes.

An epoch whose training loss or validation figures are not finite numbers has diverged: the run stops, that
epoch is never kept, and the log's last record says why it stopped (as it does for an interrupt).
"""

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from retrieval.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from retrieval.device import resolve_device
from retrieval.durable import append_line, atomic_path, make_parent, write_text_atomically
from retrieval.errors import CheckpointMismatch, RetrievalError
from retrieval.head import RetrievalHead
from retrieval.metrics import METRIC_NAMES
from training.config import TrainConfig
from training.evaluate import check_checkpoint_fits, metrics_of, similarity
from training.features import FeatureSet, check_same_models
from training.loss import sample_impostors, triplet_loss

log = logging.getLogger(__name__)

CHECKPOINT = "head.safetensors"
RUN_LOG = "train_log.jsonl"
VAL_SEED = 1234  # the validation loss uses the same batches and impostors every epoch


class TrainingDiverged(RetrievalError):
    """The loss or a validation figure became NaN or infinite: the run stops, and the head of its best epoch
    before stays."""


class TrainingInterrupted(KeyboardInterrupt):
    """An interrupt (Ctrl-C) stopped the run; the message says which head was kept."""


@dataclass
class TrainResult:
    checkpoint: Path
    best_epoch: int
    metrics: dict  # validation figures of the best epoch
    history: list[dict] = field(default_factory=list)  # one record per epoch, epoch 0 = before training


def optimizer_path(checkpoint: Path) -> Path:
    return Path(checkpoint).with_suffix(".optim.pt")


def pair_batches(n_pairs: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n_pairs, generator=generator).split(batch_size))


@torch.no_grad()
def validation_loss(head: RetrievalHead, fs: FeatureSet, *, batch_size: int, margin: float) -> float:
    g = torch.Generator().manual_seed(VAL_SEED)
    device = next(head.parameters()).device
    logits, text = torch.from_numpy(fs.logits).to(device), torch.from_numpy(fs.text).to(device)
    clip_of = torch.from_numpy(fs.caption_clip)
    total, n = 0.0, 0
    for idx in pair_batches(len(clip_of), batch_size, g):
        j, k = sample_impostors(clip_of[idx], g)
        a, q = head.encode_audio(logits[clip_of[idx].to(device)]), head.encode_text(text[idx.to(device)])
        total += float(triplet_loss(a, q, caption_imp=j.to(device), audio_imp=k.to(device), margin=margin))
        n += 1
    return total / n


def validate(head: RetrievalHead, fs: FeatureSet, cfg: TrainConfig) -> dict:
    """Validation loss and R@1, R@5, R@10, mAP@10 of the head on a feature file."""
    head.eval()
    out = metrics_of(similarity(head, fs), fs)
    out["loss"] = validation_loss(head, fs, batch_size=cfg.batch_size, margin=cfg.margin)
    return out


def start_from(path: Path, *, head: RetrievalHead, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
               fs: FeatureSet) -> None:
    """Load a checkpoint's weights (and, if asked, its optimiser state) into the head."""
    ckpt = load_checkpoint(path)
    check_checkpoint_fits(ckpt, fs, name=str(path))
    if ckpt.head.lam != cfg.lam:
        log.warning("%s was trained with lam %.2f; continuing with lam %.2f", path, ckpt.head.lam, cfg.lam)
    head.load_state_dict(ckpt.head.state_dict())
    if cfg.init_optimizer:
        state_path = optimizer_path(path)
        if not state_path.is_file():
            raise RetrievalError(f"--init-optimizer carries the Adam state that the run which trained {path} "
                                 f"saved beside it, and {state_path} is not there: copy it beside the head, "
                                 "or leave out --init-optimizer to start with fresh Adam moments")
        try:
            optimizer.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
        except (RuntimeError, ValueError, KeyError, EOFError) as e:  # another head's, or not Adam's state
            raise CheckpointMismatch(f"{state_path} is not the Adam state of the head {path}: {e}") from None
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr
    log.info("starting from %s%s", path, " with its optimiser state" if cfg.init_optimizer else "")


def run_files(out_dir: Path) -> list[Path]:
    """What a run writes into its folder."""
    ckpt = out_dir / CHECKPOINT
    return [ckpt, optimizer_path(ckpt), out_dir / RUN_LOG]


def run_to_replace(out_dir: Path, *, overwrite: bool, init: Path | None) -> list[Path]:
    """The files of the run `out_dir` holds, which `overwrite` replaces (never the `init` head); a folder
    holding a run is refused without it. Changes nothing."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RetrievalError(f"the run folder {out_dir} is a file: name a folder (it is made when missing)")
    there = [p for p in run_files(out_dir) if p.exists()]
    if there and not overwrite:
        raise RetrievalError(f"{out_dir} holds a run already ({', '.join(p.name for p in there)}): name "
                             "another folder, or add --overwrite to replace it")
    if init is not None and any(p.resolve() == Path(init).resolve() for p in there):
        raise RetrievalError(f"--init {init} is the head this run would replace: copy it elsewhere first")
    return there


def require_two_clips(fs: FeatureSet, which: str, why: str) -> None:
    if len(np.unique(fs.caption_clip)) < 2:
        raise RetrievalError(f"the {which} features hold captions of fewer than 2 clips: {why}")


def not_finite(record: dict) -> list[str]:
    """The figures of an epoch's record that are no finite number."""
    return [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]


def train(cfg: TrainConfig, *, train_fs: FeatureSet, val_fs: FeatureSet, out_dir: Path,
          overwrite: bool = False) -> TrainResult:
    if cfg.epochs < 1 or cfg.batch_size < 2:
        raise ValueError("training needs at least 1 epoch and batches of at least 2 pairs")
    check_same_models(train_fs, val_fs)
    require_two_clips(train_fs, "training", "the triplet loss needs another clip's caption for each pair")
    require_two_clips(val_fs, "validation", "every epoch would rank one clip first for every caption, so "
                      "none could be told from another (give a validation split of several clips)")
    out_dir = Path(out_dir)
    ckpt_path, run_log = out_dir / CHECKPOINT, out_dir / RUN_LOG
    replaced = run_to_replace(out_dir, overwrite=overwrite, init=cfg.init)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # the Linear's initialisation
    g = torch.Generator().manual_seed(cfg.seed)  # batches and impostors

    head = RetrievalHead(torch.from_numpy(train_fs.tag_text), lam=cfg.lam).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.init is not None:
        start_from(cfg.init, head=head, optimizer=optimizer, cfg=cfg, fs=train_fs)
    # every check is done: only now does the folder change (a refused run leaves it as it was)
    make_parent(ckpt_path)  # a folder that cannot be written is said before the old run's files go
    for p in replaced:
        p.unlink()
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience,
        threshold=cfg.plateau_threshold, threshold_mode=cfg.plateau_threshold_mode)

    logits = torch.from_numpy(train_fs.logits).to(device)  # (N, 527)
    text = torch.from_numpy(train_fs.text).to(device)  # (M, D)
    clip_of = torch.from_numpy(train_fs.caption_clip)  # (M,) on the CPU, where impostors are drawn
    config_record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    write_text_atomically(run_log, json.dumps({"config": config_record, "train": train_fs.meta.get("split"),
                                               "val": val_fs.meta.get("split")}) + "\n")
    best: dict | None = None

    def keep(record: dict, val: dict) -> bool:
        """Save the head as the checkpoint when `record` is the best epoch so far."""
        nonlocal best
        if best is not None and not val["mAP@10"] > best["val_mAP@10"]:
            return False
        best = record
        metrics = {"split": val_fs.meta.get("split"), "epoch": record["epoch"], "seed": cfg.seed,
                   **{k: val[k] for k in (*METRIC_NAMES, "loss")}}
        save_checkpoint(ckpt_path, Checkpoint(head, train_fs.spec, metrics))
        with atomic_path(optimizer_path(ckpt_path)) as tmp:
            torch.save(optimizer.state_dict(), tmp)
        return True

    def kept() -> str:
        return (f"{ckpt_path} holds epoch {best['epoch']}, the best before it" if best is not None
                else "no head was saved")

    def stop_if_diverged(record: dict) -> None:
        """A record with a figure that is no number is logged (as null) and stops the run, never kept."""
        if not (bad := not_finite(record)):
            return
        log_epoch(record, cfg.epochs, best=False, elapsed=time.monotonic() - t0, run_log=run_log)
        end_run(run_log, "diverged", record["epoch"], best)
        figures = ", ".join(f"{k} {record[k]}" for k in bad)
        if record["epoch"] == 0:
            raise TrainingDiverged(f"the head before training scores no numbers on the validation file "
                                   f"({figures}): its features, or the --init head, hold NaN or infinities")
        raise TrainingDiverged(f"training diverged in epoch {record['epoch']} ({figures}): lower the "
                               f"learning rate (--lr {cfg.lr:g}) or the margin; {kept()}")

    t0, epoch = time.monotonic(), 0
    try:
        val = validate(head, val_fs, cfg)
        history = [{"epoch": 0, "train_loss": None, "lr": cfg.lr, **prefixed(val)}]
        stop_if_diverged(history[-1])
        # the head a fine-tuning starts from is a candidate; an untrained one is not
        log_epoch(history[-1], cfg.epochs, best=cfg.init is not None and keep(history[-1], val), elapsed=0.0,
                  run_log=run_log)
        t0 = time.monotonic()
        for epoch in range(1, cfg.epochs + 1):
            head.train()
            losses = []
            for idx in pair_batches(len(clip_of), cfg.batch_size, g):
                clip_ids = clip_of[idx]  # (B,) which clip each pair's audio is
                j, k = sample_impostors(clip_ids, g)  # (B,), (B,) impostor rows
                a = head.encode_audio(logits[clip_ids.to(device)])  # (B, D)
                q = head.encode_text(text[idx.to(device)])  # (B, D)
                loss = triplet_loss(a, q, caption_imp=j.to(device), audio_imp=k.to(device), margin=cfg.margin)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())

            val = validate(head, val_fs, cfg)
            record = {"epoch": epoch, "train_loss": sum(losses) / len(losses),
                      "lr": optimizer.param_groups[0]["lr"], **prefixed(val)}
            stop_if_diverged(record)  # nothing of this epoch is kept: the best stays
            scheduler.step(val["loss"])  # after the record: `lr` is the rate this epoch trained with
            is_best = keep(record, val)
            history.append(record)
            log_epoch(record, cfg.epochs, best=is_best, elapsed=time.monotonic() - t0, run_log=run_log)
    except KeyboardInterrupt:
        end_run(run_log, "interrupted", epoch, best)
        when = f"in epoch {epoch}" if epoch else "before the first epoch"
        raise TrainingInterrupted(f"training interrupted {when}: {kept()}") from None

    ckpt = load_checkpoint(ckpt_path)
    assert best is not None  # there is at least one epoch (checked above)
    log.info("best epoch %d: validation mAP@10 %.4f -> %s", best["epoch"], best["val_mAP@10"], ckpt_path)
    return TrainResult(ckpt_path, best["epoch"], ckpt.metrics, history)


def prefixed(val: dict) -> dict:
    return {f"val_{k}": v for k, v in val.items()}


def log_epoch(record: dict, epochs: int, *, best: bool, elapsed: float, run_log: Path) -> None:
    """One progress line (with ETA) and one JSONL record per epoch (appended, on disk before the next epoch:
    see :mod:`retrieval.durable` on append-only logs). A figure that is no number is written as null."""
    numbers = {k: None if k in not_finite(record) else v for k, v in record.items()}
    append_line(run_log, json.dumps({**numbers, "best": best, "elapsed_s": round(elapsed, 3)}))
    epoch = record["epoch"]
    eta = elapsed / epoch * (epochs - epoch) if epoch else 0.0
    train_loss = "  -   " if record["train_loss"] is None else f"{record['train_loss']:.4f}"
    log.info("epoch %3d/%d  loss %s  lr %.1e  val loss %.4f  R@1 %.4f  R@5 %.4f  R@10 %.4f  mAP@10 %.4f"
             "  eta %.0fs%s", epoch, epochs, train_loss, record["lr"], record["val_loss"], record["val_R@1"],
             record["val_R@5"], record["val_R@10"], record["val_mAP@10"], eta, "  *" if best else "")


def run_stopped(checkpoint: Path) -> dict | None:
    """The last record of the run that saved `checkpoint` (its run log beside it) when that run did not
    finish (end_run's), else None (a finished run, or a head with no run log beside it)."""
    run_log = Path(checkpoint).parent / RUN_LOG
    if Path(checkpoint).name != CHECKPOINT or not run_log.is_file():
        return None
    lines = [line for line in run_log.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:  # cut short by a kill: the run did not finish either
        return {"stopped": "killed", "epoch": None, "best_epoch": None}
    return last if isinstance(last, dict) and "stopped" in last else None


def end_run(run_log: Path, reason: str, epoch: int, best: dict | None) -> None:
    """The last record of a run that did not finish: why (`diverged`, `interrupted`), in which epoch, and
    which epoch the head holds (null: none was saved)."""
    append_line(run_log, json.dumps({"stopped": reason, "epoch": epoch,
                                     "best_epoch": None if best is None else best["epoch"]}))
