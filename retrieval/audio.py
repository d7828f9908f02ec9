"""Audio decoding: a path or bytes in, mono float32 at 32 kHz in [-1, 1] out.

Every file is read in blocks of source frames (:func:`_model_rate_blocks`): each block mixed to mono and
fed to soxr's streaming resampler, whose output is the same as resampling the whole file at once (the tests
compare them sample for sample). A clip up to `whole_up_to_s` is those blocks joined (:class:`DecodedAudio`
holds its wave); a longer one is a :class:`LongWave`, read block by block again on each pass, so that memory
does not grow with a recording's length (:func:`retrieval.extract.extract_many` tags it window by window).

:func:`audio_sha256` is the fingerprint of what the model hears: the sha256 of those samples. A file retagged
or re-wrapped (other metadata chunks, other bytes) keeps it; any change to its samples changes it.
"""

import contextlib
import hashlib
import io
import itertools
import logging
import os
import shlex
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from retrieval import riff
from retrieval.config import SAMPLE_RATE
from retrieval.decoder_process import blocks_in_process
from retrieval.errors import AudioDecodeError, AudioTooLong, TooManyChannels
from retrieval.flac_frames import flac_frames
from retrieval.mp3_frames import Mp3Frames, mp3_file_frames
from retrieval.ogg_pages import chained_streams
from retrieval.waveform import PEAKS, PeakTracker

log = logging.getLogger(__name__)

MIN_SOURCE_RATE = 1_000
MAX_SOURCE_RATE = 768_000
MAX_CHANNELS = 64
UNKNOWN_FRAMES = 2**62  # at or past this, libsndfile says it does not know the file's length (SF_COUNT_MAX)
BLOCK_FRAMES = 1 << 16  # source frames read at a time (about 1.4 s at 44.1 kHz)
DECODE_AHEAD = True  # a LongWave's file decoded by a child process while its blocks are tagged
# an MP3 whose frames hold more than its header's length plus this (the larger) is refused: the Xing frame
# and the encoder's delay and padding that decoders leave out are a few frames (26 ms each at 44.1 kHz)
MP3_LENGTH_SLACK_S = 1.0
MP3_LENGTH_SLACK = 0.01


class LongWave:
    """A long file's samples, mono at SAMPLE_RATE in [-1, 1], never held whole: :meth:`blocks` reads the file
    again on each pass. `len()` is its length at SAMPLE_RATE as the header announces it (soxr's output
    length for the header's frames); the peaks of the pass that tagged it are kept (:meth:`keep_peaks`), and
    other peaks cost one more pass, as does its fingerprint (:func:`audio_sha256`) unless a pass went through
    every block."""

    def __init__(self, source: str | Path | bytes, *, label: str, frames: int, source_rate: int):
        self.source = source
        self.label = label
        self.n_samples = model_rate_length(frames, source_rate)
        self._peaks: dict[int, np.ndarray] = {}
        self.sha256: str | None = None  # the samples' fingerprint, once a pass has read them all

    def __len__(self) -> int:
        return self.n_samples

    def blocks(self) -> Iterator[np.ndarray]:
        """(b,) float32 blocks of the mono, resampled, clipped wave, in order (AudioDecodeError on bad
        samples, as :func:`decode_audio`): :func:`file_blocks`, decoded by a child process ahead of the caller
        for a file on disk (`DECODE_AHEAD`), in this one for bytes."""
        digest = hashlib.sha256()
        source, label = self.source, self.label
        if DECODE_AHEAD and isinstance(source, str | Path):
            blocks = blocks_in_process(source, label=label)
        else:
            blocks = file_blocks(source, label=label)
        for block in blocks:
            _hash_samples(digest, block)
            yield block
        self.sha256 = digest.hexdigest()

    def read(self) -> np.ndarray:
        """(n,) the whole wave in memory (what a caller that must hold it asks for)."""
        return np.concatenate(list(self.blocks()))

    def keep_peaks(self, tracker: PeakTracker) -> None:
        """The peaks a pass computed, kept when its samples were as many as announced."""
        if tracker.exact and tracker.n == self.n_samples:
            self._peaks[tracker.bins] = tracker.result()

    def peaks(self, bins: int = PEAKS) -> np.ndarray:
        if bins not in self._peaks:
            tracker = PeakTracker(self.n_samples, bins)
            for block in self.blocks():
                tracker.add(block)
            if not tracker.exact:  # the header's count was wrong: slices over the samples there are
                tracker = PeakTracker(tracker.seen, bins)
                for block in self.blocks():
                    tracker.add(block)
            self._peaks[bins] = tracker.result()
        return self._peaks[bins]


