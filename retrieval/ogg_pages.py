"""Where the last page of an Ogg Vorbis file starts, so that a seek into it lands where it should.

libsndfile (1.2) seeks an Ogg Vorbis stream by its pages' granule positions. In the last page it works the
page's first sample out backwards from the page's granule and the samples its packets decode to, which the
encoder's end trimming makes more than the granule counts: a seek there lands that many samples late (52 in
a file ffmpeg wrote; the last page can hold a second or more of audio), and the read then runs past the
audio's end. A seek to a frame before the last page, then reading forward, is exact.
"""

import struct
from pathlib import Path

MAX_PAGE = 27 + 255 + 255 * 255  # an Ogg page's header, segment table and body at most
_GRANULE = struct.Struct("<q")


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
