"""Audio decoding: a path or bytes in, mono float32 at 32 kHz in [-1, 1] out."""

import contextlib
import io
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from retrieval.config import SAMPLE_RATE
from retrieval.errors import AudioDecodeError, AudioTooLong

log = logging.getLogger(__name__)

MIN_SOURCE_RATE = 1_000
MAX_SOURCE_RATE = 768_000
MAX_CHANNELS = 64


@dataclass(frozen=True)
class DecodedAudio:
    wave: np.ndarray  # (n,) float32 at SAMPLE_RATE, in [-1, 1]
    source_rate: int
    channels: int
    format: str  # libsndfile's container name, e.g. "WAV", "FLAC", "OGG", "MP3"

    @property
    def duration_s(self) -> float:
        return len(self.wave) / SAMPLE_RATE


def decode_audio(
    source: str | Path | bytes, *, max_duration_s: float | None = None, max_channels: int = MAX_CHANNELS,
    name: str | None = None,
) -> DecodedAudio:
    """Decode WAV, FLAC, OGG (Vorbis/Opus) or MP3 from a path or bytes.

    Raises :class:`AudioDecodeError` for anything that is not readable audio with at least one finite sample,
    and :class:`AudioTooLong` (a subclass) when ``max_duration_s`` is exceeded; the duration is checked from
    the header before the samples are decoded.
    """
    label = name or (str(source) if isinstance(source, str | Path) else "upload")
    with _sound_file(source, label=label, max_duration_s=max_duration_s, max_channels=max_channels) as f:
        data = _read(f, label=label)  # (n, channels)
        rate, channels, container = f.samplerate, f.channels, f.format
    return DecodedAudio(_to_model_rate(data, rate, label=label), rate, channels, container)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, before any sample is decoded."""

    duration_s: float
    source_rate: int
    channels: int
    format: str


def probe_audio(
    source: str | Path | bytes, *, max_duration_s: float | None = None, max_channels: int = MAX_CHANNELS,
    name: str | None = None,
) -> AudioInfo:
    """The header of WAV, FLAC, OGG or MP3, held to the same checks as :func:`decode_audio` (which may still
    refuse the samples): what a service can judge of an upload at once, without decoding it."""
    label = name or (str(source) if isinstance(source, str | Path) else "upload")
    with _sound_file(source, label=label, max_duration_s=max_duration_s, max_channels=max_channels) as f:
        return AudioInfo(f.frames / f.samplerate, f.samplerate, f.channels, f.format)


@contextlib.contextmanager
def _sound_file(source: str | Path | bytes, *, label: str, max_duration_s: float | None,
                max_channels: int) -> Iterator[sf.SoundFile]:
    """The open file, its header checked; libsndfile's errors become AudioDecodeError."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise AudioDecodeError(f"{label}: the file is empty")
        handle: io.BytesIO | Path = io.BytesIO(bytes(source))
        _check_wav_sizes(bytes(source[:65536]), len(source), label=label)
    else:
        path = Path(source)
        if not path.is_file():
            raise AudioDecodeError(f"{label}: no such file")
        if path.stat().st_size == 0:
            raise AudioDecodeError(f"{label}: the file is empty")
        handle = path
        with open(path, "rb") as raw:
            _check_wav_sizes(raw.read(65536), path.stat().st_size, label=label)
    try:
        f = sf.SoundFile(handle)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as e:
        raise _unreadable(e, label) from e
    with f:
        _check_header(f, label=label, max_duration_s=max_duration_s, max_channels=max_channels)
        yield f


def _read(f: sf.SoundFile, *, label: str) -> np.ndarray:
    try:
        return f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as e:
        raise _unreadable(e, label) from e


def _unreadable(e: Exception, label: str) -> AudioDecodeError:
    # libsndfile's own words, without soundfile's "Error opening <_io.BytesIO object at 0x...>" prefix
    reason = e.error_string if isinstance(e, sf.LibsndfileError) else e
    return AudioDecodeError(f"{label}: not a readable audio file (WAV, FLAC, OGG, MP3): {reason}")


def _check_wav_sizes(head: bytes, total: int, *, label: str) -> None:
    """A RIFF/WAVE file whose data chunk claims more bytes than the file holds was cut short: refuse it
    rather than index part of it (libsndfile would quietly read what is there)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if chunk == b"data":
            if size not in (0, 0xFFFFFFFF) and pos + 8 + size > total:
                raise AudioDecodeError(
                    f"{label}: truncated WAV: the header declares {size} bytes of audio but only "
                    f"{max(0, total - pos - 8)} are present"
                )
            return
        pos += 8 + size + (size & 1)
    if pos + 8 > total:
        raise AudioDecodeError(f"{label}: truncated WAV: no audio data chunk")


def _check_header(f: sf.SoundFile, *, label: str, max_duration_s: float | None, max_channels: int) -> None:
    if not MIN_SOURCE_RATE <= f.samplerate <= MAX_SOURCE_RATE:
        raise AudioDecodeError(
            f"{label}: sample rate {f.samplerate} Hz is outside {MIN_SOURCE_RATE}-{MAX_SOURCE_RATE} Hz"
        )
    if not 1 <= f.channels <= min(max_channels, MAX_CHANNELS):
        raise AudioDecodeError(
            f"{label}: {f.channels} channels is more than the {min(max_channels, MAX_CHANNELS)} accepted"
        )
    if f.frames == 0:
        raise AudioDecodeError(f"{label}: the file holds no audio samples")
    if max_duration_s is not None and f.frames > 0 and f.frames / f.samplerate > max_duration_s:
        raise AudioTooLong(
            f"{label}: {f.frames / f.samplerate:.1f} s is longer than the maximum of {max_duration_s:g} s"
        )


def _to_model_rate(data: np.ndarray, rate: int, *, label: str) -> np.ndarray:
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{label}: the file holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioDecodeError(f"{label}: the audio holds NaN or infinite samples")
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32)  # (n,)
    if rate != SAMPLE_RATE:
        # soxr "VHQ" is a high-quality band-limited resampler, like the Kaiser "best" the author used
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="VHQ").astype(np.float32)
    if mono.size == 0:
        raise AudioDecodeError(f"{label}: too short to resample to {SAMPLE_RATE} Hz")
    return np.clip(mono, -1.0, 1.0)
