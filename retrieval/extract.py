"""The one path from audio to logits: decode -> windows -> tagger -> per-window logits and their mean.

Every path from audio to PaSST goes through :func:`extract_many`: several decoded clips' windows in each
forward pass, then, when a clip's moments are made of finer windows, their second pass. The service's uploads
and `index add` (the ingest loop, :func:`index.ingest.worker.ingest`), `backfill-windows`, query by example
and the audio verbs of :class:`retrieval.pipeline.Retriever` call it; feature extraction for training and
`retrieval tag` through :func:`extract` (one file); the Ray actors on the clips of their own decode stage
(:func:`decode`). Each caller keeps only its own bookkeeping (resuming, progress, storing).

A clip longer than `AudioLimits.whole_up_to_s` is decoded as a :class:`retrieval.audio.LongWave` and tagged
as it is read: its blocks are cut into hear21passt's windows (reflect padding of half a window at both ends
included, :class:`WindowCutter`) and handed to the tagger `STREAM_WINDOWS` at a time, each window as a clip
of exactly one window (which the tagger takes as it is), its waveform peaks computed in the same pass. Only
a few windows of samples are held, whatever the recording's length, and the windows, their spans and logits
are those of the whole wave (the tests hold one to the other).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from retrieval.audio import MAX_CHANNELS, AudioInfo, DecodedAudio, LongWave, decode_audio, probe_audio
from retrieval.config import Windowing
from retrieval.contracts import Tagger
from retrieval.waveform import PeakTracker
from retrieval.windows import WindowLogits, window_spans

WHOLE_UP_TO_S = 120.0  # longer clips are read block by block as they are tagged (30 MB of samples at most)
STREAM_WINDOWS = 16  # a long clip's windows handed to the tagger at a time (20 MB of 10 s windows)


@dataclass(frozen=True)
class AudioLimits:
    """What a clip may be; longer or wider input is refused before its samples are decoded. `setting` names
    what sets `max_duration_s` (in the refusal's message). A clip longer than `whole_up_to_s` (None: none)
    is read block by block when it is tagged, not held whole."""

    max_duration_s: float | None = None
    max_channels: int = MAX_CHANNELS
    setting: str | None = None
    channels_setting: str | None = None  # what sets `max_channels` (in the refusal's message)
    whole_up_to_s: float | None = WHOLE_UP_TO_S


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
                        name=name, whole_up_to_s=limits.whole_up_to_s, limit_name=limits.setting,
                        channels_name=limits.channels_setting)


def probe(source: str | Path | bytes, *, limits: AudioLimits = AudioLimits(),
          name: str | None = None) -> AudioInfo:
    """The header's facts, held to the limits, without decoding the samples."""
    return probe_audio(source, max_duration_s=limits.max_duration_s, max_channels=limits.max_channels,
                       name=name, limit_name=limits.setting, channels_name=limits.channels_setting)


def extract_many(clips: Sequence[DecodedAudio], tagger: Tagger, *, moment_windowing: Windowing | None = None,
                 on_batch: Callable[[list[int]], None] | None = None) -> list[Extraction]:
    """Decoded clips through PaSST together, in their order: each forward pass holds windows of any of them
    (the tagger's `batch_windows`), and after each pass of the clips' windows `on_batch` is told which clip
    each of its windows belonged to (progress). The moment windows are the clip's windows, or with
    `moment_windowing` those of a second pass cut finer (all clips' windows together again). A long clip
    (a :class:`LongWave`) is read once, its windows of both windowings tagged as they come (see the
    module docstring); the others are held whole and tagged together."""
    widest = max(tagger.spec.windowing.window, 0 if moment_windowing is None else moment_windowing.window)
    clips = [replace(c, wave=c.wave.read()) if isinstance(c.wave, LongWave) and len(c.wave) <= widest else c
             for c in clips]  # a "long" clip of one window is tagged whole, as hear21passt takes it
    held = [i for i, clip in enumerate(clips) if isinstance(clip.wave, np.ndarray)]
    waves = [np.asarray(clips[i].wave) for i in held]

    def told(clip_of: list[int]) -> None:
        if on_batch is not None:
            on_batch([held[c] for c in clip_of])

    windows = tagger.window_logits_many(waves, on_batch=told) if waves else []
    moments = (windows if moment_windowing is None or not waves
               else tagger.window_logits_many(waves, windowing=moment_windowing))
    out: dict[int, Extraction] = {i: Extraction(clips[i], w, m)
                                  for i, w, m in zip(held, windows, moments, strict=True)}
    for i, clip in enumerate(clips):
        if isinstance(clip.wave, LongWave):
            report = None if on_batch is None else (lambda n, i=i: on_batch([i] * n))
            out[i] = _extract_streamed(clip, clip.wave, tagger, moment_windowing=moment_windowing,
                                       on_windows=report)
    return [out[i] for i in range(len(clips))]


class WindowCutter:
    """hear21passt's windows of a wave that arrives in blocks: the wave reflect-padded by half a window on
    each side, a window every hop (those that fit whole), as :meth:`retrieval.tagger.PasstTagger.windows`
    cuts the whole wave. Holds at most a window and a block of samples; the wave must be longer than half a
    window."""

    def __init__(self, windowing: Windowing):
        self.w = windowing
        self.head: list[np.ndarray] = []  # the first blocks, until the left padding can be made
        self.buf: np.ndarray | None = None  # the padded wave from `start` on
        self.start = 0
        self.next = 0  # the next window's index

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """The windows complete with `block`, each (window,) float32."""
        pad = self.w.pad
        if self.buf is None:
            self.head.append(block)
            if sum(len(b) for b in self.head) <= pad:
                return []
            x = np.concatenate(self.head)
            self.head = []
            self.buf = np.concatenate([x[pad:0:-1], x])  # reflect: x[pad], ..., x[1], then x
        else:
            self.buf = np.concatenate([self.buf, block])
        return self._emit(closing=False)

    def finish(self) -> list[np.ndarray]:
        """The last windows, with the right padding (x[n-2], ..., x[n-1-pad])."""
        if self.buf is None:
            raise ValueError("a streamed wave must be longer than half a window")
        tail = self.buf[-(self.w.pad + 1):]
        self.buf = np.concatenate([self.buf, tail[-2::-1]])
        return self._emit(closing=True)

    def _emit(self, *, closing: bool) -> list[np.ndarray]:
        assert self.buf is not None
        w, out = self.w, []
        end = self.start + len(self.buf)
        while self.next * w.hop + w.window <= end:
            at = self.next * w.hop - self.start
            out.append(self.buf[at:at + w.window].copy())
            self.next += 1
        # keep what the next window needs, and the last pad + 1 samples (the right padding's source)
        keep = self.next * w.hop if closing else min(self.next * w.hop, end - (w.pad + 1))
        if keep > self.start:
            self.buf = self.buf[keep - self.start:]
            self.start = keep
        return out


def _extract_streamed(clip: DecodedAudio, wave: LongWave, tagger: Tagger, *,
                      moment_windowing: Windowing | None,
                      on_windows: Callable[[int], None] | None) -> Extraction:
    """One long clip read once: its windows (and its moment windows) tagged `STREAM_WINDOWS` at a time,
    `on_windows(k)` after each k of its own windows, its peaks kept on `wave`."""
    windowings = [tagger.spec.windowing] + ([] if moment_windowing is None else [moment_windowing])
    cutters = [WindowCutter(w) for w in windowings]
    pending: list[list[np.ndarray]] = [[] for _ in windowings]
    rows: list[list[np.ndarray]] = [[] for _ in windowings]
    tracker = PeakTracker(len(wave))

    def tag(k: int, closing: bool) -> None:
        while len(pending[k]) >= STREAM_WINDOWS or (closing and pending[k]):
            batch, pending[k] = pending[k][:STREAM_WINDOWS], pending[k][STREAM_WINDOWS:]
            done = tagger.window_logits_many(batch, windowing=windowings[k])  # one window each
            rows[k].extend(d.logits[0] for d in done)
            if k == 0 and on_windows is not None:
                on_windows(len(batch))

    n = 0
    for block in wave.blocks():
        n += len(block)
        tracker.add(block)
        for k, cutter in enumerate(cutters):
            pending[k].extend(cutter.push(block))
            tag(k, closing=False)
    for k, cutter in enumerate(cutters):
        pending[k].extend(cutter.finish())
        tag(k, closing=True)
    wave.keep_peaks(tracker)
    results = []
    for w, r in zip(windowings, rows, strict=True):
        starts, ends = window_spans(n, w)
        if len(r) != len(starts):
            raise AssertionError(f"{wave.label}: {len(r)} windows cut, {len(starts)} expected")
        results.append(WindowLogits(logits=np.stack(r).astype(np.float32), starts=starts, ends=ends))
    return Extraction(clip, results[0], results[-1])


def extract(source: str | Path | bytes, tagger: Tagger, *, limits: AudioLimits = AudioLimits(),
            name: str | None = None) -> Extraction:
    """Decode `source` (a path or bytes) and run PaSST over its windows (:func:`extract_many`, one clip)."""
    return extract_many([decode(source, limits=limits, name=name)], tagger)[0]
