"""A PaSST stand-in with known outputs: each window's logits say which tones it holds.

Windows are cut as hear21passt cuts them (reflect padding, `window_spans`); a window's probability of
TONES[f] is the share of its energy within 20 Hz of f (so a window half in a 440 Hz section and half in an
880 Hz one is half "Dog", half "Rain"), every other tag is near 0. No model, no cost: a 60 s file is tagged
in milliseconds.
"""

import numpy as np

from retrieval.config import N_TAGS, Windowing
from retrieval.labels import audioset_labels
from retrieval.model_spec import ModelSpec
from retrieval.tagger import MIN_SAMPLES
from retrieval.windows import WindowLogits, window_spans

TONES = {440.0: "Dog", 880.0: "Rain", 1760.0: "Music"}
BAND_HZ = 20.0
FLOOR = 1e-4  # the probability of every tag a window does not hold


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, FLOOR, 1 - FLOOR)
    return np.log(p / (1 - p))


def cut(wave: np.ndarray, windowing: Windowing) -> np.ndarray:
    """(n,) -> (W, L) windows, as retrieval.tagger.PasstTagger.windows cuts them."""
    x = np.asarray(wave, dtype=np.float32)
    if x.size < MIN_SAMPLES:
        x = np.pad(x, (0, MIN_SAMPLES - x.size))
    if x.size <= windowing.window:
        return x[None]
    padded = np.pad(x, windowing.pad, mode="reflect")
    n = windowing.n_windows(x.size)
    return np.stack([padded[i * windowing.hop:i * windowing.hop + windowing.window] for i in range(n)])


def tone_logits(window: np.ndarray, rate: int) -> np.ndarray:
    """(L,) -> (527,) logits: each tone's share of the window's energy."""
    power = np.abs(np.fft.rfft(window.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(window), 1 / rate)
    total = power.sum() + 1e-12
    p = np.full(N_TAGS, FLOOR)
    labels = audioset_labels()
    for f, label in TONES.items():
        p[labels.index(label)] = power[np.abs(freqs - f) <= BAND_HZ].sum() / total
    return logit(p).astype(np.float32)


class ToneTagger:
    """Satisfies retrieval.contracts.Tagger."""

    def __init__(self, spec: ModelSpec = ModelSpec(passt_weights="tone-stand-in")):
        self.spec = spec.encoders()
        self.windowing = spec.windowing
        self.calls = 0  # windows tagged

    def window_logits(self, wave: np.ndarray) -> WindowLogits:
        return self.window_logits_many([wave])[0]

    def window_logits_many(self, waves, *, on_batch=None, windowing=None) -> list[WindowLogits]:
        windowing = windowing or self.windowing
        out = []
        for i, wave in enumerate(waves):
            windows = cut(wave, windowing)
            logits = np.stack([tone_logits(w, windowing.sample_rate) for w in windows])  # (W, 527)
            starts, ends = window_spans(len(wave), windowing)
            out.append(WindowLogits(logits=logits, starts=starts, ends=ends))
            self.calls += len(windows)
            if on_batch is not None:
                on_batch([i] * len(windows))
        return out


def sections(*parts: tuple[float, float], rate: int = 32_000, amplitude: float = 0.5) -> np.ndarray:
    """Tone sections one after the other: (frequency Hz, seconds) each; frequency 0 is silence."""
    waves = []
    for freq, seconds in parts:
        t = np.arange(int(seconds * rate)) / rate
        waves.append(amplitude * np.sin(2 * np.pi * freq * t))
    return np.concatenate(waves).astype(np.float32)
