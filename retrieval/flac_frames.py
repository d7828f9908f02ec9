"""Where a FLAC file's frames start and end, so that a file whose header (STREAMINFO) counts fewer
samples than its frames hold is caught: libsndfile decodes no further than the count (retrieval/audio.py
refuses such a file rather than index part of it).

A frame header starts with a sync code and says its frame's (or first sample's) number, its block size and
its stream's parameters, checked by a CRC-8; the frame ends with a CRC-16 of all of it (retrieval/crc.py).
"""

import itertools
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from retrieval.crc import crc, crc_table

# the last bytes of a FLAC searched for its last frame: twice its largest frame (STREAMINFO), within these
FLAC_TAIL = (1 << 16, 1 << 20)
FLAC_LAST_FRAME_TRIES = 4  # frame headers (CRC-8 right) tried from the end as the last frame (CRC-16)
PROBES = (0.25, 0.5, 0.75)  # the places in a file (of its bytes) where :func:`flac_frames` looks

_CRC8, _CRC16 = crc_table(0x07, 8), crc_table(0x8005, 16)
_FLAC_SYNC = re.compile(b"\xff[\xf8\xf9]")  # a frame header's sync code, then its blocking strategy bit
# Hz by a frame header's sample rate code 1-11; bits by its sample size code (0: STREAMINFO's; 3: reserved)
_FLAC_RATES = (0, 88_200, 176_400, 192_000, 8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000)
_FLAC_BITS = (0, 8, 12, 0, 16, 20, 24, 32)


@dataclass(frozen=True)
class _StreamInfo:
    rate: int
    channels: int
    bits: int
    block: int  # the block size of a stream whose blocks are all alike but the last (0: they are not)
    max_frame: int  # bytes of its largest frame (0: not known)


@dataclass(frozen=True)
class FlacFrames:
    """Where a FLAC's frames say its samples are, STREAMINFO read once for both."""

    # the first sample of the first whole frame after each fraction of its bytes probed (its header's CRC-8
    # and its CRC-16 holding), in the order of the file; a place where none is found is left out. They rise
    # with the place in a file of one stream; files joined without being encoded again (ffmpeg's concat with
    # `-c copy`) number their frames from the start again where the next one begins.
    starts: list[int]
    # the sample at which its frames end, by its last frame: in its last bytes (FLAC_TAIL), the last frame
    # header whose fields agree with STREAMINFO and whose CRC-8 holds, and whose frame, running to the end
    # of the file, ends in a CRC-16 that holds. None where none is (at most FLAC_LAST_FRAME_TRIES tried).
    end: int | None


def flac_frames(source: str | Path | bytes, at: tuple[float, ...] = PROBES) -> FlacFrames:
    """Where the frames of the FLAC `source` start after each fraction `at` of its bytes, and where they end
    (nothing found for a file that does not start with STREAMINFO)."""
    if (info := _stream_info(source)) is None:
        return FlacFrames([], None)
    size = _size(source)
    return FlacFrames(_frame_starts(source, size, info, at), _frames_end(source, size, info))


def _frames_end(source: str | Path | bytes, size: int, info: _StreamInfo) -> int | None:
    """:attr:`FlacFrames.end`."""
    tail = _bytes_at(source, size - min(size - 42, _window(info)), size)
    tried = 0
    for at in reversed([m.start() for m in _FLAC_SYNC.finditer(tail)]):
        if (frame := _flac_frame(tail, at, info)) is None:
            continue
        if crc(_CRC16, 16, tail[at:-2]) == int.from_bytes(tail[-2:], "big"):
            return frame[0] + frame[1]
        tried += 1
        if tried == FLAC_LAST_FRAME_TRIES:
            break
    return None


def _frame_starts(source: str | Path | bytes, size: int, info: _StreamInfo,
                  at: tuple[float, ...]) -> list[int]:
    """:attr:`FlacFrames.starts`."""
    starts = []
    for fraction in at:
        start = max(42, int(size * fraction))
        window = _bytes_at(source, start, min(size, start + _window(info)))
        if (first := _first_whole_frame(window, info)) is not None:
            starts.append(first)
    return starts


