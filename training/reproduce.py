"""The paper's recipe end to end, on Clotho v2.1 (and AudioCaps when given), printed beside Table 1.

    1. features of Clotho development, validation, evaluation (and AudioCaps train), once: a feature file
       already in OUT/features is reused when the configured models made it from the same clips and
       captions, and an interrupted extraction resumes;
    2. PaSST-MPnet (lam 1) and PaSST-MPnet-tags (lam 0.8) on Clotho development; with AudioCaps, 100 epochs
       on AudioCaps train, then fine-tuning on Clotho development with the Adam state carried. The best
       recipe (with AudioCaps when given) is trained once per seed, the others with the first seed only;
    3. every run keeps the epoch with the best Clotho *validation* mAP@10;
    4. everything is scored on Clotho *evaluation*; the ensemble averages the scores of the best recipe's
       models over the seeds; the zero-shot model (lam 0) is scored as well, for reference.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from retrieval.durable import write_json_atomically
from retrieval.metrics import METRIC_NAMES
from retrieval.model_spec import ENCODER_FIELDS, ModelSpec
from training.config import Recipe, TrainConfig
from training.datasets import DatasetError, read_dataset
from training.evaluate import ensemble_similarity, load_heads, metrics_of, write_submission, zero_shot_head
from training.features import FeatureSet, extract_features, load_features
from training.trainer import train

log = logging.getLogger(__name__)

# Table 1 of the paper ("Pretrained audio, sentence, and tag embeddings for DCASE 2022 Task 6b"), on the
# Clotho evaluation split
PAPER = {
    "challenge baseline (CRNN + Word2Vec)": {"R@1": 0.03, "R@5": 0.11, "R@10": 0.19, "mAP@10": 0.07},
    "PaSST-MPnet": {"R@1": 0.1345, "R@5": 0.3550, "R@10": 0.4823, "mAP@10": 0.2292},
    "PaSST-MPnet-tags": {"R@1": 0.1382, "R@5": 0.3640, "R@10": 0.4854, "mAP@10": 0.2342},
    "PaSST-MPnet-tags-AC": {"R@1": 0.1453, "R@5": 0.3652, "R@10": 0.5001, "mAP@10": 0.2402},
    "ensemble of 2": {"R@1": 0.1481, "R@5": 0.3686, "R@10": 0.4978, "mAP@10": 0.2426},
    "AudioCaps only": {"mAP@10": 0.1850},
}
ZERO_SHOT_ROW = "zero-shot, lam 0 (ours)"


@dataclass
class Row:
    system: str
    ours: dict  # Clotho evaluation
    paper: dict | None
    checkpoints: list[str]


def feature_file(out: Path, dataset: str, split: str, *, root: Path, models: Callable, skip_missing: bool
                 ) -> FeatureSet:
    """OUT/features/<dataset>_<split>.safetensors, extracted unless it is already there, made by the
    configured models (``models()``) and of the same clips and captions as the dataset at `root` (another
    dataset's, the same after its CSV changed, or one of other models is extracted again in its place)."""
    from retrieval.pipeline import text_spec

    path = out / "features" / f"{dataset}_{split}.safetensors"

    def configured() -> ModelSpec:
        tagger, text = models()
        return text_spec(tagger.spec, text)

    try:
        clips = read_dataset(dataset, root, split, skip_missing=skip_missing)
    except DatasetError as e:
        if not path.is_file():
            raise
        fs = load_features(path)
        fs.spec.require_match(configured(), only=ENCODER_FIELDS, what=str(path),
                              fix=f"configure the models that made it, or give the dataset to extract it "
                                  f"again ({e})")
        log.info("reusing %s (the dataset is not there to compare it with: %s)", path, e)
        return fs
    if path.is_file():
        fs = load_features(path)
        if fs.clips != [c.file_name for c in clips] or fs.captions != [x for c in clips for x in c.captions]:
            log.warning("%s holds other clips or captions than %s's %s split: extracting it again", path,
                        root, split)
        elif diff := fs.spec.diff(configured(), only=ENCODER_FIELDS):
            log.warning("%s was made with other models than the configured ones (%s): extracting it again",
                        path, ", ".join(f"{k} {a!r}, configured {b!r}" for k, (a, b) in diff.items()))
        else:
            log.info("reusing %s", path)
            return fs
    tagger, text = models()
    return extract_features(clips, tagger=tagger, text=text, out=path, dataset=dataset, split=split)


def run(name: str, cfg: TrainConfig, *, train_fs: FeatureSet, val_fs: FeatureSet, out: Path) -> Path:
    log.info("run %s: %d epochs, lam %.1f, seed %d", name, cfg.epochs, cfg.lam, cfg.seed)
    return train(cfg, train_fs=train_fs, val_fs=val_fs, out_dir=out / "runs" / name,
                 overwrite=True).checkpoint  # a rerun of the recipe trains its runs again


def train_all(recipe: Recipe, feats: dict[str, FeatureSet], out: Path) -> dict[str, list[Path]]:
    """Checkpoints per system name: the best recipe once per seed, the others with the first seed."""
    val = feats["validation"]
    clotho = replace(recipe.base, epochs=recipe.clotho_epochs)
    with_ac = "audiocaps" in feats
    systems: dict[str, list[Path]] = {"PaSST-MPnet": [], "PaSST-MPnet-tags": []}
    if with_ac:
        systems |= {"AudioCaps only": [], "PaSST-MPnet-tags-AC": []}

    def on_clotho(name: str, cfg: TrainConfig) -> Path:
        return run(name, cfg, train_fs=feats["development"], val_fs=val, out=out)

    for seed in recipe.seeds:
        first = seed == recipe.seeds[0]
        if first:
            systems["PaSST-MPnet"].append(on_clotho(f"mpnet_seed{seed}", replace(clotho, lam=1.0, seed=seed)))
        if first or not with_ac:
            systems["PaSST-MPnet-tags"].append(on_clotho(f"tags_seed{seed}", replace(clotho, seed=seed)))
        if with_ac:
            audiocaps = replace(recipe.base, epochs=recipe.audiocaps_epochs, seed=seed)
            pre = run(f"audiocaps_seed{seed}", audiocaps, train_fs=feats["audiocaps"], val_fs=val, out=out)
            systems["AudioCaps only"].append(pre)
            tuned = replace(clotho, seed=seed, init=pre, init_optimizer=True)
            systems["PaSST-MPnet-tags-AC"].append(on_clotho(f"tags_ac_seed{seed}", tuned))
    return systems


def score_all(systems: dict[str, list[Path]], evaluation: FeatureSet, out: Path) -> list[Row]:
    """Single systems with the first seed's model, the ensemble over the seeds of the best recipe."""
    rows = [Row(ZERO_SHOT_ROW, metrics_of(ensemble_similarity([zero_shot_head(evaluation)], evaluation),
                                          evaluation), None, [])]
    for name, ckpts in systems.items():
        S = ensemble_similarity(load_heads(ckpts[:1], evaluation), evaluation)
        rows.append(Row(name, metrics_of(S, evaluation), PAPER.get(name), [str(ckpts[0])]))
    with_ac = "PaSST-MPnet-tags-AC" in systems
    best = systems["PaSST-MPnet-tags-AC" if with_ac else "PaSST-MPnet-tags"]
    if len(best) > 1:
        S = ensemble_similarity(load_heads(best, evaluation), evaluation)
        write_submission(out / "submission_evaluation.csv", S=S, fs=evaluation)
        name = f"ensemble of {len(best)}"  # the paper's ensemble is of models pre-trained on AudioCaps
        rows.append(Row(name if with_ac else f"{name}, no AudioCaps", metrics_of(S, evaluation),
                        PAPER.get(name) if with_ac else None, [str(p) for p in best]))
    return rows


def reproduce(*, clotho: Path, audiocaps: Path | None, out: Path, models: Callable,
              recipe: Recipe | None = None) -> list[Row]:
    """The whole recipe; ``models()`` gives (tagger, text encoder), loaded once: feature files already there
    are reused only when these models made them.

    Writes OUT/features, OUT/runs/<run>/ (checkpoint, run log), OUT/results.json (the models' spec and the
    rows) and the ensemble's challenge CSV OUT/submission_evaluation.csv.
    """
    recipe = recipe or Recipe()
    out = Path(out)
    loaded: list = []

    def models_once():
        if not loaded:
            loaded.append(models())
        return loaded[0]

    feats = {split: feature_file(out, "clotho", split, root=clotho, models=models_once, skip_missing=False)
             for split in ("development", "validation", "evaluation")}
    if audiocaps is not None:
        feats["audiocaps"] = feature_file(out, "audiocaps", "train", root=audiocaps, models=models_once,
                                          skip_missing=recipe.skip_missing)
    rows = score_all(train_all(recipe, feats, out), feats["evaluation"], out)
    write_json_atomically(out / "results.json", {"model_spec": feats["evaluation"].spec.to_dict(),
                                                 "rows": [r.__dict__ for r in rows]})
    return rows


def format_table(rows: list[Row]) -> str:
    """Markdown table: ours on Clotho evaluation, the paper's number in brackets."""
    lines = ["| system (Clotho evaluation; the paper's in brackets) | " + " | ".join(METRIC_NAMES) + " |",
             "|---" * (1 + len(METRIC_NAMES)) + "|"]
    shown = {r.system for r in rows}
    for r in rows:
        cells = [f"{r.ours[m]:.4f}" + (f" ({r.paper[m]:.4f})" if r.paper and m in r.paper else "")
                 for m in METRIC_NAMES]
        lines.append(f"| {r.system} | " + " | ".join(cells) + " |")
    for name, paper in PAPER.items():
        if name not in shown:
            lines.append(f"| {name} (paper only) | " + " | ".join(
                f"({paper[m]:.4f})" if m in paper else "" for m in METRIC_NAMES) + " |")
    return "\n".join(lines)
