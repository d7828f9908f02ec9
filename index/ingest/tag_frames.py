"""Tags that mutagen reads: ID3v2 frames (MP3, and the ``id3`` chunk of WAV and AIFF files) and Vorbis
comments (FLAC, Ogg Vorbis, Opus).

:func:`tag_slots` gives what they say as (slot, text) pairs; which slot each tag feeds is the table of
index/ingest/embedded.py. Tag names a file may hold that are in no table are not read. A file whose tags
cannot be read (damaged, truncated, an ID3 tag declaring more than MAX_ID3_BYTES) gives nothing, with a
warning; the clip is indexed all the same. ID3 frames may be zlib-compressed: a tag's frames together inflate
to at most MAX_ID3_BYTES (a frame of a few kilobytes can inflate to gigabytes), those past it are left out.
"""

import io
import logging
import threading
import zlib
from types import SimpleNamespace
from typing import Any, BinaryIO

from retrieval.riff import walk

log = logging.getLogger(__name__)

Slots = list[tuple[str, str]]

MAX_ID3_BYTES = 16 * 1024 * 1024  # the frames and their pictures; larger is not a tag

# Vorbis comment names, and ID3 TXXX descriptions, case-insensitively
NAMED = {"TITLE": "title", "DESCRIPTION": "description", "COMMENT": "comment", "GENRE": "genre",
         "KEYWORDS": "keywords", "ARTIST": "artist", "ALBUM": "library", "COPYRIGHT": "copyright",
         "CATEGORY": "category", "SUBCATEGORY": "subcategory", "CATID": "catid", "FXNAME": "fx_name",
         "LIBRARY": "library", "NOTES": "notes"}
# comments players write for themselves (iTunes' gapless and loudness data: hex numbers), not words
PLAYER_COMMENTS = ("iTun",)
ID3_FRAMES = {"TIT2": "title", "COMM": "comment", "TCON": "genre", "TPE1": "artist", "TALB": "library",
              "TCOP": "copyright"}


class _BoundedInflate:
    """zlib as mutagen's ID3 frames use it (`decompress` and `error`), inflating no more than is left of the
    tag being read's MAX_ID3_BYTES: a frame past it is an error, which mutagen takes for a junk frame and
    leaves out."""

    error = zlib.error
    _left = threading.local()  # the bytes the tag being read in this thread may still inflate to

    @classmethod
    def start(cls) -> None:
        cls._left.bytes, cls._left.refused = MAX_ID3_BYTES, 0

    @classmethod
    def refused(cls) -> int:
        return getattr(cls._left, "refused", 0)

    @classmethod
    def decompress(cls, data: bytes) -> bytes:
        left = getattr(cls._left, "bytes", MAX_ID3_BYTES)
        inflate = zlib.decompressobj()
        out = inflate.decompress(data, left + 1)
        if len(out) > left:
            cls._left.refused = cls.refused() + 1
            raise zlib.error(f"a compressed frame inflates past the tag's {MAX_ID3_BYTES} bytes")
        if not inflate.eof:  # as zlib.decompress: a stream cut short is no frame (its text would be cut)
            raise zlib.error("the compressed frame is cut short")
        cls._left.bytes = left - len(out)
        return out


def _bound_id3_inflation() -> None:
    """mutagen's ID3 frames inflated through :class:`_BoundedInflate` (it calls zlib.decompress unbounded)."""
    from mutagen.id3 import _frames

    _frames.zlib = _BoundedInflate  # type: ignore[assignment]


def tag_slots(f: BinaryIO, size: int, name: str) -> Slots:
    """What the file's ID3 or Vorbis tags say ([] for none). An RF64/BW64 WAV's ``id3`` chunk (which mutagen
    does not find in those) is read from where the chunk walk of retrieval/riff.py finds it."""
    _bound_id3_inflation()
    _BoundedInflate.start()
    try:
        return _tag_slots(f, size, name)
    finally:
        _BoundedInflate.start()  # whatever else reads ID3 in this thread starts from a whole budget


def _tag_slots(f: BinaryIO, size: int, name: str) -> Slots:
    import mutagen

    try:
        if _id3_size(f) > MAX_ID3_BYTES:
            log.warning("%s: its ID3 tag declares more than %d bytes: skipped", name, MAX_ID3_BYTES)
            return []
        f.seek(0)
        if f.read(4) in (b"RF64", b"BW64"):
            found = _rf64_id3(f, size, name)
        else:
            f.seek(0)
            found = mutagen.File(f)
    except Exception as e:  # a hostile tag must never fail the clip  # noqa: BLE001
        log.warning("%s: its tags cannot be read, skipped: %s: %s", name, type(e).__name__, e)
        return []
    if _BoundedInflate.refused():
        log.warning("%s: %d compressed ID3 frames inflate past %d bytes: left out", name,
                    _BoundedInflate.refused(), MAX_ID3_BYTES)
    tags = getattr(found, "tags", None)
    if tags is None:
        return []
    try:
        return _id3(tags) if hasattr(tags, "getall") else _vorbis(tags)
    except Exception as e:  # noqa: BLE001
        log.warning("%s: its tags cannot be read, skipped: %s: %s", name, type(e).__name__, e)
        return []


def _rf64_id3(f: BinaryIO, size: int, name: str) -> Any:
    """The ID3 tag of an RF64/BW64 file's ``id3 `` (or ``ID3 ``) chunk, None without one."""
    from mutagen.id3 import ID3

    chunks = walk(f, size) or {}
    at = chunks.get(b"id3 ") or chunks.get(b"ID3 ")
    if at is None:
        return None
    if at[1] > MAX_ID3_BYTES:
        log.warning("%s: its ID3 tag declares more than %d bytes: skipped", name, MAX_ID3_BYTES)
        return None
    f.seek(at[0])
    return SimpleNamespace(tags=ID3(io.BytesIO(f.read(at[1]))))


def _id3_size(f: BinaryIO) -> int:
    """The size an ID3v2 tag at the start of the file declares (synchsafe), 0 without one."""
    f.seek(0)
    head = f.read(10)
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    return (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)


def _id3(tags: Any) -> Slots:
    out: Slots = []
    for frame_id, slot in ID3_FRAMES.items():
        for frame in tags.getall(frame_id):
            if frame_id == "COMM" and str(frame.desc).startswith(PLAYER_COMMENTS):
                continue
            out += [(slot, str(t)) for t in frame.text]
    for frame in tags.getall("TXXX"):
        if (named := NAMED.get(str(frame.desc).upper())) is not None:
            out += [(named, str(t)) for t in frame.text]
    return out


def _vorbis(tags: Any) -> Slots:
    out: Slots = []
    for key, value in tags.items() if hasattr(tags, "items") else ():
        if (named := NAMED.get(str(key).upper())) is not None:
            out += [(named, str(v)) for v in (value if isinstance(value, list) else [value])]
    return out