def model_rate_length(frames: int, rate: int) -> int:
    """How many samples at SAMPLE_RATE soxr makes of `frames` at `rate` (rounded to the nearest)."""
    return frames if rate == SAMPLE_RATE else int(frames * SAMPLE_RATE / rate + 0.5)


@dataclass(frozen=True)
class DecodedAudio:
    # (n,) float32 at SAMPLE_RATE in [-1, 1], or a long file's LongWave (read block by block when tagged)
    wave: np.ndarray | LongWave
    source_rate: int
    channels: int
    format: str  # libsndfile's container name, e.g. "WAV", "FLAC", "OGG", "MP3"

    @property
    def duration_s(self) -> float:
        return len(self.wave) / SAMPLE_RATE

    @cached_property
    def fingerprint(self) -> str:
        """:func:`audio_sha256` of its wave, taken once (a long file's: one more pass, unless one went through
        all its blocks)."""
        return audio_sha256(self.wave)


def decode_audio(
    source: str | Path | bytes, *, max_duration_s: float | None = None, max_channels: int = MAX_CHANNELS,
    name: str | None = None, whole_up_to_s: float | None = None, limit_name: str | None = None,
    channels_name: str | None = None,
) -> DecodedAudio:
    """Decode WAV, FLAC, OGG (Vorbis/Opus) or MP3 from a path or bytes.

    Raises :class:`AudioDecodeError` for anything that is not readable audio with at least one finite sample,
    and :class:`AudioTooLong` (a subclass) when ``max_duration_s`` is exceeded (its message names
    `limit_name`, the setting behind it; a refusal of too many channels names `channels_name`); the
    duration is checked from the header before the samples are decoded. A clip longer than `whole_up_to_s`
    (None: none) is not read here: its wave is a
    :class:`LongWave`, read block by block when it is tagged (bad samples are found then).
    """
    label = name or (str(source) if isinstance(source, str | Path) else "upload")
    with _sound_file(source, label=label, max_duration_s=max_duration_s, max_channels=max_channels,
                     limit_name=limit_name, channels_name=channels_name) as f:
        rate, channels, container = f.samplerate, f.channels, f.format
        if whole_up_to_s is not None and f.frames / f.samplerate > whole_up_to_s:
            long = LongWave(bytes(source) if isinstance(source, bytes | bytearray | memoryview) else source,
                            label=label, frames=f.frames, source_rate=rate)
            return DecodedAudio(long, rate, channels, container)
        blocks = list(_model_rate_blocks(f, label=label))
    wave = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    if wave.size == 0:
        raise AudioDecodeError(f"{label}: too short to resample to {SAMPLE_RATE} Hz")
    return DecodedAudio(wave, rate, channels, container)


def audio_sha256(wave: np.ndarray | LongWave) -> str:
    """The sha256 of the wave's samples (mono, at SAMPLE_RATE, as little-endian float32): the same for two
    files whose audio decodes to the same samples, whatever else their bytes hold. A LongWave's is that of the
    last pass through all its blocks, or of one more pass."""
    if isinstance(wave, LongWave):
        if wave.sha256 is None:
            for _ in wave.blocks():
                pass
        assert wave.sha256 is not None
        return wave.sha256
    digest = hashlib.sha256()
    _hash_samples(digest, wave)
    return digest.hexdigest()


