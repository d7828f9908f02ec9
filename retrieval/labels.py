"""The 527 AudioSet class names, in PaSST's output order (package data, see data/ATTRIBUTION.md)."""

import csv
from functools import cache
from importlib.resources import files

import numpy as np

from retrieval.config import N_TAGS


@cache
def audioset_labels() -> tuple[str, ...]:
    text = files("retrieval").joinpath("data/class_labels_indices.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    names = tuple(row["display_name"] for row in sorted(rows, key=lambda r: int(r["index"])))
    if len(names) != N_TAGS or [int(r["index"]) for r in rows] != list(range(N_TAGS)):
        raise RuntimeError("the packaged AudioSet label file is damaged")
    return names


def top_tags(logits: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
    """(527,) logits -> the k most probable AudioSet names with their sigmoid probabilities."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    labels = audioset_labels()
    return [(labels[i], float(p[i])) for i in np.argsort(-p, kind="stable")[:k]]
