"""A span of a clip's audio as a WAV of its own, at the file's own sample rate and channels: what
`GET /audio/{id}/file?start=S&end=E` answers.

Only the span is read: libsndfile seeks to its first frame (WAV, FLAC and OGG seek; in an Ogg Vorbis file's
last page, where its seek lands late, it seeks before that page and reads on; an MP3's seek is not exact, so
an MP3 is decoded from its start, the frames before the span dropped). The span is
`round(S * rate)` to `round(E * rate)` frames, so the WAV lasts E - S to within a sample. 16-bit sources
stay 16-bit PCM, sample for sample; anything else is written as 32-bit float, which holds 24-bit PCM and
decoded Vorbis or MP3 exactly.

Memory stays bounded whatever the span (an hour of a 12-hour tape): the span is read and written BLOCK_FRAMES
at a time into an anonymous temporary file (gone when closed, or when the process dies), which the route
then sends in chunks. A span whose WAV would pass a WAV's 4 GiB is refused (the whole file has no limit).
"""

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import soundfile as sf

from app.errors import BadSpan
from retrieval.audio import drop_frames, open_sound, probe_audio, read_frames, skip_to
from retrieval.errors import AudioDecodeError
from retrieval.file_types import is_audio_name, media_type, suffixes_of
from retrieval.ogg_pages import last_page_start

EXACT_16 = {"PCM_16", "PCM_S8", "PCM_U8"}  # read as int16 and written as 16-bit PCM without a change
# a record's duration is measured at 32 kHz, so a moment ending at the clip's end may end a sample of that
# rate past the file's last frame: an end this close past it is the file's end
END_SLACK_S = 1e-3
BLOCK_FRAMES = 1 << 16  # frames read and written at a time
SEND_BYTES = 1 << 20  # bytes sent at a time
MAX_WAV_DATA = 0xFFFFFFFF - (1 << 16)  # a WAV's 32-bit sizes, less room for its header chunks
MAX_FILE_NAME_BYTES = 255  # of a file name, in most file systems (ext4, APFS, NTFS in UTF-16 units)


@dataclass(frozen=True)
class Excerpt:
    """The WAV (an open temporary file, at its start), its size and the name to save it under."""

    file: BinaryIO
    size: int
    filename: str

    def chunks(self) -> Iterator[bytes]:
        """The WAV's bytes, SEND_BYTES at a time; the file closed (so removed) at the end or on an error."""
        with self.file:
            while data := self.file.read(SEND_BYTES):
                yield data


def check_span(start: float | None, end: float | None) -> tuple[float, float] | None:
    """(start, end) when both are given, finite, from 0 s on and in order; None when neither is given (the
    whole file); BadSpan otherwise. Whether the span lies within the clip `read_excerpt` tells."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise BadSpan("an excerpt needs both `start` and `end` (seconds); give neither for the whole file")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise BadSpan("`start` and `end` must be finite numbers of seconds")
    if start < 0:
        raise BadSpan(f"`start` is {start:.10g} s: an excerpt starts at 0 s or later")
    if end <= start:
        raise BadSpan(f"`end` ({end:.10g} s) must come after `start` ({start:.10g} s)")
    return start, end


def _frames(start: float, end: float, rate: int, frames: int) -> tuple[int, int]:
    """The span's first frame and the frame after its last, within the file's `frames`; BadSpan if not."""
    if end > frames / rate + END_SLACK_S:  # before any rounding: a huge `end` is no integer's
        raise BadSpan(f"`end` ({end:.10g} s) is past the end of the clip ({frames / rate:.10g} s)")
    first, last = round(start * rate), min(round(end * rate), frames)
    if last <= first:
        raise BadSpan(f"the span {start:.10g}-{end:.10g} s is shorter than one sample at {rate} Hz")
    return first, last


def seconds_text(x: float) -> str:
    """Seconds for a file name: up to milliseconds, no trailing zeros (`12.5`, `20`)."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def excerpt_name(name: str, start: float, end: float) -> str:
    """`<name>_<start>-<end>.wav`, the clip's name without its suffix, cut so that the whole is at most
    MAX_FILE_NAME_BYTES of UTF-8 (what a file system takes)."""
    span = f"_{seconds_text(start)}-{seconds_text(end)}.wav"
    room = MAX_FILE_NAME_BYTES - len(span.encode())
    stem = (Path(name).stem or "clip").encode()[:room].decode("utf-8", "ignore")
    return f"{stem}{span}"