def _hash_samples(digest: Any, samples: np.ndarray) -> None:
    digest.update(np.ascontiguousarray(samples, dtype="<f4").data)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, before any sample is decoded."""

    duration_s: float
    source_rate: int
    channels: int
    format: str


def probe_audio(
    source: str | Path | bytes, *, max_duration_s: float | None = None, max_channels: int = MAX_CHANNELS,
    name: str | None = None, limit_name: str | None = None, channels_name: str | None = None,
) -> AudioInfo:
    """The header of WAV, FLAC, OGG or MP3, held to the same checks as :func:`decode_audio` (which may still
    refuse the samples): what a service can judge of an upload at once, without decoding it."""
    label = name or (str(source) if isinstance(source, str | Path) else "upload")
    with _sound_file(source, label=label, max_duration_s=max_duration_s, max_channels=max_channels,
                     limit_name=limit_name, channels_name=channels_name) as f:
        return AudioInfo(f.frames / f.samplerate, f.samplerate, f.channels, f.format)


@contextlib.contextmanager
def _sound_file(source: str | Path | bytes, *, label: str, max_duration_s: float | None,
                max_channels: int, limit_name: str | None = None, channels_name: str | None = None,
                count_frames: bool = True) -> Iterator[sf.SoundFile]:
    """The open file, its header checked (an MP3's length by its frames too, unless `count_frames` is
    False: a file checked before); libsndfile's errors become AudioDecodeError."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise AudioDecodeError(f"{label}: the file is empty")
        _check_sizes(io.BytesIO(source), len(source), label=label)
    else:
        path = Path(source)
        if path.is_dir():
            raise AudioDecodeError(f"{label}: a folder, not an audio file")
        if not path.is_file():
            raise AudioDecodeError(f"{label}: no such file")
        if path.stat().st_size == 0:
            raise AudioDecodeError(f"{label}: the file is empty")
        with open(path, "rb") as raw:
            _check_sizes(raw, path.stat().st_size, label=label)
    try:
        f = open_sound(source)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as e:
        raise _unreadable(e, label) from e
    with f:
        counted = count_frames and f.format == "MP3"  # its length held to the limit is its frames'
        _check_header(f, label=label, max_duration_s=None if counted else max_duration_s,
                      max_channels=max_channels, limit_name=limit_name, channels_name=channels_name)
        if counted:
            _check_mp3_length(source, f.frames / f.samplerate, label=label, max_duration_s=max_duration_s,
                              limit_name=limit_name)
        if f.format == "FLAC" and 0 < f.frames < UNKNOWN_FRAMES:
            _check_flac_end(source, f.frames, f.samplerate, label=label)
            _check_flac_count(source, f.frames, f.samplerate, label=label)
        if f.format == "OGG":
            _check_ogg_chain(source, f, label=label)
        yield f


def file_blocks(source: str | Path | bytes, *, label: str) -> Iterator[np.ndarray]:
    """A file's samples as :func:`_model_rate_blocks` gives them (what a LongWave's pass reads)."""
    with _sound_file(source, label=label, max_duration_s=None, max_channels=MAX_CHANNELS,
                     count_frames=False) as f:
        yield from _model_rate_blocks(f, label=label)


# libsndfile's calls that read frames into a buffer, by the buffer's dtype
_READF = {"float32": ("sf_readf_float", "float *"), "int16": ("sf_readf_short", "short *")}


def read_frames(f: sf.SoundFile, frames: int, dtype: str = "float32") -> np.ndarray:
    """Up to `frames` (n, channels) frames from where `f` is. soundfile's `read` (0.14) seeks after each
    read to the position it reckons, and in an MP3 libsndfile's seek is libmpg123's, which is not exact
    in a VBR file: every read after the first started up to thousands of frames off, silence among them
    (a 20 s VBR file read 65,536 frames at a time held 39,470 zero samples that a whole read has not). An
    MP3 is therefore read by libsndfile's own call, which leaves its decoder where it is."""
    if f.format != "MP3":
        return f.read(frames, dtype=dtype, always_2d=True)
    name, ctype = _READF[dtype]
    out = np.empty((frames, f.channels), dtype=dtype)
    got = getattr(sf._snd, name)(f._file, sf._ffi.cast(ctype, out.ctypes.data), frames)
    if code := sf._snd.sf_error(f._file):
        raise sf.LibsndfileError(code)
    return out[:got]


