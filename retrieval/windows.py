"""Per-window PaSST logits with each window's place in the clip, and their mean (the clip's logits).

hear21passt cuts a clip longer than one window into windows every hop over the clip reflect-padded by half a
window on each side; window i covers [i * hop - pad, i * hop - pad + window) of the clip, which is clamped
to the clip here. A clip of up to one window is one window over the whole clip.
"""

from dataclasses import dataclass

import numpy as np

from retrieval.config import Windowing


def window_spans(n_samples: int, windowing: Windowing) -> tuple[np.ndarray, np.ndarray]:
    """(W,) start and (W,) end times in seconds, in the clip's own time, of hear21passt's windows."""
    rate = windowing.sample_rate
    duration = n_samples / rate
    n = windowing.n_windows(n_samples)
    if n == 1:
        return np.zeros(1), np.full(1, duration)
    offsets = (np.arange(n) * windowing.hop - windowing.pad) / rate  # (W,)
    return np.clip(offsets, 0.0, duration), np.clip(offsets + windowing.window / rate, 0.0, duration)


@dataclass(frozen=True)
class WindowLogits:
    logits: np.ndarray  # (W, 527) float32, one row per window
    starts: np.ndarray  # (W,) seconds
    ends: np.ndarray  # (W,) seconds

    def __post_init__(self) -> None:
        w = self.logits.shape[0]
        if self.logits.ndim != 2 or self.starts.shape != (w,) or self.ends.shape != (w,):
            raise ValueError(f"(W, 527) logits with (W,) starts and ends expected, got {self.logits.shape}, "
                             f"{self.starts.shape}, {self.ends.shape}")

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def mean(self) -> np.ndarray:
        """(527,) float32: the clip's logits, the mean over windows (accumulated in float64)."""
        return self.logits.astype(np.float64).mean(axis=0).astype(np.float32)
