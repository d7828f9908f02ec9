"""The metrics: the challenge's clip retrieval, and the moment retrieval of CASTELLA and Clotho-Moment.

Clip retrieval: every caption is a query with exactly one relevant clip. Ranks are 1-based. Ties are broken
by clip index, as a stable descending sort would: the relevant clip is placed after every clip that scores
strictly higher and after tied clips with a lower index.

Moment retrieval: every query has one or more relevant [start, end] windows in its clip and a list of
predicted [start, end, score] moments, best first. The definitions are those of the Moment-DETR standalone
evaluation (jayleicn/moment_detr ``standalone_eval/eval.py`` ``compute_mr_r1`` and ``compute_mr_ap``, with
``standalone_eval/utils.py`` ``compute_average_precision_detection``), which CASTELLA and Clotho-Moment are
scored with (line/lighthouse ``training/standalone_eval/``); see the README, "Evaluating moment retrieval".
"""

import numpy as np

from retrieval.moments import iou

KS = (1, 5, 10)
TOP_K = 10  # mAP@10 counts the first 10 ranks, as the challenge lists 10 clips per caption
METRIC_NAMES = (*(f"R@{k}" for k in KS), "mAP@10")  # in the order every table shows them


def ranks_from_scores(S: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """S: (Q, N) scores of Q queries against N clips, targets: (Q,) relevant clip -> (Q,) int ranks."""
    S = np.asarray(S)
    targets = np.asarray(targets, dtype=np.int64)
    if S.ndim != 2 or targets.shape != (S.shape[0],):
        raise ValueError(f"scores (Q, N) and targets (Q,) expected, got {S.shape} and {targets.shape}")
    own = S[np.arange(len(targets)), targets][:, None]  # (Q, 1)
    higher = (S > own).sum(1)
    tied_before = ((S == own) & (np.arange(S.shape[1])[None, :] < targets[:, None])).sum(1)
    ranks = (1 + higher + tied_before).astype(np.int64)
    # a score that is no number (a diverged head, a NaN in the features) compares false with everything, which
    # would rank it first: it is a miss, ranked after every clip and past every cutoff (rank N would be a hit
    # for R@10 in a set of up to 10 clips)
    ranks[np.isnan(own[:, 0])] = max(S.shape[1], *KS, TOP_K) + 1
    return ranks


def retrieval_metrics(ranks: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 and mAP@10 (= mean of 1/rank within the top 10, else 0)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no queries to score")
    out = {f"R@{k}": float((ranks <= k).mean()) for k in KS}
    out["mAP@10"] = float(np.where(ranks <= TOP_K, 1.0 / ranks, 0.0).mean())
    return out


MOMENT_IOUS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)  # np.linspace(0.5, 0.95, 10)
MAX_MOMENTS = 10  # the predictions of a query that count towards its AP (their max_pred_windows)
MOMENT_METRIC_NAMES = ("R1@0.5", "R1@0.7", "mAP", "mAP@0.5", "mAP@0.75")


def moment_ious(pred: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """(P, >=2) predicted and (G, 2) relevant [start, end] spans -> (P, G) temporal IoUs."""
    return np.array([[iou(p[:2], g) for g in relevant] for p in pred]).reshape(len(pred), len(relevant))


def interpolated_ap(hits: np.ndarray, n_relevant: int) -> float:
    """(P,) 1 for a true positive, 0 for a false one, in score order -> the area under the precision
    envelope (VOC 2011: recall runs from 0 to 1, precision is made non-increasing from the right)."""
    found = np.cumsum(hits)
    precision = np.concatenate([[0.0], found / np.arange(1, len(hits) + 1), [0.0]])
    recall = np.concatenate([[0.0], found / n_relevant, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def moment_average_precision(pred: np.ndarray, relevant: np.ndarray,
                             thresholds: tuple[float, ...] = MOMENT_IOUS) -> np.ndarray:
    """One query's (P, 3) [start, end, score] predictions, best first, and (G, 2) relevant windows -> (T,) AP.

    The first MAX_MOMENTS predictions are taken by descending score (ties in the given order); each in turn
    is a true positive when some relevant window not yet matched has IoU >= the threshold with it (it takes
    the one of highest IoU, ties by listing order), else a false positive.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)[:MAX_MOMENTS]
    pred = pred[np.argsort(-pred[:, 2], kind="stable")]
    ious = moment_ious(pred, relevant)  # (P, G)
    ap = np.zeros(len(thresholds))
    for t, threshold in enumerate(thresholds):
        free = np.ones(len(relevant), dtype=bool)
        hits = np.zeros(len(pred))
        for i, row in enumerate(ious):
            candidates = np.flatnonzero(free & (row >= threshold))
            if candidates.size:
                free[candidates[np.argmax(row[candidates])]] = False
                hits[i] = 1.0
        ap[t] = interpolated_ap(hits, len(relevant)) if len(pred) else 0.0
    return ap


def moment_metrics(predictions: list[np.ndarray], relevant: list[np.ndarray]) -> dict[str, float]:
    """Per query (P, 3) predictions, best first, and (G >= 1, 2) relevant windows -> MOMENT_METRIC_NAMES.

    R1@t: the share of queries whose first prediction has IoU >= t with one of its relevant windows.
    mAP@t: the queries' mean AP at t; mAP: the mean of mAP@t over MOMENT_IOUS. A query without predictions
    scores 0 in both (the reference needs one per query: its R1 reads the first, its mAP leaves the query
    out).
    """
    if len(predictions) != len(relevant) or not predictions:
        raise ValueError(f"predictions and relevant windows of the same queries expected, got "
                         f"{len(predictions)} and {len(relevant)}")
    if any(len(g) == 0 for g in relevant):
        raise ValueError("every query needs at least one relevant window")
    pairs = list(zip(predictions, relevant, strict=True))
    ap = np.stack([moment_average_precision(p, g) for p, g in pairs])  # (Q, T)
    top = np.array([moment_ious(p[:1], g).max() if len(p) else 0.0 for p, g in pairs])  # (Q,) first: best IoU
    per_threshold = dict(zip(MOMENT_IOUS, ap.mean(axis=0), strict=True))
    return {"R1@0.5": float((top >= 0.5).mean()), "R1@0.7": float((top >= 0.7).mean()),
            "mAP": float(ap.mean()), "mAP@0.5": float(per_threshold[0.5]),
            "mAP@0.75": float(per_threshold[0.75])}