def skip_to(f: sf.SoundFile, frame: int) -> None:
    """Put a freshly opened `f` at `frame`: a seek, except in an MP3, whose seek is not exact (see
    :func:`read_frames`), where the frames before it are decoded and dropped."""
    if f.format != "MP3":
        f.seek(frame)
    else:
        drop_frames(f, frame)


def drop_frames(f: sf.SoundFile, frames: int) -> None:
    """Read past the next `frames` frames (fewer at the file's end), a block at a time."""
    while frames > 0 and len(block := read_frames(f, min(BLOCK_FRAMES, frames))):
        frames -= len(block)


def _model_rate_blocks(f: sf.SoundFile, *, label: str) -> Iterator[np.ndarray]:
    """The open file's samples as (b,) float32 blocks, mono (the channels' mean in float64), at SAMPLE_RATE
    (soxr "VHQ", a high-quality band-limited resampler like the Kaiser "best" the author used, streamed:
    the same samples as resampling the whole file at once) and clipped to [-1, 1]."""
    rate = f.samplerate
    stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32",
                                                                   quality="VHQ")
    seen = 0
    while True:
        try:
            data = read_frames(f, BLOCK_FRAMES)  # (b, channels)
        except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as e:
            raise _unreadable(e, label) from e
        if data.shape[0] == 0:
            break
        seen += data.shape[0]
        if not np.isfinite(data).all():
            raise AudioDecodeError(f"{label}: the audio holds NaN or infinite samples")
        mono = _mono(data)
        out = mono if stream is None else stream.resample_chunk(mono, last=False)
        if out.size:
            yield np.clip(out, -1.0, 1.0)
    if seen == 0:
        raise AudioDecodeError(f"{label}: the file holds no audio samples")
    if stream is not None:
        out = stream.resample_chunk(np.zeros(0, np.float32), last=True)
        if out.size:
            yield np.clip(out, -1.0, 1.0)


def _mono(data: np.ndarray) -> np.ndarray:
    """(b, channels) float32 -> (b,) float32: the channels' mean in float64, `data.mean(axis=1,
    dtype=np.float64)` to the bit (numpy sums the channels in this order) at a quarter of its time (its
    reduction over a short last axis loops per frame)."""
    total = data[:, 0].astype(np.float64)
    for c in range(1, data.shape[1]):
        total += data[:, c]
    total /= data.shape[1]
    return total.astype(np.float32)


def _unreadable(e: Exception, label: str) -> AudioDecodeError:
    # libsndfile's own words, without soundfile's "Error opening <_io.BytesIO object at 0x...>" prefix
    reason = e.error_string if isinstance(e, sf.LibsndfileError) else e
    return AudioDecodeError(f"{label}: not a readable audio file (WAV, BWF, RF64, FLAC, OGG, Opus, MP3, "
                            f"AIFF, AU, W64, CAF): {reason}")


def _shell_name(label: str) -> str:
    """The file's name as a refusal's command gives it: quoted for the shell where it must be."""
    return shlex.quote(Path(label).name)


def _check_sizes(f: BinaryIO, total: int, *, label: str) -> None:
    """A file whose header says how many bytes of audio follow (WAVE, AIFF and AIFC, AU) but that stops
    before them was cut short (a copy stopped part-way): refuse it rather than index part of it (libsndfile
    would quietly read what is there, as far as the cut)."""
    f.seek(0)
    magic = f.read(4)
    if magic == b"FORM":
        _check_aiff_sizes(f, total, label=label)
    elif magic in (b".snd", b"dns."):  # big-endian AU, and the little-endian kind libsndfile reads too
        offset, size = struct.unpack(">II" if magic == b".snd" else "<II", f.read(8).ljust(8, b"\0"))
        if size != 0xFFFFFFFF and offset + size > total:  # all ones: a stream, its length not known
            raise _truncated(label, "AU", size, total - offset)
    else:
        _check_wav_sizes(f, total, label=label)


