"""Where a FLAC file's frames end, by its last frame, so that a file whose header (STREAMINFO) counts fewer
samples than its frames hold is caught: libsndfile decodes no further than the count (retrieval/audio.py
refuses such a file rather than index part of it).

A frame header starts with a sync code and says its frame's (or first sample's) number, its block size and
its stream's parameters, checked by a CRC-8; the frame ends with a CRC-16 of all of it (retrieval/crc.py).
"""

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from retrieval.crc import crc, crc_table

# the last bytes of a FLAC searched for its last frame: twice its largest frame (STREAMINFO), within these
FLAC_TAIL = (1 << 16, 1 << 20)
FLAC_LAST_FRAME_TRIES = 4  # frame headers (CRC-8 right) tried from the end as the last frame (CRC-16)

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


def flac_frames_end(source: str | Path | bytes) -> int | None:
    """The sample at which a FLAC's frames end, by its last frame: in its last bytes (FLAC_TAIL), the last
    frame header whose fields agree with STREAMINFO and whose CRC-8 holds, and whose frame, running to the
    end of the file, ends in a CRC-16 that holds. None where none is (at most FLAC_LAST_FRAME_TRIES headers
    are tried)."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        head, size = bytes(view[:42]), len(view)
    else:
        with open(source, "rb") as f:
            head, size = f.read(42), f.seek(0, 2)
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:  # STREAMINFO comes first
        return None
    min_block, max_block = struct.unpack(">HH", head[8:12])
    max_frame, packed = int.from_bytes(head[15:18], "big"), int.from_bytes(head[18:26], "big")
    info = _StreamInfo(packed >> 44, ((packed >> 41) & 7) + 1, ((packed >> 36) & 31) + 1,
                       max_block if min_block == max_block else 0)
    want = min(size - 42, max(2 * max_frame if max_frame else FLAC_TAIL[1], FLAC_TAIL[0]), FLAC_TAIL[1])
    if isinstance(source, bytes | bytearray | memoryview):
        tail = bytes(view[size - want:])
    else:
        with open(source, "rb") as f:
            f.seek(size - want)
            tail = f.read(want)
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
