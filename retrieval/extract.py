"""The one path from audio to logits: decode -> windows -> tagger -> per-window logits and their mean.

`index add`, the service's uploads and query by example, feature extraction for training and the Ray
actors all go through :func:`extract` (the Ray pipeline runs its two halves, :func:`decode` and the
tagger, in separate stages); each caller keeps only its own bookkeeping (resuming, progress, storing).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.audio import MAX_CHANNELS, AudioInfo, DecodedAudio, decode_audio, probe_audio
from retrieval.contracts import Tagger
from retrieval.windows import WindowLogits


@dataclass(frozen=True)
class AudioLimits:
    """What a clip may be; longer or wider input is refused before its samples are decoded."""

    max_duration_s: float | None = None
    max_channels: int = MAX_CHANNELS


@dataclass(frozen=True)
class Extraction:
    audio: DecodedAudio
    windows: WindowLogits  # (W, 527) with each window's start and end in the clip

    @property
    def logits(self) -> np.ndarray:
        """(527,) the clip's logits: the mean over its windows."""
        return self.windows.mean()


def decode(source: str | Path | bytes, *, limits: AudioLimits = AudioLimits(),
           name: str | None = None) -> DecodedAudio:
    return decode_audio(source, max_duration_s=limits.max_duration_s, max_channels=limits.max_channels,
                        name=name)


def probe(source: str | Path | bytes, *, limits: AudioLimits = AudioLimits(),
          name: str | None = None) -> AudioInfo:
    """The header's facts, held to the limits, without decoding the samples."""
    return probe_audio(source, max_duration_s=limits.max_duration_s, max_channels=limits.max_channels,
                       name=name)


def extract(source: str | Path | bytes, tagger: Tagger, *, limits: AudioLimits = AudioLimits(),
            name: str | None = None) -> Extraction:
    """Decode `source` (a path or bytes) and run PaSST over its windows."""
    audio = decode(source, limits=limits, name=name)
    return Extraction(audio, tagger.window_logits(audio.wave))
