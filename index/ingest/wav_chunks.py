"""The metadata chunks of a WAV file (RIFF, RF64, BW64): BWF ``bext`` (read by wavinfo), RIFF ``LIST INFO``
and ``iXML`` (parsed by wavinfo, read here: Soundminer's ``USER`` elements, Steinberg's attributes, ``NOTE``).

:func:`wav_slots` gives what the chunks say as (slot, text) pairs, best source first; which slot each
element feeds is the table of index/ingest/embedded.py. The chunks are found by a walk of the top-level
chunks that stops at the end of the file (a truncated file keeps what comes before the cut) and after
MAX_CHUNKS of them. In an RF64 or BW64 file (a WAV past 4 GiB: long, multichannel or high-rate recordings) a
chunk whose 32-bit size is 0xFFFFFFFF takes its size from the ``ds64`` chunk (the data chunk's, or its
table's), so the chunks written after the audio (where many editors put iXML and bext) are found too; one
that ds64 does not size ends the walk. Each chunk is read on its own, its declared size checked against a
cap first; one that is too big, cut short, badly encoded, nested too deep or otherwise unreadable is
skipped with a warning, and the others are still read.
"""

import logging
import re
import struct
from typing import BinaryIO

log = logging.getLogger(__name__)

Slots = list[tuple[str, str]]

MAX_CHUNKS = 1024  # top-level chunks walked
MAX_BEXT_BYTES = 64 * 1024  # 602 bytes of fields and the coding history
MAX_INFO_BYTES = 64 * 1024
MAX_IXML_BYTES = 1024 * 1024
MAX_XML_DEPTH = 32  # iXML is a few levels deep; more is not iXML
LONG = 0xFFFFFFFF  # an RF64/BW64 chunk size meaning "see ds64"
DS64_FIXED = 28  # RIFF size, data size, sample count (64-bit each), table length (32-bit)

BEXT = {"description": "description", "originator": "originator",
        "originator_ref": "originator_reference", "originator_date": "origination_date"}
INFO = {b"INAM": "title", b"ISBJ": "description", b"ICMT": "comment", b"IKEY": "keywords", b"IGNR": "genre",
        b"IART": "artist", b"ICOP": "copyright", b"IPRD": "library"}
IXML_USER = {"DESCRIPTION": "description", "CATEGORY": "category", "SUBCATEGORY": "subcategory",
             "CATID": "catid", "FXNAME": "fx_name", "LIBRARY": "library", "KEYWORDS": "keywords",
             "NOTES": "notes", "TITLE": "title", "DESIGNER": "artist", "SHORTID": "title"}
STEINBERG = {"MediaCategoryPost": "category", "MediaSubCategoryPost": "subcategory",
             "MediaTrackTitle": "title", "MediaLibrary": "library", "MediaLibraryName": "library",
             "MediaComment": "comment", "MediaKeywords": "keywords"}
USER_LINE = re.compile(r"^\s*([A-Za-z_]+)\s*[:=]\s*(.+?)\s*$", re.MULTILINE)  # USER as text: KEY=value


def wav_slots(f: BinaryIO, size: int, name: str) -> Slots:
    """What a WAV's metadata chunks say, iXML first, then bext, then INFO ([] for a file that is not
    WAV)."""
    chunks = walk(f, size)
    out: Slots = []
    for ident, reader, cap in ((b"iXML", _ixml, MAX_IXML_BYTES), (b"bext", _bext, MAX_BEXT_BYTES),
                               (b"LISTINFO", _info, MAX_INFO_BYTES)):
        if ident not in chunks:
            continue
        start, length = chunks[ident]
        what = ident.decode("ascii")
        if length > cap:
            log.warning("%s: its %s chunk declares %d bytes (more than %d): skipped", name, what, length, cap)
            continue
        f.seek(start)
        data = f.read(length)
        if len(data) < length:
            log.warning("%s: its %s chunk is cut short (%d of %d bytes): skipped", name, what, len(data),
                        length)
            continue
        try:
            out += reader(data, name)
        except Exception as e:  # a hostile chunk must never fail the clip  # noqa: BLE001
            log.warning("%s: its %s chunk cannot be read, skipped: %s: %s", name, what, type(e).__name__, e)
    return out


