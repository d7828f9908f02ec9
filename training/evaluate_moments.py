"""Moment retrieval on a feature file with per-window logits, by the protocol of CASTELLA and Clotho-Moment.

Each query is looked for in its own clip (``vid``) only, as those benchmarks do: the Retriever's text side
encodes it, every window of the clip is scored (logits -> head -> cosine), the windows that reach the clip's
threshold are merged into moments (:func:`retrieval.moments.merge_windows`), at most ``MAX_MOMENTS`` of
them, best first, and :func:`retrieval.metrics.moment_metrics` scores them against the relevant windows.

The threshold is relative to the clip: ``min + relative_threshold * (max - min)`` of its window scores.
Heads whose cosines sit on other scales (zero-shot, trained) are then cut alike, and the best window always
passes, so every query has a prediction (which the benchmarks' evaluation needs). Moments keep their
windows' times: they are not cut at the annotated ``duration``, which CASTELLA's relevant windows pass too.
"""

from pathlib import Path

import numpy as np
import torch

from retrieval.checkpoint import load_checkpoint, zero_shot
from retrieval.contracts import SentenceEncoder
from retrieval.metrics import MAX_MOMENTS, moment_metrics
from retrieval.moments import merge_windows
from retrieval.pipeline import Retriever
from retrieval.windows import WindowLogits
from training.config import MOMENT_RELATIVE_THRESHOLD
from training.datasets import MomentQuery
from training.features import FeatureFileError, FeatureSet


def predict_moments(windows: WindowLogits, scores: np.ndarray, *,
                    relative_threshold: float = MOMENT_RELATIVE_THRESHOLD) -> np.ndarray:
    """(W,) scores of one clip's windows -> (P, 3) [start, end, score] moments, best first."""
    if not 0.0 <= relative_threshold <= 1.0:
        raise ValueError(f"relative_threshold must be in [0, 1], got {relative_threshold}")
    lo, hi = float(scores.min()), float(scores.max())
    threshold = min(hi, lo + relative_threshold * (hi - lo))  # min(): rounding must not lose the best
    moments = merge_windows(windows.starts, windows.ends, scores, threshold=threshold, per_clip=MAX_MOMENTS)
    return np.array([[m.start, m.end, m.score] for m in moments]).reshape(-1, 3)


def moment_retriever(fs: FeatureSet, text: SentenceEncoder, checkpoint: Path | None) -> Retriever:
    """The head of ``checkpoint`` (None: the zero-shot model of the file's tag names) with ``text``; both are
    held to the feature file's PaSST, and the zero-shot model to its text model."""
    ckpt = load_checkpoint(checkpoint) if checkpoint else zero_shot(torch.from_numpy(fs.tag_text), fs.spec)
    return Retriever(text, ckpt, passt=fs.spec)


def evaluate_moments(queries: list[MomentQuery], fs: FeatureSet, retriever: Retriever, *,
                     relative_threshold: float = MOMENT_RELATIVE_THRESHOLD) -> dict[str, float]:
    """R1@0.5, R1@0.7, mAP, mAP@0.5, mAP@0.75 of the queries, each within the windows of its clip."""
    if fs.windows is None:
        raise FeatureFileError("the feature file holds no per-window logits: extract it again with "
                               "`retrieval features --windows`")
    clip = {name: i for i, name in enumerate(fs.clips)}
    absent = sorted({q.vid for q in queries if q.vid not in clip})
    if absent:
        raise FeatureFileError(f"{len(absent)} clips of the queries are not in the feature file, e.g. "
                               f"{absent[:3]}")
    q = retriever.encode_text([x.query for x in queries])  # (Q, D)
    audio: dict[str, np.ndarray] = {}  # vid -> (W, D), each clip projected once
    predictions = []
    for x, v in zip(queries, q, strict=True):
        windows = fs.windows[clip[x.vid]]
        if x.vid not in audio:
            audio[x.vid] = retriever.project(windows.logits)
        predictions.append(predict_moments(windows, audio[x.vid] @ v, relative_threshold=relative_threshold))
    return moment_metrics(predictions, [x.relevant for x in queries])