def _truncated(label: str, kind: str, declared: int, present: int) -> AudioDecodeError:
    return AudioDecodeError(f"{label}: truncated {kind}: the header declares {declared} bytes of audio but "
                            f"only {max(0, present)} are present (a copy stopped part-way: copy it again)")


def _check_wav_sizes(f: BinaryIO, total: int, *, label: str) -> None:
    """A WAVE file (RIFF, RF64, BW64: retrieval/riff.py) whose data chunk claims more bytes than the file
    holds, or that has none, was cut short. One whose RIFF and data sizes were never written (0, with the
    audio after them: a recorder stopped before it closed the file) holds no audio to libsndfile: it is
    refused saying so, and how to mend it."""
    walked = riff.walk_wave(f, total)
    if walked is None:
        return
    if b"data" not in walked.chunks:
        if not walked.whole:
            raise AudioDecodeError(f"{label}: more than {riff.MAX_CHUNKS:,} chunks before its audio data, "
                                   "more than is read: write it again, for example "
                                   f"`ffmpeg -i {_shell_name(label)} -c copy fixed.wav`")
        raise AudioDecodeError(f"{label}: truncated WAV: no audio data chunk")
    start, size = walked.chunks[b"data"]
    if size == 0 and total > start and walked.riff_size <= start - 8:  # it reaches no byte past "data"
        raise AudioDecodeError(
            f"{label}: its header was never finished: its sizes say 0 bytes of audio, but {total - start} "
            "bytes follow (a recorder or a program stopped before it closed the file); mend it with "
            f"`ffmpeg -i {_shell_name(label)} -c copy fixed.wav`")
    if size not in (0, riff.LONG) and start + size > total:
        raise _truncated(label, "WAV", size, total - start)


def _check_aiff_sizes(f: BinaryIO, total: int, *, label: str) -> None:
    """An AIFF or AIFC whose sound data chunk (``SSND``: an offset and a block size, then the audio) claims
    more bytes than the file holds was cut short (0 and all ones: a size never written, not checked)."""
    chunks = riff.walk_aiff(f, total)
    if chunks is None or b"SSND" not in chunks:
        return
    start, size = chunks[b"SSND"]
    if size not in (0, riff.LONG) and start + size > total:
        raise _truncated(label, "AIFF", max(0, size - 8), total - start - 8)