def walk(f: BinaryIO, size: int) -> dict[bytes, tuple[int, int]]:
    """The first chunk of each kind: its id (``LIST`` with its list type: ``LISTINFO``) -> (data start,
    declared length)."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:] != b"WAVE":
        return {}
    found: dict[bytes, tuple[int, int]] = {}
    sizes: dict[bytes, int] = {}  # RF64/BW64: the 64-bit sizes of the ds64 chunk
    at = 12
    for _ in range(MAX_CHUNKS):
        f.seek(at)
        header = f.read(12)
        if len(header) < 8:
            break
        ident, length = struct.unpack("<4sI", header[:8])
        if ident == b"ds64" and head[:4] != b"RIFF":
            sizes = _ds64(f, at + 8, length)
        if length == LONG:
            if ident not in sizes:  # where the next chunk starts is not known
                break
            length = sizes[ident]
        if ident == b"LIST":
            found.setdefault(ident + header[8:12], (at + 12, max(0, length - 4)))
        else:
            found.setdefault(ident, (at + 8, length))
        at += 8 + length + (length & 1)
        if at >= size:
            break
    return found


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


def text(raw: bytes, name: str, what: str) -> str:
    """A chunk's bytes as text: UTF-8 (ASCII is), else Latin-1 with a warning (the encoding is not declared);
    cut at the first NUL."""
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        log.warning("%s: its %s text is not UTF-8; read as Latin-1", name, what)
        return raw.decode("latin-1")


def _bext(data: bytes, name: str) -> Slots:
    from wavinfo.wave_bext_reader import WavBextReader

    try:
        bext = WavBextReader(data, "utf-8")
    except UnicodeDecodeError:
        log.warning("%s: its bext text is not UTF-8; read as Latin-1", name)
        bext = WavBextReader(data, "latin-1")
    return [(slot, getattr(bext, attr) or "") for attr, slot in BEXT.items()]


def _info(data: bytes, name: str) -> Slots:
    out, at = [], 0
    while at + 8 <= len(data):
        ident, length = struct.unpack("<4sI", data[at:at + 8])
        if ident in INFO:
            out.append((INFO[ident], text(data[at + 8:at + 8 + length], name, f"INFO {ident.decode()}")))
        at += 8 + length + (length & 1)
    return out


def _ixml(data: bytes, name: str) -> Slots:
    from wavinfo.wave_ixml_reader import WavIXMLFormat

    data = data.rstrip(b"\0")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("it declares a DTD or entities, which iXML has no use for")
    root = WavIXMLFormat(data).raw_xml.getroot()
    if root is None:
        raise ValueError("no XML in it")
    if _depth(root) > MAX_XML_DEPTH:
        raise ValueError(f"it is nested more than {MAX_XML_DEPTH} levels deep")
    out: Slots = []
    for user in root.findall("USER"):
        for child in user:
            if isinstance(child.tag, str) and child.tag.upper() in IXML_USER:
                out.append((IXML_USER[child.tag.upper()], child.text or ""))
        for key, value in USER_LINE.findall(user.text or ""):
            if key.upper() in IXML_USER:
                out.append((IXML_USER[key.upper()], value))
    for attr in root.findall("STEINBERG/ATTR_LIST/ATTR"):
        key = attr.findtext("NAME") or ""
        if key in STEINBERG:
            out.append((STEINBERG[key], attr.findtext("VALUE") or ""))
    out += [("notes", note.text or "") for note in root.findall("NOTE")]
    return out


def _depth(element, limit: int = MAX_XML_DEPTH + 1) -> int:
    """How deep the element's tree goes, counted up to `limit`."""
    level, depth = [element], 1
    while depth < limit:
        level = [child for e in level for child in e]
        if not level:
            break
        depth += 1
    return depth
