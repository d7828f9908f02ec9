"""The challenge's retrieval metrics: every caption is a query with exactly one relevant clip.

Ranks are 1-based. Ties are broken by clip index, as a stable descending sort would: the relevant clip is
placed after every clip that scores strictly higher and after tied clips with a lower index.
"""

import numpy as np

KS = (1, 5, 10)
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
    return (1 + higher + tied_before).astype(np.int64)


def retrieval_metrics(ranks: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 and mAP@10 (= mean of 1/rank within the top 10, else 0)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no queries to score")
    out = {f"R@{k}": float((ranks <= k).mean()) for k in KS}
    out["mAP@10"] = float(np.where(ranks <= 10, 1.0 / ranks, 0.0).mean())
    return out
