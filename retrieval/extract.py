"""The one path from audio to logits: decode -> windows -> tagger -> per-window logits and their mean.

Every path from audio to PaSST goes through :func:`extract_many`: several decoded clips' windows in each
forward pass, then, when a clip's moments are made of finer windows, their second pass. The service's uploads
and `index add` (the ingest loop, :func:`index.ingest.worker.ingest`), `backfill-windows`, query by example
and the audio verbs of :class:`retrieval.pipeline.Retriever` call it; feature extraction for training and
`retrieval tag` through :func:`extract` (one file); the Ray actors on the clips of their own decode stage
(:func:`decode`). Each caller keeps only its own bookkeeping (resuming, progress, storing).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.audio import MAX_CHANNELS, AudioInfo, DecodedAudio, decode_audio, probe_audio
from retrieval.config import Windowing
from retrieval.contracts import Tagger
from retrieval.windows import WindowLogits


@dataclass(frozen=True)
class AudioLimits:
    """What a clip may be; longer or wider input is refused before its samples are decoded."""

    max_duration_s: float | None = None
    max_channels: int = MAX_CHANNELS


@dataclass(frozen=True)
class Extraction:
    """One clip through PaSST: its decoded audio, its windows and the windows its moments are made of."""

    audio: DecodedAudio
    windows: WindowLogits  # (W, 527) with each window's start and end in the clip
    moment_windows: WindowLogits  # `windows` itself, or those of a finer second pass (moment_windowing)

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


def extract_many(clips: Sequence[DecodedAudio], tagger: Tagger, *, moment_windowing: Windowing | None = None,
                 on_batch: Callable[[list[int]], None] | None = None) -> list[Extraction]:
    """Decoded clips through PaSST together, in their order: each forward pass holds windows of any of them
    (the tagger's `batch_windows`), and after each pass of the clips' windows `on_batch` is told which clip
    each of its windows belonged to (progress). The moment windows are the clip's windows, or with
    `moment_windowing` those of a second pass cut finer (all clips' windows together again)."""
    waves = [clip.wave for clip in clips]
    windows = tagger.window_logits_many(waves, on_batch=on_batch)
    moments = (windows if moment_windowing is None
               else tagger.window_logits_many(waves, windowing=moment_windowing))
    return [Extraction(*parts) for parts in zip(clips, windows, moments, strict=True)]


def extract(source: str | Path | bytes, tagger: Tagger, *, limits: AudioLimits = AudioLimits(),
            name: str | None = None) -> Extraction:
    """Decode `source` (a path or bytes) and run PaSST over its windows (:func:`extract_many`, one clip)."""
    return extract_many([decode(source, limits=limits, name=name)], tagger)[0]
