"""An MP3's length counted from its frames' headers.

libsndfile takes an MP3's length from its Xing (or VBRI) header, or without one from the first frame's bit
rate and the file's size, and decodes no further than that length: a file whose bit rate varies and that has
no such header (two encodings joined end to end, some encoders' VBR) is cut short without a word. Counting
the frames (each MPEG audio frame header gives its size and how many samples it holds) tells how long the
audio really is, so that such a file is refused rather than indexed in part.

The scan looks for the next frame header with a regular expression (in C), not byte by byte in Python: a
file padded with megabytes of 0xFF or zeros (a recorder's preallocated file, a copy padded to a block size)
took a second a MiB to count, in the request that uploaded it. Headers that no frame confirms are the
loop's other cost (random bytes hold one in about 5,500), so the scan stops after MAX_FALSE_SYNCS of them
(some 360 MB of random bytes; packed four bytes apart, 256 KB): a real file holds a handful, in a tag the scan
does not know.
"""

import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# kbit/s by bit-rate index 1-14: MPEG-1 layers I, II, III; MPEG-2 and 2.5 layer I; their layers II and III
_BITRATES = {
    (1, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# Hz by sample-rate index 0-2, for the header's version bits: 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5 (1 is reserved)
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_TAGS = (b"ID3", b"TAG", b"APE", b"LYR")  # what may follow a frame besides another frame
MAX_FALSE_SYNCS = 65_536  # frame headers the next frame does not confirm, passed over before the scan stops
# where a Xing (or Info, as LAME names it in a CBR file) header starts in its frame, after the side
# information, by MPEG-1 or not and mono or not; a VBRI header (Fraunhofer's) starts 32 bytes after the header
_XING_AT = {(True, False): 4 + 32, (True, True): 4 + 17, (False, False): 4 + 17, (False, True): 4 + 9}
_VBRI_AT = 4 + 32


def _byte_class(accept: Callable[[int], bool]) -> bytes:
    """A regular expression's class of the bytes `accept` takes."""
    return b"[" + b"".join(re.escape(bytes([v])) for v in range(256) if accept(v)) + b"]"


# the four bytes of a header frame_at takes: sync, then a version and layer that exist, then a bit rate and a
# sample rate that do (what :func:`frame_at` checks first, so that a byte it would refuse is never visited)
_HEADER = re.compile(
    b"\xff" + _byte_class(lambda v: v >= 0xE0 and (v >> 3) & 3 != 1 and (v >> 1) & 3 != 0)
    + _byte_class(lambda v: (v >> 4) not in (0, 15) and (v >> 2) & 3 != 3) + b".", re.DOTALL)


@dataclass(frozen=True)
class Mp3Frames:
    """What the scan of an MP3's bytes found."""

    seconds: float  # the audio its frames hold
    xing: bool  # its first frame is a Xing, Info or VBRI header (whose frame count decoders go by)
    end: int  # where its last frame ends (0: none)
    between: int  # bytes between its first frame and its last that are neither frames nor ID3v2 tags
    size: int  # the bytes scanned

    @property
    def after(self) -> int:
        """The bytes after its last frame (a trailing tag, or data that is not MP3 frames)."""
        return self.size - self.end


def frame_at(data: bytes | mmap.mmap, i: int) -> tuple[int, int, int] | None:
    """(bytes, samples, sample rate) of the MPEG audio frame whose header starts at `i`, or None when none
    does (a free-format frame, whose size its header does not give, is none either)."""
    if i + 4 > len(data) or data[i] != 0xFF or data[i + 1] & 0xE0 != 0xE0:
        return None
    version, layer_bits, b2 = (data[i + 1] >> 3) & 3, (data[i + 1] >> 1) & 3, data[i + 2]
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer, mpeg1, rate = 4 - layer_bits, version == 3, _RATES[version][rate_index]
    table = (1, layer) if mpeg1 else (2, 1 if layer == 1 else 2)
    bps = _BITRATES[table][bitrate_index - 1] * 1000
    if layer == 1:
        return (12 * bps // rate + padding) * 4, 384, rate
    if layer == 2 or mpeg1:
        return 144 * bps // rate + padding, 1152, rate
    return 72 * bps // rate + padding, 576, rate


def _id3v2_size(data: bytes | mmap.mmap, i: int) -> int:
    """The bytes of the ID3v2 tag at `i` (header, its syncsafe size, the footer if flagged), or 0."""
    if i + 10 > len(data) or data[i:i + 3] != b"ID3" or any(b & 0x80 for b in data[i + 6:i + 10]):
        return 0
    size = (data[i + 6] << 21) | (data[i + 7] << 14) | (data[i + 8] << 7) | data[i + 9]
    return 10 + size + (10 if data[i + 5] & 0x10 else 0)


def _confirmed(data: bytes | mmap.mmap, end: int) -> bool:
    """Whether what starts at `end`, just after a frame, shows that frame was one: the file's end, another
    frame, or a tag."""
    return end == len(data) or frame_at(data, end) is not None or bytes(data[end:end + 3]) in _TAGS


def _is_xing(data: bytes | mmap.mmap, i: int) -> bool:
    """Whether the frame at `i` is a Xing, Info or VBRI header, not audio."""
    mpeg1, mono = (data[i + 1] >> 3) & 3 == 3, data[i + 3] >> 6 == 3
    at, vbri = i + _XING_AT[mpeg1, mono], i + _VBRI_AT
    return bytes(data[at:at + 4]) in (b"Xing", b"Info") or bytes(data[vbri:vbri + 4]) == b"VBRI"


def mp3_frames(data: bytes | mmap.mmap) -> Mp3Frames:
    """The MPEG audio frames of `data`, each at its own sample rate: ID3v2 tags (at the start or between two
    joined files) skipped, bytes that are not a frame confirmed by the next passed over (the scan stops after
    MAX_FALSE_SYNCS of them: what it did not reach counts as bytes after the last frame)."""
    seconds, i, n = 0.0, 0, len(data)
    end = between = false_syncs = 0
    xing, framed = False, False
    while i + 4 <= n:
        tag = _id3v2_size(data, i)
        if tag:
            if framed:  # a tag between two joined files is not bytes the frames left out
                end = min(n, i + tag)
            i += tag
            continue
        frame = frame_at(data, i)
        if frame is not None and _confirmed(data, i + frame[0]):
            if framed:
                between += i - end
            else:
                xing, framed = _is_xing(data, i), True
            seconds += frame[1] / frame[2]
            i = end = i + frame[0]
            continue
        false_syncs += frame is not None
        if false_syncs > MAX_FALSE_SYNCS or (found := _HEADER.search(data, i + 1)) is None:
            break
        i = found.start()
    return Mp3Frames(seconds, xing, end, between, n)


def mp3_file_frames(source: str | Path | bytes) -> Mp3Frames:
    """:func:`mp3_frames` of a file (mapped, not read into memory) or of bytes."""
    if isinstance(source, bytes | bytearray | memoryview):
        return mp3_frames(bytes(source))
    with open(source, "rb") as f:
        if not f.seek(0, 2):
            return Mp3Frames(0.0, False, 0, 0, 0)  # an empty file cannot be mapped
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return mp3_frames(data)
