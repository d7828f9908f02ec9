"""What the decoder needs told of an Ogg file's pages: where its last page starts, and whether it is chained.

libsndfile (1.2) seeks an Ogg Vorbis stream by its pages' granule positions. In the last page it works the
page's first sample out backwards from the page's granule and the samples its packets decode to, which the
encoder's end trimming makes more than the granule counts: a seek there lands that many samples late (52 in
a file ffmpeg wrote; the last page can hold a second or more of audio), and the read then runs past the
audio's end. A seek to a frame before the last page, then reading forward, is exact.

A chained Ogg file (Ogg files joined end to end, as `cat a.ogg b.ogg` or a radio stream's recording writes
them) holds one logical stream after another, each starting with its own beginning-of-stream page. libsndfile
reads the first and stops where it ends, reporting its length as the file's: the rest would be left out of
the index without a word. :func:`chained_streams` finds the later streams' first pages, each checked by its
checksum (retrieval/crc.py).
"""

import mmap
import re
import struct
from pathlib import Path

from retrieval.crc import crc, crc_table

MAX_PAGE = 27 + 255 + 255 * 255  # an Ogg page's header, segment table and body at most
MAX_STREAMS = 64  # beginning-of-stream pages checked (each checksummed) before the count stops
# a stream's first page holds its codec's identification header alone (Vorbis, Opus, FLAC, Speex, Theora,
# Skeleton): a few dozen bytes
MAX_FIRST_PAGE = 4096
_GRANULE = struct.Struct("<q")
BOS = 0x02  # a page's header flag: the first page of a logical stream
# the capture pattern, version 0 and a header type with the BOS flag (continued and last-page flags aside)
_BOS_PAGE = re.compile(b"OggS\x00[" + re.escape(bytes(t for t in range(8) if t & BOS)) + b"]")


_CRC32 = crc_table(0x04C11DB7, 32)


def _first_page_end(data: bytes | mmap.mmap, at: int) -> int | None:
    """Where the beginning-of-stream page whose header starts at `at` ends, when it is whole, no longer than
    MAX_FIRST_PAGE and its checksum holds."""
    if at + 27 > len(data):
        return None
    segments = data[at + 27:at + 27 + data[at + 26]]
    end = at + 27 + len(segments) + sum(segments)
    if len(segments) != data[at + 26] or end > len(data) or end - at > MAX_FIRST_PAGE:
        return None
    page = bytearray(data[at:end])
    page[22:26] = bytes(4)  # the checksum is of the page with its own field zero
    return end if crc(_CRC32, 32, page) == int.from_bytes(data[at + 22:at + 26], "little") else None


def chained_streams(source: str | Path | bytes) -> list[int]:
    """Where each link of a chained Ogg file starts (its first beginning-of-stream page, checksummed): one
    start for a file of one stream, or of streams multiplexed side by side (whose first pages all come
    first, one after another); more for a chained one (up to MAX_STREAMS pages looked at)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return _chained(bytes(source))
    with open(source, "rb") as f:
        if not f.seek(0, 2):
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _chained(data)


def _chained(data: bytes | mmap.mmap) -> list[int]:
    links: list[int] = []
    previous_end = -1  # where the last beginning-of-stream page found ends
    for n, found in enumerate(_BOS_PAGE.finditer(data)):
        if n == MAX_STREAMS:
            break
        end = _first_page_end(data, found.start())
        if end is None:
            continue
        if found.start() != previous_end:  # not beside the one before: a new link of the chain
            links.append(found.start())
        previous_end = end
    return links


def last_page_start(path: Path) -> int | None:
    """The granule position (frame) at which the file's last Ogg page starts: the granule of the page before
    it; None when the file does not end in a whole page that follows another."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 2 * MAX_PAGE))
        tail = f.read()
    starts: dict[int, int] = {}  # end -> start of each page header found in the tail whose size fits
    i = tail.find(b"OggS")
    while i >= 0:
        if i + 27 <= len(tail) and tail[i + 4] == 0 and i + 27 + tail[i + 26] <= len(tail):
            segments = tail[i + 27:i + 27 + tail[i + 26]]
            starts[i + 27 + len(segments) + sum(segments)] = i
        i = tail.find(b"OggS", i + 1)
    last = starts.get(len(tail))
    before = starts.get(last) if last is not None else None
    if before is None:
        return None
    granule = _GRANULE.unpack_from(tail, before + 6)[0]
    return granule if granule >= 0 else None
