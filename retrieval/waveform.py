"""A clip's waveform overview: the peak amplitude of each of `bins` equal slices, computed once at ingestion.

Peaks are stored as uint8 (0 silence, 255 full scale), so a clip's overview costs PEAKS bytes whatever its
length; the page draws them on a canvas. :class:`PeakTracker` computes them block by block (a long file read
in blocks, :class:`retrieval.audio.LongWave`); :func:`peaks` of a whole wave is the tracker over one block.
"""

from typing import Protocol

import numpy as np

PEAKS = 400  # slices per clip: one per pixel of the page's waveform at its usual width
MAX_PEAKS = 4096  # what a store accepts


class StreamedWave(Protocol):
    """Samples that are not held whole (a long file read block by block): they know their own peaks."""

    def __len__(self) -> int: ...

    def peaks(self, bins: int = PEAKS) -> np.ndarray: ...


class PeakTracker:
    """The peaks of `n` samples that arrive in blocks (:meth:`add`, in order): the same slices as
    :func:`peaks` of the whole wave. `exact` is False when the blocks held another number of samples than
    `n` (a header's frame count that was wrong): extra samples went into the last slice."""

    def __init__(self, n: int, bins: int = PEAKS):
        self.n = max(1, int(n))
        self.bins = bins
        self.edges = np.linspace(0, self.n, min(bins, self.n) + 1).astype(np.int64)  # (P + 1,) slice bounds
        self.top = np.zeros(len(self.edges) - 1, np.float32)  # (P,) each slice's largest |sample| so far
        self.seen = 0

    def add(self, block: np.ndarray) -> None:
        x = np.abs(np.asarray(block, dtype=np.float32))
        if x.size == 0:
            return
        start, end = self.seen, self.seen + x.size
        self.seen = end
        first = min(int(np.searchsorted(self.edges, start, side="right")) - 1, len(self.top) - 1)
        inner = self.edges[(self.edges > start) & (self.edges < end) & (self.edges < self.n)] - start
        tops = np.maximum.reduceat(x, np.concatenate([[0], inner]).astype(np.int64))  # (k,) slices touched
        k = min(len(tops), len(self.top) - first)
        self.top[first:first + k] = np.maximum(self.top[first:first + k], tops[:k])
        if k < len(tops):  # more samples than announced: they count in the last slice
            self.top[-1] = max(self.top[-1], float(tops[k:].max()))

    @property
    def exact(self) -> bool:
        return self.seen == self.n

    def result(self) -> np.ndarray:
        """(P,) uint8, 255 = full scale."""
        return np.round(255 * np.clip(self.top, 0.0, 1.0)).astype(np.uint8)


def peaks(wave: np.ndarray | StreamedWave, bins: int = PEAKS) -> np.ndarray:
    """(n,) samples in [-1, 1] -> (min(bins, n),) uint8: each slice's largest |sample|, 255 = full scale. A
    streamed wave answers its own (computed while its windows were tagged, or by reading it once more)."""
    if not isinstance(wave, np.ndarray):
        return wave.peaks(bins)
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    if x.size == 0:
        return np.zeros(1, np.uint8)
    tracker = PeakTracker(x.size, bins)
    tracker.add(x)
    return tracker.result()
