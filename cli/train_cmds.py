"""`retrieval features | train | evaluate | evaluate-moments | score | reproduce`: the paper's recipe, and
moment retrieval's evaluation, from the shell."""

import json
import math
from pathlib import Path

import typer

from cli.errors import exit_on_error
from cli.progress import progress_option
from retrieval.metrics import METRIC_NAMES, MOMENT_METRIC_NAMES
from training.config import MOMENT_RELATIVE_THRESHOLD, Recipe, TrainConfig

D, R = TrainConfig(), Recipe()  # the option defaults are the dataclasses' own


def configured_models():
    """(tagger, text encoder) from the settings: RETRIEVAL_PASST_WEIGHTS, RETRIEVAL_TEXT_MODEL, ..."""
    from app.compose import load_settings, load_tagger, load_text_encoder

    settings = load_settings()
    return load_tagger(settings), load_text_encoder(settings)


def features(*, dataset: str, split: str, root: Path, out: Path, skip_missing: bool = False,
             checkpoint_every: int = 50, annotations: Path | None = None, windows: bool = False,
             progress: bool = True):
    from app.compose import audio_limits, load_settings, load_tagger, load_text_encoder
    from training.datasets import read_dataset
    from training.features import extract_features

    settings = load_settings()  # a contradictory configuration is refused before the dataset is read
    clips = read_dataset(dataset, root, split, skip_missing=skip_missing, annotations=annotations)
    tagger, text = load_tagger(settings), load_text_encoder(settings)
    return extract_features(clips, tagger=tagger, text=text, out=out, dataset=dataset, split=split,
                            checkpoint_every=checkpoint_every, limits=audio_limits(settings), windows=windows,
                            progress=progress)


def configured_device() -> str:
    from app.compose import load_settings

    return load_settings().device


def train_config(*, author_code: bool, no_tags: bool, **options) -> TrainConfig:
    from training.config import AUTHOR_CODE

    cfg = TrainConfig(**options)
    if cfg.plateau_threshold_mode not in ("rel", "abs"):
        raise typer.BadParameter("--plateau-threshold-mode must be rel or abs")
    if author_code:
        cfg = TrainConfig(**{**cfg.__dict__, **AUTHOR_CODE})
    if no_tags:
        cfg.lam = 1.0
    return cfg


def train(*, train_file: Path, val_file: Path, out: Path, cfg, overwrite: bool = False):
    from training.features import load_features
    from training.trainer import train as run_training

    return run_training(cfg, train_fs=load_features(train_file), val_fs=load_features(val_file), out_dir=out,
                        overwrite=overwrite)


def evaluate(*, features_file: Path, checkpoints: list[Path], zero_shot: bool,
             submission: Path | None = None) -> dict:
    from retrieval.durable import check_parent
    from training import evaluate as ev
    from training.features import load_features
    from training.trainer import run_stopped

    if bool(checkpoints) == zero_shot:
        raise typer.BadParameter("give either --checkpoint (one or more) or --zero-shot")
    if submission is not None:
        check_parent(submission)  # a folder that cannot be written is said before anything is scored
    fs = load_features(features_file)
    heads = [ev.zero_shot_head(fs)] if zero_shot else ev.load_heads(checkpoints, fs)
    for path in checkpoints:  # a head kept by a run that stopped is its best so far, not the run's
        if (stopped := run_stopped(path)) is not None:
            typer.secho(f"warning: {path} is from a run that was {stopped['stopped']} in epoch "
                        f"{stopped['epoch']}: it holds epoch {stopped['best_epoch']}, the best before",
                        err=True, fg=typer.colors.YELLOW)
    S = ev.ensemble_similarity(heads, fs)  # (M, N)
    if submission is not None:
        ev.write_submission(submission, S=S, fs=fs)
    return ev.metrics_of(S, fs)


def evaluate_moments(*, features_file: Path, annotations: Path, checkpoint: Path | None, zero_shot: bool,
                     relative_threshold: float = MOMENT_RELATIVE_THRESHOLD,
                     predictions: Path | None = None) -> dict:
    from app.compose import load_settings, load_text_encoder
    from retrieval.metrics import moment_metrics
    from training import evaluate_moments as em
    from training.datasets import read_moment_queries
    from training.features import load_features

    if (checkpoint is not None) == zero_shot:
        raise typer.BadParameter("give either --checkpoint or --zero-shot")
    queries, fs = read_moment_queries(annotations), load_features(features_file)  # refused before any model
    retriever = em.moment_retriever(fs, load_text_encoder(load_settings()), checkpoint)
    predicted = em.predict_queries(queries, fs, retriever, relative_threshold=relative_threshold)
    if predictions is not None:
        em.write_predictions(predictions, queries, predicted)
    return moment_metrics(predicted, [q.relevant for q in queries])


