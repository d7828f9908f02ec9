"""The checks every store runs on what it is given, before anything is written or searched: query
vectors, rows of vectors and logits, a clip's timeline, and the model a store was made with."""

import operator

import numpy as np

from index.store.records import Timeline, Windows
from retrieval.config import N_TAGS
from retrieval.model_spec import PASST_FIELDS, ModelSpec
from retrieval.waveform import MAX_PEAKS

MAX_K = 2**40  # more hits than any collection holds: a larger k asks for all of them, as this one does
# a tie at a search's cut is asked deeper, by every store, up to this many hits a query (or k + 1), no
# further: a tie group of 200,000 identical vectors otherwise made every query ask for all of them (and a
# window search build a hit of each); past it, ties are ranked by id among the hits the index returned
MAX_TIE_DEPTH = 4096


# how far past its clip's recorded duration a window may end, in seconds: the two are the same decoded length
# today; a decoder of another version may have counted a compressed file's padding frames differently
SPAN_SLACK_S = 0.5


def check_k(k: int) -> int:
    """k as a Python int in [0, MAX_K] (numpy integers too; a larger one is MAX_K); TypeError for what is no
    integer, ValueError for a negative one (shared by every search)."""
    k = operator.index(k)
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    return min(k, MAX_K)


def check_queries(xq: np.ndarray, *, dim: int) -> np.ndarray:
    """(Q, dim) finite float32 query vectors, or ValueError (shared by every backend)."""
    xq = np.asarray(xq, dtype=np.float32)
    if xq.ndim != 2 or xq.shape[1] != dim or not np.isfinite(xq).all():
        raise ValueError(f"expected (Q, {dim}) finite query vectors, got {xq.shape}")
    return xq


def check_rows(n: int, vectors: np.ndarray, logits: np.ndarray, *, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) vectors and (n, 527) logits, finite float32, or ValueError."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(n, -1)  # (N, D)
    logits = np.asarray(logits, dtype=np.float32).reshape(n, -1)  # (N, 527)
    if vectors.shape[1] != dim or logits.shape[1] != N_TAGS:
        raise ValueError(f"expected vectors (N, {dim}) and logits (N, {N_TAGS}), "
                         f"got {vectors.shape} and {logits.shape}")
    if not (np.isfinite(vectors).all() and np.isfinite(logits).all()):
        raise ValueError("vectors and logits must be finite")
    return vectors, logits


def check_spans(starts, ends, *, duration: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(W,) float64 starts and ends of a clip's windows, or ValueError: W >= 1, finite, 0 <= start <= end,
    both in time order (as PaSST's windows are, retrieval.windows.window_spans), and, given the clip's
    `duration`, none ending after it."""
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    n = len(starts)
    if n < 1 or starts.shape != (n,) or ends.shape != (n,):
        raise ValueError(f"expected (W,) starts and ends (W >= 1), got {starts.shape}, {ends.shape}")
    if not (np.isfinite(starts).all() and np.isfinite(ends).all() and (starts >= 0).all()
            and (ends >= starts).all()):
        raise ValueError("window spans must be finite with 0 <= start <= end")
    if (np.diff(starts) < 0).any() or (np.diff(ends) < 0).any():
        raise ValueError("window spans must be in time order")
    if duration is not None and ends[-1] > duration + SPAN_SLACK_S:
        raise ValueError(f"a window ends at {ends[-1]:.3f} s, after the clip's {duration:.3f} s")
    return starts, ends


def check_timeline(t: Timeline, *, dim: int) -> Timeline:
    """A clip's windows and peaks in the stored dtypes, or ValueError: W >= 1 spans (check_spans), (W, D)
    finite vectors, (W, 527) finite logits, 1 to MAX_PEAKS peaks."""
    w = t.windows
    if w.logits is None:
        raise ValueError("a timeline's windows need their logits")
    starts, ends = check_spans(w.starts, w.ends)
    n = len(starts)
    vectors, logits = check_rows(n, w.vectors, w.logits, dim=dim)
    vectors16 = vectors.astype(np.float16)
    if not np.isfinite(vectors16).all():
        raise ValueError("window vectors must be finite in float16")
    peaks = np.asarray(t.peaks)
    if peaks.ndim != 1 or not 1 <= len(peaks) <= MAX_PEAKS or peaks.dtype != np.uint8:
        raise ValueError(f"expected 1 to {MAX_PEAKS} uint8 peaks, got {peaks.dtype} {peaks.shape}")
    return Timeline(Windows(starts, ends, vectors16, logits), peaks)


def check_store_spec(stored: ModelSpec, wanted: ModelSpec, *, where: str) -> None:
    """Raise CheckpointMismatch, saying how to fix it, when a store's model is not the configured one."""
    if stored.diff(wanted, only=PASST_FIELDS):
        fix = ("the stored PaSST logits come from another tagger, so the collection must be indexed again: "
               "use another RETRIEVAL_DATA_DIR (or configure the tagger the index was built with)")
    else:
        fix = ("set RETRIEVAL_CHECKPOINT (and RETRIEVAL_TEXT_MODEL) to what the index was built with, "
               "or re-project the stored logits with the configured model: "
               "`retrieval index reproject` (no PaSST needed), "
               "or use another RETRIEVAL_DATA_DIR")
    stored.require_match(wanted, what=f"the index in {where}", fix=fix)