def _first_whole_frame(b: bytes, info: _StreamInfo) -> int | None:
    """The first sample of the first frame in `b` that ends where the next frame header starts, with a CRC-16
    that holds (at most FLAC_LAST_FRAME_TRIES headers tried)."""
    headers = [(m.start(), frame) for m in _FLAC_SYNC.finditer(b)
               if (frame := _flac_frame(b, m.start(), info)) is not None]
    for (at, frame), (following, _) in list(itertools.pairwise(headers))[:FLAC_LAST_FRAME_TRIES]:
        if crc(_CRC16, 16, b[at:following - 2]) == int.from_bytes(b[following - 2:following], "big"):
            return frame[0]
    return None


def _stream_info(source: str | Path | bytes) -> _StreamInfo | None:
    """STREAMINFO's fields a frame header is held against (None: not a FLAC that starts with it)."""
    head = _bytes_at(source, 0, 42)
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:  # STREAMINFO comes first
        return None
    min_block, max_block = struct.unpack(">HH", head[8:12])
    max_frame, packed = int.from_bytes(head[15:18], "big"), int.from_bytes(head[18:26], "big")
    return _StreamInfo(packed >> 44, ((packed >> 41) & 7) + 1, ((packed >> 36) & 31) + 1,
                       max_block if min_block == max_block else 0, max_frame)


def _window(info: _StreamInfo) -> int:
    """Bytes read to find a frame: twice the largest frame STREAMINFO gives, within FLAC_TAIL."""
    return min(max(2 * info.max_frame if info.max_frame else FLAC_TAIL[1], FLAC_TAIL[0]), FLAC_TAIL[1])


def _size(source: str | Path | bytes) -> int:
    return len(source) if isinstance(source, bytes | bytearray | memoryview) else Path(source).stat().st_size


def _bytes_at(source: str | Path | bytes, start: int, end: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(memoryview(source).cast("B")[start:end])
    with open(source, "rb") as f:
        f.seek(start)
        return f.read(max(0, end - start))


def _flac_frame(b: bytes, at: int, info: _StreamInfo) -> tuple[int, int] | None:
    """(first sample, samples) of the FLAC frame whose header starts at `at` in `b`, when its fields agree
    with STREAMINFO's and its CRC-8 holds."""
    if at + 6 > len(b) or b[at + 3] & 1:  # its reserved bit set
        return None
    block_code, rate_code = b[at + 2] >> 4, b[at + 2] & 15
    channel_code, bits_code = b[at + 3] >> 4, (b[at + 3] >> 1) & 7
    if (block_code == 0 or rate_code == 15 or channel_code > 10 or bits_code == 3
            or (channel_code + 1 if channel_code < 8 else 2) != info.channels
            or (bits_code and _FLAC_BITS[bits_code] != info.bits)
            or (0 < rate_code < 12 and _FLAC_RATES[rate_code] != info.rate)):
        return None
    # its frame number (fixed block size) or its first sample's (variable), coded as UTF-8 codes a character
    lead = b[at + 4]
    ones = 8 - (~lead & 0xFF).bit_length()  # its leading one bits: the bytes the number takes
    if ones == 1 or ones == 8:
        return None
    number, i = lead & (0x7F >> ones), at + 5
    for _ in range(max(0, ones - 1)):
        if i >= len(b) or b[i] & 0xC0 != 0x80:
            return None
        number, i = number << 6 | b[i] & 0x3F, i + 1
    if block_code in (6, 7):  # the block size (less 1) in the next one or two bytes
        width = block_code - 5
        block, i = int.from_bytes(b[i:i + width], "big") + 1, i + width
    elif block_code < 6:
        block = 192 if block_code == 1 else 576 << (block_code - 2)
    else:
        block = 256 << (block_code - 8)
    i += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)  # a sample rate the codes do not list
    if i >= len(b) or crc(_CRC8, 8, b[at:i]) != b[i]:
        return None
    if b[at + 1] & 1:  # variable block size: the number is the first sample's
        return number, block
    return (number * info.block, block) if info.block else None
