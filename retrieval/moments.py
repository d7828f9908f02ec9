"""Moments: scored windows of one clip merged into [start, end] spans, and the IoU of two spans.

A window whose score reaches the threshold is a candidate; candidates of one clip that overlap or touch
(start <= the running end, within `gap` seconds) are merged into one moment covering the earliest start to
the latest end, scored by its best window. At most `per_clip` moments per clip, best first.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moment:
    start: float
    end: float
    score: float  # the best window's score
    window: int  # index of that window in the clip

    def to_dict(self) -> dict[str, float]:
        return {"start": self.start, "end": self.end, "score": self.score}


def best_window(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray) -> Moment:
    """The clip's single best window as a moment (ties: the earliest)."""
    i = int(np.argmax(scores))
    return Moment(float(starts[i]), float(ends[i]), float(scores[i]), i)


def merge_windows(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, *, threshold: float,
                  per_clip: int = 3, gap: float = 0.0) -> list[Moment]:
    """Windows of one clip with score >= `threshold`, overlapping or adjacent ones merged; best first."""
    starts, ends, scores = (np.asarray(a, dtype=np.float64) for a in (starts, ends, scores))
    if not (starts.shape == ends.shape == scores.shape) or starts.ndim != 1:
        raise ValueError(f"(W,) starts, ends and scores expected, got {starts.shape}, {ends.shape}, "
                         f"{scores.shape}")
    if per_clip < 1:
        raise ValueError(f"per_clip must be >= 1, got {per_clip}")
    keep = np.flatnonzero(scores >= threshold)
    keep = keep[np.lexsort((ends[keep], starts[keep]))]
    merged: list[Moment] = []
    for i in keep:
        s, e, x = float(starts[i]), float(ends[i]), float(scores[i])
        if merged and s <= merged[-1].end + gap:
            last = merged[-1]
            best = (x, int(i)) if x > last.score else (last.score, last.window)
            merged[-1] = Moment(last.start, max(last.end, e), best[0], best[1])
        else:
            merged.append(Moment(s, e, x, int(i)))
    merged.sort(key=lambda m: (-m.score, m.start))
    return merged[:per_clip]


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal intersection over union of two [start, end] spans (0 when they do not meet)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0
