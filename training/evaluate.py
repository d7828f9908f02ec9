"""Evaluation on a feature file: every caption ranks every clip; ensembles average the similarity scores.

Also the challenge's submission CSV (``caption,file_name_1,...,file_name_10``) and its scoring against a
Clotho captions file. Ties in the top 10 are ordered by clip index, as ``retrieval.metrics`` ranks them.
"""

import csv
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from retrieval.checkpoint import Checkpoint, load_checkpoint, zero_shot
from retrieval.durable import atomic_path
from retrieval.head import RetrievalHead
from retrieval.metrics import TOP_K, ranks_from_scores, retrieval_metrics
from retrieval.model_spec import ENCODER_FIELDS
from training.datasets import DatasetError, read_clotho_captions, read_csv_rows
from training.features import FeatureSet

log = logging.getLogger(__name__)

SUBMISSION_HEADER = ["caption"] + [f"file_name_{i}" for i in range(1, TOP_K + 1)]


@torch.inference_mode()
def similarity(head: RetrievalHead, fs: FeatureSet) -> np.ndarray:
    """(M, N) cosine scores of every caption against every clip."""
    head = head.eval()
    device = next(head.parameters()).device
    a = head.encode_audio(torch.from_numpy(fs.logits).to(device))  # (N, D)
    q = head.encode_text(torch.from_numpy(fs.text).to(device))  # (M, D)
    return (q @ a.T).cpu().numpy()


def ensemble_similarity(heads: list[RetrievalHead], fs: FeatureSet) -> np.ndarray:
    """(M, N) mean of the heads' scores."""
    if not heads:
        raise ValueError("at least one head is needed")
    return np.mean([similarity(h, fs) for h in heads], axis=0)


def metrics_of(S: np.ndarray, fs: FeatureSet) -> dict[str, float]:
    return retrieval_metrics(ranks_from_scores(S, fs.caption_clip))


def check_checkpoint_fits(ckpt: Checkpoint, fs: FeatureSet, *, name: str = "checkpoint") -> None:
    """Refuse a head made with other models than the feature file's."""
    ckpt.spec.require_match(fs.spec, only=ENCODER_FIELDS, what=name,
                            fix="use it with features made with the models it was trained on")


def load_heads(paths: list[Path], fs: FeatureSet) -> list[RetrievalHead]:
    heads = []
    for path in paths:
        ckpt = load_checkpoint(path)
        check_checkpoint_fits(ckpt, fs, name=str(path))
        heads.append(ckpt.head)
    return heads


def zero_shot_head(fs: FeatureSet) -> RetrievalHead:
    """lam = 0 from the feature file's own tag-name embeddings: nothing trained."""
    return zero_shot(torch.from_numpy(fs.tag_text), fs.spec).head


def top_clips(S: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """(M, N) scores -> (M, k) clip indices, best first, ties by clip index."""
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def write_submission(path: Path, *, S: np.ndarray, fs: FeatureSet) -> None:
    """The challenge's CSV: one row per caption, its raw text then the file names of its top 10 clips."""
    top = top_clips(S)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(SUBMISSION_HEADER[: 1 + top.shape[1]])
        for caption, row in zip(fs.captions, top, strict=True):
            w.writerow([caption, *(fs.clips[i] for i in row)])


def read_submission(path: Path) -> dict[str, list[tuple[int, list[str]]]]:
    """caption -> (line, predicted file names) of its rows, in file order (a caption may occur twice)."""
    out: dict[str, list[tuple[int, list[str]]]] = defaultdict(list)
    rows = read_csv_rows(Path(path), header=SUBMISSION_HEADER[:2], what="predictions file")
    for row in rows:  # each with the file's line it starts on (a caption may hold a line break)
        names = [row[c] for c in SUBMISSION_HEADER[1:] if row.get(c)]
        out[row["caption"].strip()].append((row.line, names))
    return out


def score_submission(predictions: Path, captions: Path) -> dict[str, float]:
    """Metrics of a submission CSV against a Clotho captions file (ranks past 10 count as misses).

    A caption that occurs several times in the captions file is matched to its rows in the predictions in
    order, as :func:`write_submission` writes them. Each row must name 10 distinct clips of the captions file
    (all of them, when it holds fewer): a row of fewer, or of other files, is refused, not scored as misses.
    """
    predicted = read_submission(predictions)
    expected = read_clotho_captions(Path(captions))
    clips = {file_name for file_name, _ in expected}
    needed = min(TOP_K, len(clips))
    used: dict[str, int] = defaultdict(int)
    ranks = []
    for file_name, caps in expected:
        for cap in caps:
            rows = predicted.get(cap, [])
            if used[cap] >= len(rows):
                raise DatasetError(f"{predictions} has no row for the caption {cap!r}")
            line, names = rows[used[cap]]
            used[cap] += 1
            where = f"{predictions}, line {line}"
            if len(names) < needed or len(set(names[:TOP_K])) < needed:
                raise DatasetError(f"{where}: {len(set(names[:TOP_K]))} distinct clips for {cap!r}; a set of "
                                   f"{len(clips)} clips needs {needed}")
            if strangers := [n for n in names[:TOP_K] if n not in clips]:
                raise DatasetError(f"{where}: {strangers[0]!r} is no clip of {captions}")
            ranks.append(names.index(file_name) + 1 if file_name in names[:TOP_K] else TOP_K + 1)
    return retrieval_metrics(np.array(ranks))