def file_type(location: str) -> str:
    """The media type of a clip's stored file by its suffix (an upload's copy is named for its container;
    a file indexed where it lies, by its own name: retrieval/file_types.py), application/octet-stream when
    its suffix is not an audio file's."""
    return media_type(location)


def file_name(name: str, location: str) -> str:
    """The name a clip's whole file is served and dragged out under: :func:`download_name` for the type of
    the file at `location`."""
    return download_name(name, suffixes_of(file_type(location)))


def download_name(name: str, suffixes: tuple[str, ...]) -> str:
    """The name a whole file is served under: the clip's, ending in one of `suffixes` (its container's; the
    first is the one given), at most MAX_FILE_NAME_BYTES of UTF-8. A name ending in another audio suffix
    (retrieval/file_types.py) has it replaced (an MP3 named `take.wav` is `take.mp3`), any other gets the
    suffix added (`Tone one` is `Tone one.wav`); no `suffixes` (a container not recognised) leaves the name
    as it is."""
    path = Path(name.strip() or "clip")
    if path.name in ("", ".", ".."):
        path = Path("clip")
    suffix = path.suffix.lower()
    if not suffixes or suffix in suffixes:
        stem, suffix = path.name[:len(path.name) - len(suffix)], path.suffix
    else:
        stem, suffix = (path.stem if is_audio_name(path.name) else path.name), suffixes[0]
    room = MAX_FILE_NAME_BYTES - len(suffix.encode())
    return stem.encode()[:room].decode("utf-8", "ignore") + suffix


def read_excerpt(path: Path, name: str, start: float, end: float) -> Excerpt:
    """Frames round(start * rate) to round(end * rate) of the file as a WAV; only those are read, a block
    at a time."""
    rate = probe_audio(path, name=name).source_rate  # the decoder's checks of the header
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed on open, closed by Excerpt.chunks
    try:
        with open_sound(path) as f:
            first, last = _frames(start, end, rate, f.frames)
            end = min(end, f.frames / rate)  # the file's end, when the span ends a hair past it
            exact = f.subtype in EXACT_16
            if (last - first) * f.channels * (2 if exact else 4) > MAX_WAV_DATA:
                raise BadSpan(f"the span {start:.10g}-{end:.10g} s is more than a WAV holds (4 GiB at "
                              f"{f.channels} channels, {rate} Hz): take a shorter one, or the whole file "
                              "(no start and end)")
            seek_frame(f, path, first)
            with sf.SoundFile(out, "w", samplerate=rate, channels=f.channels, format="WAV",
                              subtype="PCM_16" if exact else "FLOAT", closefd=False) as wav:
                left = last - first
                while left and len(block := read_frames(f, min(BLOCK_FRAMES, left),
                                                        "int16" if exact else "float32")):
                    wav.write(block)
                    left -= len(block)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as e:
        out.close()
        raise AudioDecodeError(f"{name}: the span {start:.10g}-{end:.10g} s could not be read: {e}") from e
    except BaseException:
        out.close()
        raise
    size = out.seek(0, 2)
    out.seek(0)
    return Excerpt(out, size, excerpt_name(name, start, end))


def seek_frame(f: sf.SoundFile, path: Path, frame: int) -> None:
    """Put a freshly opened `f` at `frame` exactly: libsndfile's seek into an Ogg Vorbis file's last page
    lands late (retrieval/ogg_pages.py), so such a seek starts from the frame before that page and reads on;
    its seek in a VBR MP3 is not exact at all, so an MP3 is decoded up to the frame (retrieval/audio.py
    `skip_to`)."""
    at = frame
    if frame and f.format == "OGG" and f.subtype == "VORBIS":
        last = last_page_start(path)
        if last is not None and frame >= last:
            at = max(0, last - 1)
    skip_to(f, at)
    drop_frames(f, frame - at)


def content_disposition(filename: str, kind: str = "inline") -> str:
    """The header naming the file: plain ASCII as `filename="..."`; any other name also as RFC 5987's
    `filename*`, after an ASCII stand-in for old clients."""
    plain = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    if plain == filename:
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename=\"{plain}\"; filename*=utf-8''{quote(filename)}"
