"""An MP3's length counted from its frames' headers.

libsndfile takes an MP3's length from its Xing (or VBRI) header, or without one from the first frame's bit
rate and the file's size, and decodes no further than that length: a file whose bit rate varies and that has
no such header (two encodings joined end to end, some encoders' VBR) is cut short without a word. Counting
the frames (each MPEG audio frame header gives its size and how many samples it holds) tells how long the
audio really is, so that such a file is refused rather than indexed in part.
"""

import mmap
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


def mp3_seconds(data: bytes | mmap.mmap) -> float:
    """The seconds of audio the MPEG audio frames of `data` hold, each at its own sample rate: ID3v2 tags
    (at the start or between two joined files) skipped, bytes that are not a frame confirmed by the next
    passed over."""
    seconds, i, n = 0.0, 0, len(data)
    while i + 4 <= n:
        tag = _id3v2_size(data, i)
        if tag:
            i += tag
            continue
        frame = frame_at(data, i)
        if frame is not None and _confirmed(data, i + frame[0]):
            seconds += frame[1] / frame[2]
            i += frame[0]
            continue
        i = data.find(b"\xff", i + 1)
        if i < 0:
            break
    return seconds


def mp3_file_seconds(source: str | Path | bytes) -> float:
    """:func:`mp3_seconds` of a file (mapped, not read into memory) or of bytes."""
    if isinstance(source, bytes | bytearray | memoryview):
        return mp3_seconds(bytes(source))
    with open(source, "rb") as f:
        if not f.seek(0, 2):
            return 0.0  # an empty file cannot be mapped
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return mp3_seconds(data)
