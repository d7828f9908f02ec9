"""The top-level chunks of a WAVE file: RIFF, and RF64 / BW64 (EBU Tech 3306, ITU-R BS.2088: WAVs past
4 GiB, whose chunk sizes of 0xFFFFFFFF are given by a ``ds64`` chunk, the data chunk's or its table's).

One walk serves both readers of chunks: the decoder's check that a file is not cut short
(retrieval/audio.py) and the metadata chunks read at ingestion (index/ingest/wav_chunks.py). It stops at the
end of the file, after MAX_CHUNKS chunks, and at a chunk whose size nothing gives (where the next one starts
is not known); a data chunk of unknown size (a streamed RIFF) is taken as running to the end of the file.
MAX_CHUNKS bounds the work a file of tiny chunks costs (a walk of 65,536 takes about 0.03 s); 1,024 refused
as "no audio data chunk" a file that libsndfile and ffmpeg read, whose 1,100 small chunks came first.

AIFF and AIFC files are IFF, the big-endian layout RIFF was made from: :func:`walk_aiff` walks theirs.
"""

import struct
from typing import BinaryIO, NamedTuple

MAX_CHUNKS = 65_536  # top-level chunks walked
LONG = 0xFFFFFFFF  # a chunk size meaning "see ds64" (or, in a streamed RIFF, "unknown")
DS64_FIXED = 28  # RIFF size, data size, sample count (64-bit each), table length (32-bit)

# a chunk's id (``LIST`` with its list type: ``LISTINFO``) -> (where its data starts, its length)
Chunks = dict[bytes, tuple[int, int]]


class Walk(NamedTuple):
    """What a walk of a WAVE file's chunks found."""

    chunks: Chunks
    riff_size: int  # the size its first chunk's header gives the rest of the file (RF64, BW64: LONG)
    whole: bool  # False: it stopped after MAX_CHUNKS chunks, before the end of the file


def walk(f: BinaryIO, size: int) -> Chunks | None:
    """The first chunk of each kind of the `size`-byte file `f`, as declared (a length may run past the end
    of a file cut short); None for a file that is not WAVE."""
    found = walk_wave(f, size)
    return None if found is None else found.chunks


def walk_wave(f: BinaryIO, size: int) -> Walk | None:
    """:func:`walk`'s chunks, with the RIFF size and whether the walk got to the end."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:] != b"WAVE":
        return None
    found, whole = _walk_chunks(f, size, "<", wave=head[:4])
    return Walk(found, struct.unpack("<I", head[4:8])[0], whole)


def walk_aiff(f: BinaryIO, size: int) -> Chunks | None:
    """The first chunk of each kind of the `size`-byte AIFF or AIFC file `f` (``FORM``, big-endian sizes),
    as declared; None for a file that is not one. It stops where :func:`walk` does."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"FORM" or head[8:] not in (b"AIFF", b"AIFC"):
        return None
    return _walk_chunks(f, size, ">", wave=None)[0]


def _walk_chunks(f: BinaryIO, size: int, order: str, *, wave: bytes | None) -> tuple[Chunks, bool]:
    """The chunks after a 12-byte head, sizes in byte `order` (`<` RIFF, `>` IFF), and whether the walk got
    to the end. `wave`, a WAVE file's first id, adds RIFF's rules: RF64/BW64's ``ds64`` sizes for chunks
    sized LONG, a streamed data chunk running to the end, and ``LIST`` chunks kept by their list type."""
    found: Chunks = {}
    sizes: dict[bytes, int] = {}  # RF64/BW64: the 64-bit sizes of the ds64 chunk
    at = 12
    for _ in range(MAX_CHUNKS):
        f.seek(at)
        header = f.read(12)
        if len(header) < 8:
            return found, True
        ident, length = struct.unpack(order + "4sI", header[:8])
        if wave is not None:
            if ident == b"ds64" and wave != b"RIFF":
                sizes = _ds64(f, at + 8, length)
            if length == LONG:
                if ident not in sizes:  # where the next chunk starts is not known
                    if ident == b"data":
                        found.setdefault(ident, (at + 8, max(0, size - at - 8)))
                    return found, True
                length = sizes[ident]
        if wave is not None and ident == b"LIST":
            found.setdefault(ident + header[8:12], (at + 12, max(0, length - 4)))
        else:
            found.setdefault(ident, (at + 8, length))
        at += 8 + length + (length & 1)
        if at >= size:
            return found, True
    return found, False


def _ds64(f: BinaryIO, start: int, length: int) -> dict[bytes, int]:
    """The 64-bit sizes an RF64/BW64 ``ds64`` chunk gives: the data chunk's, and those of its table."""
    f.seek(start)
    body = f.read(min(length, DS64_FIXED + 12 * MAX_CHUNKS))
    if len(body) < DS64_FIXED:
        return {}
    _riff, data, _samples, entries = struct.unpack("<QQQI", body[:DS64_FIXED])
    sizes = {b"data": data}
    for i in range(min(entries, (len(body) - DS64_FIXED) // 12)):
        ident, chunk_size = struct.unpack("<4sQ", body[DS64_FIXED + 12 * i:DS64_FIXED + 12 * (i + 1)])
        sizes.setdefault(ident, chunk_size)
    return sizes
