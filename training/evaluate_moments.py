"""Moment retrieval on a feature file with per-window logits, by the protocol of CASTELLA and Clotho-Moment.

Each query is looked for in its own clip (``vid``) only, as those benchmarks do: the Retriever's text side
encodes it, every window of the clip is scored (logits -> head -> cosine), the windows that reach the clip's
threshold are merged into moments (:func:`retrieval.moments.merge_windows`), at most ``MAX_MOMENTS`` of
them, best first, and :func:`retrieval.metrics.moment_metrics` scores them against the relevant windows.

The threshold is relative to the clip: ``min + relative_threshold * (max - min)`` of its window scores.
Heads whose cosines sit on other scales (zero-shot, trained) are then cut alike, and the best window always
passes, so every query has a prediction (which the benchmarks' evaluation needs). Moments keep their
windows' times: they are not cut at the annotated ``duration``, which CASTELLA's relevant windows pass too.

The predictions can be written as the benchmarks' submission file (:func:`write_predictions`): the JSON
lines that the Moment-DETR / QVHighlights standalone evaluation (jayleicn/moment_detr
``standalone_eval/eval.py``, copied into line/lighthouse) reads, one query a line::

    {"qid": "q1", "query": "a dog barks", "vid": "a", "pred_relevant_windows": [[5.0, 17.5, 0.61], ...]}

``qid`` as the annotations give it (their ``eval_submission`` compares it with the ground truth's),
``vid`` a string, ``pred_relevant_windows`` the moments as ``[start, end, score]`` seconds, best first (their
R1 reads the first one). ``query`` is not read by their evaluation; ``pred_saliency_scores`` (highlight
detection, QVHighlights only) is not written, so their script scores moment retrieval alone.
:func:`score_predictions` scores such a file with :func:`retrieval.metrics.moment_metrics`.
"""

import json
from pathlib import Path

import numpy as np
import torch

from retrieval.checkpoint import load_checkpoint, zero_shot
from retrieval.contracts import SentenceEncoder
from retrieval.durable import atomic_path
from retrieval.metrics import MAX_MOMENTS, moment_metrics
from retrieval.moments import merge_windows
from retrieval.pipeline import Retriever
from retrieval.text_files import open_text
from retrieval.windows import WindowLogits
from training.config import MOMENT_RELATIVE_THRESHOLD
from training.datasets import DatasetError, MomentQuery, is_number
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


def predict_queries(queries: list[MomentQuery], fs: FeatureSet, retriever: Retriever, *,
                    relative_threshold: float = MOMENT_RELATIVE_THRESHOLD) -> list[np.ndarray]:
    """Each query's (P, 3) [start, end, score] moments within the windows of its clip, best first."""
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
    return predictions


def evaluate_moments(queries: list[MomentQuery], fs: FeatureSet, retriever: Retriever, *,
                     relative_threshold: float = MOMENT_RELATIVE_THRESHOLD) -> dict[str, float]:
    """R1@0.5, R1@0.7, mAP, mAP@0.5, mAP@0.75 of the queries, each within the windows of its clip."""
    predictions = predict_queries(queries, fs, retriever, relative_threshold=relative_threshold)
    return moment_metrics(predictions, [x.relevant for x in queries])


def submission_line(query: MomentQuery, moments: np.ndarray) -> dict:
    """One query's line of the submission file: qid, query, vid, pred_relevant_windows (best first)."""
    moments = np.asarray(moments, dtype=np.float64).reshape(-1, 3)
    moments = moments[np.argsort(-moments[:, 2], kind="stable")]  # best first; ties keep their order
    return {"qid": query.qid, "query": query.query, "vid": query.vid,
            "pred_relevant_windows": [[float(s), float(e), float(x)] for s, e, x in moments]}


def write_predictions(path: Path, queries: list[MomentQuery], predictions: list[np.ndarray]) -> None:
    """The benchmarks' submission file (JSON lines, one per query in the given order), written durably.
    Floats are written as Python reads them back, exactly; text is ASCII-escaped (their reader opens the file
    in the platform's encoding)."""
    if len(queries) != len(predictions):
        raise ValueError(f"{len(queries)} queries but {len(predictions)} predictions")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for query, moments in zip(queries, predictions, strict=True):
            f.write(json.dumps(submission_line(query, moments), allow_nan=False) + "\n")


def read_predictions(path: Path) -> dict[str | int, np.ndarray]:
    """qid -> (P, 3) [start, end, score] moments of a submission file, in the order written (a DatasetError
    names the line of a malformed one)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"predictions file not found: {path}")
    out: dict[str | int, np.ndarray] = {}
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {n}"
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(d, dict) or "qid" not in d or "pred_relevant_windows" not in d:
                raise DatasetError(f"{where}: a JSON object with qid and pred_relevant_windows expected")
            qid, windows = d["qid"], d["pred_relevant_windows"]
            if not isinstance(qid, str | int) or isinstance(qid, bool):
                raise DatasetError(f"{where}: qid must be a string or an integer")
            if qid in out:
                raise DatasetError(f"{where}: qid {qid!r} is predicted twice")
            if not isinstance(windows, list) or not all(
                    isinstance(w, list) and len(w) == 3 and all(map(is_number, w)) for w in windows):
                raise DatasetError(f"{where}: pred_relevant_windows must be a list of [start, end, score] "
                                   f"numbers")
            out[qid] = np.array(windows, dtype=np.float64).reshape(-1, 3)
    return out


def score_predictions(path: Path, queries: list[MomentQuery]) -> dict[str, float]:
    """The moment metrics of a submission file against the queries' relevant windows; as the benchmarks'
    evaluation does by default, it must predict every query and no other."""
    predicted = read_predictions(path)
    missing = [q.qid for q in queries if q.qid not in predicted]
    extra = sorted(map(str, set(predicted) - {q.qid for q in queries}))
    if missing or extra:
        raise DatasetError(f"{path} does not predict the annotated queries: {len(missing)} missing "
                           f"(e.g. {missing[:3]}), {len(extra)} not annotated (e.g. {extra[:3]})")
    return moment_metrics([predicted[q.qid] for q in queries], [q.relevant for q in queries])