class _AsRF64(io.RawIOBase):
    """A BW64 file (ITU-R BS.2088: RF64 under another name, which libsndfile does not know) read as RF64:
    its first four bytes say so."""

    def __init__(self, path: Path):
        self._f = open(path, "rb")  # noqa: SIM115 - closed with this object

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, b: Any) -> int:
        at = self._f.tell()
        n = self._f.readinto(b)
        if at < 4 and n:
            view = memoryview(b)
            view[:min(4 - at, n)] = b"RF64"[at:at + min(4 - at, n)]
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def open_sound(source: str | Path | bytes) -> sf.SoundFile:
    """libsndfile's SoundFile of a path or of bytes (a BW64 file read as the RF64 it is)."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return sf.SoundFile(io.BytesIO(b"RF64" + data[4:] if data[:4] == b"BW64" else data))
    path = Path(source)
    with open(path, "rb") as raw:
        bw64 = raw.read(4) == b"BW64"
    # its name as bytes: libsndfile takes any, soundfile would encode a str as UTF-8 (a Latin-1 name fails)
    return sf.SoundFile(_AsRF64(path) if bw64 else os.fsencode(path))


def _check_flac_end(source: str | Path | bytes, frames: int, rate: int, *, label: str) -> None:
    """A FLAC whose last sample, as its header counts them, cannot be reached was cut short (a copy stopped
    part-way): refused before its samples are read, not when decoding reaches the cut (after PaSST has
    tagged all before it). One seek, on a handle of its own (a failed seek leaves libsndfile's unusable)."""
    try:
        with open_sound(source) as probe:
            probe.seek(frames - 1)
            whole = len(probe.read(1)) == 1
    except (sf.LibsndfileError, RuntimeError, OSError):
        whole = False
    if not whole:
        raise AudioDecodeError(f"{label}: truncated FLAC: its header declares {frames / rate:.1f} s but the "
                               "stream ends before (copy it again; `flac -d -F` decodes what is there)")


def _check_flac_count(source: str | Path | bytes, frames: int, rate: int, *, label: str) -> None:
    """A FLAC whose frames run past the samples its header (STREAMINFO) counts is refused: libsndfile decodes
    no further than the count and reports its length, so the rest would be left out without a word. Its
    frames say so (retrieval/flac_frames.py): its last frame ends past the count, or, in files joined without
    being encoded again, the frames are numbered from the start again partway. A file whose frames are not
    found where they are looked for (a tag after its frames) is let through, as before."""
    fix = f"encode it again, for example `ffmpeg -i {_shell_name(label)} -c:a flac fixed.flac` (lossless)"
    found = flac_frames(source)
    end = found.end
    starts = [*found.starts, *([end] if end is not None else [])]
    if any(later < earlier for earlier, later in itertools.pairwise(starts)):  # (two places, one frame)
        raise AudioDecodeError(
            f"{label}: its frames are numbered from the start again partway (files joined without being "
            "encoded again, as ffmpeg's concat with -c copy writes them), and the decoder stops at its "
            f"header's count ({frames / rate:.1f} s): {fix}")
    if end is not None and end > frames:
        held, counted = ((f"{end / rate:.1f} s of audio", f"{frames / rate:.1f} s")
                         if round(end / rate, 1) != round(frames / rate, 1) else
                         (f"{end} samples", f"{frames}"))
        raise AudioDecodeError(
            f"{label}: its frames hold {held} but its header (STREAMINFO) counts {counted}, and the decoder "
            f"stops at the header's count: {fix}")


def _check_ogg_chain(source: str | Path | bytes, f: sf.SoundFile, *, label: str) -> None:
    """A chained Ogg file (streams one after another: files joined end to end, a radio stream's recording) is
    refused: libsndfile reads its first stream alone and reports that stream's length as the file's."""
    if len(chained_streams(source)) > 1:
        codec, ext = ("libopus", "opus") if f.subtype == "OPUS" else ("libvorbis", "ogg")
        raise AudioDecodeError(
            f"{label}: a chained Ogg file (streams one after another, as files joined end to end), of which "
            f"the decoder reads only the first ({f.frames / f.samplerate:.1f} s): encode it again as one "
            f"stream, for example `ffmpeg -i {_shell_name(label)} -c:a {codec} fixed.{ext}`")


def _check_mp3_length(source: str | Path | bytes, header_s: float, *, label: str,
                      max_duration_s: float | None, limit_name: str | None) -> None:
    """An MP3's length is its frames' (counted): past `max_duration_s` it is too long; and a file whose
    header says another length (libsndfile decodes no further than the header says, and reports the
    header's length) is refused, with both lengths: frames past the header's length would be cut off, a
    header past the frames' length would give the clip a duration its audio does not have."""
    frames = mp3_file_frames(source)
    frames_s = frames.seconds
    if max_duration_s is not None and frames_s > max_duration_s:
        raise _too_long(label, frames_s, max_duration_s, limit_name, how=" (counted by its frames)")
    slack = max(MP3_LENGTH_SLACK_S, MP3_LENGTH_SLACK * frames_s)
    if abs(frames_s - header_s) <= slack:
        return
    name = _shell_name(label)
    if not frames.xing and frames_s < header_s and (junk := _mp3_junk(frames, header_s, frames_s, name)):
        raise AudioDecodeError(f"{label}: {junk}")
    if frames.xing or not frames.end:  # (no frame found: a free-format file, whose frames are not counted)
        why = ("a Xing header that counts fewer frames than the file holds" if frames_s > header_s else
               "a Xing header that counts frames the file does not hold")
    else:
        why = "an MP3 whose bit rate varies, without a Xing header"
    raise AudioDecodeError(
        f"{label}: its frames hold {frames_s:.1f} s of audio but its header says {header_s:.1f} s ({why}), "
        f"and the decoder goes by the header: write it again, for example "
        f"`ffmpeg -i {name} -c:a copy fixed.mp3`")


def _mp3_junk(frames: Mp3Frames, header_s: float, frames_s: float, name: str) -> str | None:
    """Why an MP3 without a Xing header seems longer than its frames when bytes that are not frames account
    for most of the difference: the decoder then reckons its length from the file's size, those bytes
    included (0xFF or zeros after the audio: a recorder's preallocated file, a copy padded to a block size).
    None when they do not."""
    junk = max(frames.after, frames.between)
    if not frames.end or junk * header_s / frames.size < (header_s - frames_s) / 2:
        return None
    reckoned = (f"its frames hold {frames_s:.1f} s of audio, and the decoder, without a Xing header to go "
                f"by, reckons {header_s:.1f} s from the file's size")
    if frames.after >= frames.between:
        return (f"the {frames.after} bytes after its last frame are not MP3 frames ({reckoned}): cut them "
                f"off, for example `head -c {frames.end} {name} > fixed.mp3`")
    return (f"{frames.between} bytes between its frames are not MP3 frames ({reckoned}): encode it again, "
            f"for example `ffmpeg -i {name} fixed.mp3`")


def _too_long(label: str, seconds: float, max_duration_s: float, limit_name: str | None, *,
              how: str = "") -> AudioTooLong:
    """The refusal of a file of `seconds` (found `how`) over the limit, naming its setting."""
    setting = f" ({limit_name})" if limit_name else ""
    return AudioTooLong(f"{label}: {seconds_over(seconds, max_duration_s)} s{how} is longer than the maximum "
                        f"of {max_duration_s:g} s{setting}")


def seconds_over(x: float, limit: float) -> str:
    """`x` seconds as a message says it is over `limit`: to the tenth, or finer when the tenth rounds it
    down to the limit (12.01 s is not "12.0 s longer than 12 s")."""
    for places in (1, 3, 6):
        if float(text := f"{x:.{places}f}") > limit:
            return text
    return repr(x)


def _check_header(f: sf.SoundFile, *, label: str, max_duration_s: float | None, max_channels: int,
                  limit_name: str | None = None, channels_name: str | None = None) -> None:
    if not MIN_SOURCE_RATE <= f.samplerate <= MAX_SOURCE_RATE:
        raise AudioDecodeError(
            f"{label}: sample rate {f.samplerate} Hz is outside {MIN_SOURCE_RATE}-{MAX_SOURCE_RATE} Hz"
        )
    if not 1 <= f.channels <= min(max_channels, MAX_CHANNELS):
        widen = (f" ({channels_name}, up to {MAX_CHANNELS})" if channels_name and f.channels <= MAX_CHANNELS
                 else "")
        accepted = min(max_channels, MAX_CHANNELS)
        raise TooManyChannels(f"{label}: {f.channels} channels is more than the {accepted} accepted{widen}")
    if f.frames == 0:
        raise AudioDecodeError(f"{label}: the file holds no audio samples")
    if f.frames >= UNKNOWN_FRAMES:  # libsndfile's answer for a FLAC whose header leaves the length out
        raise AudioDecodeError(
            f"{label}: its header does not say how long it is (a {f.format} written to a pipe or a stream): "
            f"encode it again into a file, e.g. `ffmpeg -i IN OUT.{f.format.lower()}` (FLAC stays lossless)")
    if max_duration_s is not None and f.frames > 0 and f.frames / f.samplerate > max_duration_s:
        raise _too_long(label, f.frames / f.samplerate, max_duration_s, limit_name)

