"""A clip's waveform overview: the peak amplitude of each of `bins` equal slices, computed once at ingestion.

Peaks are stored as uint8 (0 silence, 255 full scale), so a clip's overview costs PEAKS bytes whatever its
length; the page draws them on a canvas.
"""

import numpy as np

PEAKS = 400  # slices per clip: one per pixel of the page's waveform at its usual width
MAX_PEAKS = 4096  # what a store accepts


def peaks(wave: np.ndarray, bins: int = PEAKS) -> np.ndarray:
    """(n,) samples in [-1, 1] -> (min(bins, n),) uint8: each slice's largest |sample|, 255 = full scale."""
    x = np.abs(np.asarray(wave, dtype=np.float32))
    if x.size == 0:
        return np.zeros(1, np.uint8)
    edges = np.linspace(0, x.size, min(bins, x.size) + 1).astype(np.int64)  # (P + 1,) slice bounds
    top = np.maximum.reduceat(x, edges[:-1])  # (P,) every slice holds at least one sample
    return np.round(255 * np.clip(top, 0.0, 1.0)).astype(np.uint8)