def metrics_line(metrics: dict, names: tuple[str, ...] = METRIC_NAMES) -> str:
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in names)


def show_metrics(metrics: dict, *, as_json: bool) -> None:
    typer.echo(json.dumps({k: metrics[k] for k in METRIC_NAMES}) if as_json else metrics_line(metrics))


def _positive(value: float) -> float:
    if not 0 < value < math.inf:
        raise typer.BadParameter(f"{value} is not a number above 0")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _a_fraction(value: float) -> float:
    if not 0 < value < 1:
        raise typer.BadParameter(f"{value} is not between 0 and 1 (the rate is multiplied by it)")
    return value


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features_cmd(
        dataset: str = typer.Option(..., help="clotho, audiocaps or moments"),
        split: str = typer.Option(..., help="clotho: development, validation, evaluation; audiocaps: train, "
                                           "val, test; moments: any name"),
        root: Path = typer.Option(..., help="the dataset's folder (see docs/training.md); "
                                            "moments: the folder of <vid>.<ext> audio files"),
        out: Path = typer.Option(..., help="feature file to write (.safetensors, with a .json sidecar)"),
        skip_missing: bool = typer.Option(False, "--skip-missing", help="leave out absent AudioCaps or "
                                                                      "moments clips"),
        checkpoint_every: int = typer.Option(50, min=1, help="save progress every this many clips"),
        annotations: Path | None = typer.Option(None, help="moments: the queries, JSON lines (qid, query, "
                                                           "duration, vid, relevant_windows)"),
        windows: bool = typer.Option(False, "--windows", help="also keep every window's logits and times "
                                                              "(for evaluate-moments)"),
        progress: bool = progress_option("a progress bar of the clips"),
    ) -> None:
        """PaSST logits of every clip and text embeddings of every caption, once (resumable)."""
        with exit_on_error():
            fs = features(dataset=dataset, split=split, root=root, out=out, skip_missing=skip_missing,
                          checkpoint_every=checkpoint_every, annotations=annotations, windows=windows,
                          progress=progress)
        typer.echo(f"{out}: {len(fs.clips)} clips, {len(fs.captions)} captions")

    @app.command("train")
    def train_cmd(
        train_file: Path = typer.Option(..., "--train", help="training feature file"),
        val_file: Path = typer.Option(..., "--val", help="validation feature file (selects the best epoch)"),
        out: Path = typer.Option(..., help="run folder: head.safetensors, head.optim.pt, train_log.jsonl"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace the run --out holds"),
        init: Path | None = typer.Option(None, help="start from this checkpoint (AudioCaps pre-training)"),
        init_optimizer: bool = typer.Option(False, "--init-optimizer", help="carry --init's Adam state"),
        batch_size: int = typer.Option(D.batch_size, min=2),
        epochs: int = typer.Option(D.epochs, min=1),
        lr: float = typer.Option(D.lr, callback=_positive),
        weight_decay: float = typer.Option(D.weight_decay, min=0.0, callback=_finite),
        margin: float = typer.Option(D.margin, callback=_positive, help="the triplet loss's margin"),
        lam: float = typer.Option(D.lam, min=0.0, max=1.0, help="weight of the projection against the tags"),
        no_tags: bool = typer.Option(False, "--no-tags", help="no tag fusion (lam = 1)"),
        seed: int = typer.Option(D.seed),
        plateau_factor: float = typer.Option(D.plateau_factor, callback=_a_fraction,
                                             help="ReduceLROnPlateau factor on the validation loss"),
        plateau_patience: int = typer.Option(D.plateau_patience, min=0),
        plateau_threshold: float = typer.Option(D.plateau_threshold, min=0.0, callback=_finite),
        plateau_threshold_mode: str = typer.Option(D.plateau_threshold_mode, help="rel or abs"),
        author_code: bool = typer.Option(False, "--author-code", help="batch 32, factor 0.1, thr. 0.01 abs"),
        device: str | None = typer.Option(None, help="cpu, cuda[:N] or auto; default: RETRIEVAL_DEVICE"),
    ) -> None:
        """Train the head; the epoch with the best validation mAP@10 becomes the checkpoint."""
        if init_optimizer and init is None:
            raise typer.BadParameter("the Adam state is --init's: add --init CHECKPOINT",
                                     param_hint="--init-optimizer")
        with exit_on_error():  # the default device comes from the settings, which may be refused
            cfg = train_config(author_code=author_code, no_tags=no_tags, batch_size=batch_size, epochs=epochs,
                               lr=lr, weight_decay=weight_decay, margin=margin, lam=lam, seed=seed,
                               plateau_factor=plateau_factor, plateau_patience=plateau_patience,
                               plateau_threshold=plateau_threshold,
                               plateau_threshold_mode=plateau_threshold_mode, init=init,
                               init_optimizer=init_optimizer, device=device or configured_device())
            try:
                result = train(train_file=train_file, val_file=val_file, out=out, cfg=cfg,
                               overwrite=overwrite)
            except KeyboardInterrupt as e:  # the trainer's says which head it kept
                typer.secho(str(e) or "training interrupted", err=True, fg=typer.colors.YELLOW)
                raise typer.Exit(130) from None
        typer.echo(f"best epoch {result.best_epoch}: {metrics_line(result.metrics)} -> {result.checkpoint}")

    @app.command("evaluate")
    def evaluate_cmd(
        features_file: Path = typer.Option(..., "--features", help="feature file of the split to score"),
        checkpoint: list[Path] = typer.Option(None, help="head checkpoint; repeat for an ensemble"),
        zero_shot: bool = typer.Option(False, "--zero-shot", help="the untrained lam = 0 model"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object"),
        submission: Path | None = typer.Option(None, help="write the challenge CSV here"),
    ) -> None:
        """R@1, R@5, R@10, mAP@10 of every caption against every clip of a feature file."""
        with exit_on_error():
            metrics = evaluate(features_file=features_file, checkpoints=checkpoint or [], zero_shot=zero_shot,
                               submission=submission)
        show_metrics(metrics, as_json=as_json)

    @app.command("evaluate-moments")
    def evaluate_moments_cmd(
        features_file: Path = typer.Option(..., "--features", help="feature file made with --windows"),
        annotations: Path = typer.Option(..., help="the queries, JSON lines (qid, query, duration, vid, "
                                                   "relevant_windows), as CASTELLA and Clotho-Moment ship"),
        checkpoint: Path | None = typer.Option(None, help="head checkpoint"),
        zero_shot: bool = typer.Option(False, "--zero-shot", help="the untrained lam = 0 model"),
        relative_threshold: float = typer.Option(MOMENT_RELATIVE_THRESHOLD, min=0.0, max=1.0,
                                                 help="windows scoring at least min + this * (max - min) "
                                                      "of their clip's scores merge into moments"),
        out: Path | None = typer.Option(None, help="also write the metrics here, as JSON"),
        predictions: Path | None = typer.Option(None, help="also write the predicted moments here: the "
                                                           "benchmarks' submission file, JSON lines (qid, "
                                                           "query, vid, pred_relevant_windows)"),
    ) -> None:
        """R1@0.5, R1@0.7, mAP, mAP@0.5, mAP@0.75 of moment queries, each within its own clip."""
        from retrieval.durable import write_json_atomically

        with exit_on_error():
            metrics = evaluate_moments(features_file=features_file, annotations=annotations,
                                       checkpoint=checkpoint, zero_shot=zero_shot,
                                       relative_threshold=relative_threshold, predictions=predictions)
        typer.echo(metrics_line(metrics, MOMENT_METRIC_NAMES))
        if out is not None:
            with exit_on_error():
                write_json_atomically(out, metrics)

    @app.command("score")
    def score_cmd(
        predictions: Path = typer.Option(..., help="challenge CSV: caption,file_name_1,...,file_name_10"),
        captions: Path = typer.Option(..., help="Clotho captions file: file_name,caption_1,...,caption_5"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    ) -> None:
        """Score a challenge submission CSV against a Clotho captions file."""
        from training.evaluate import score_submission

        with exit_on_error():
            metrics = score_submission(predictions, captions)
        show_metrics(metrics, as_json=as_json)

    @app.command("reproduce")
    def reproduce_cmd(
        clotho: Path = typer.Option(..., help="Clotho v2.1 folder"),
        audiocaps: Path | None = typer.Option(None, help="AudioCaps folder (train.csv + train/)"),
        out: Path = typer.Option(..., help="features, runs, results.json, submission CSV"),
        seeds: list[int] = typer.Option(list(R.seeds), "--seed", help="one model per seed; repeat"),
        clotho_epochs: int = typer.Option(R.clotho_epochs, min=1),
        audiocaps_epochs: int = typer.Option(R.audiocaps_epochs, min=1),
        author_code: bool = typer.Option(False, "--author-code", help="batch 32, factor 0.1, thr. 0.01 abs"),
    ) -> None:
        """The paper's recipe end to end; prints our table beside the paper's."""
        from training.reproduce import format_table, reproduce

        with exit_on_error():
            base = train_config(author_code=author_code, no_tags=False, device=configured_device())
            recipe = Recipe(seeds=tuple(seeds), clotho_epochs=clotho_epochs,
                            audiocaps_epochs=audiocaps_epochs, base=base)
            rows = reproduce(clotho=clotho, audiocaps=audiocaps, out=out, models=configured_models,
                             recipe=recipe)
        typer.echo(format_table(rows))
