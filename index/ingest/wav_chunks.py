"""The metadata chunks of a WAV file (RIFF, RF64, BW64): BWF ``bext``, RIFF ``LIST INFO`` and ``iXML``
(parsed by wavinfo, read here: Soundminer's ``USER`` elements, Steinberg's attributes, ``NOTE``).

:func:`wav_slots` gives what the chunks say as (slot, text) pairs, a list per chunk, best source first; which
slot each element feeds is the table of index/ingest/embedded.py. The chunks are found by a walk of the top-
level chunks that stops at the end of the file (a truncated file keeps what comes before the cut) and after
MAX_CHUNKS of them (retrieval/riff.py, which reads RF64 and BW64 files' ``ds64`` sizes, so the chunks written
after the audio, where many editors put iXML and bext, are found too). Each chunk is read on its own, its
declared size checked against a cap first; one that is too big, cut short, badly encoded, nested too deep or
otherwise unreadable is skipped with a warning, and the others are still read.
"""

import codecs
import logging
import re
import struct
from typing import BinaryIO

from retrieval.riff import walk

log = logging.getLogger(__name__)

Slots = list[tuple[str, str]]

MAX_BEXT_BYTES = 64 * 1024  # 602 bytes of fields and the coding history
MAX_INFO_BYTES = 64 * 1024
MAX_IXML_BYTES = 1024 * 1024
MAX_XML_DEPTH = 32  # iXML is a few levels deep; more is not iXML

# bext's first text fields: (slot, bytes), in the chunk's order
BEXT_FIELDS = (("description", 256), ("originator", 32), ("originator_reference", 32),
               ("origination_date", 10))
BEXT_TEXT_BYTES = sum(size for _, size in BEXT_FIELDS)
INFO = {b"INAM": "title", b"ISBJ": "description", b"ICMT": "comment", b"IKEY": "keywords", b"IGNR": "genre",
        b"IART": "artist", b"ICOP": "copyright", b"IPRD": "library"}
IXML_USER = {"DESCRIPTION": "description", "CATEGORY": "category", "SUBCATEGORY": "subcategory",
             "CATID": "catid", "FXNAME": "fx_name", "LIBRARY": "library", "KEYWORDS": "keywords",
             "NOTES": "notes", "TITLE": "title", "DESIGNER": "artist", "SHORTID": "title"}
STEINBERG = {"MediaCategoryPost": "category", "MediaSubCategoryPost": "subcategory",
             "MediaTrackTitle": "title", "MediaLibrary": "library", "MediaLibraryName": "library",
             "MediaComment": "comment", "MediaKeywords": "keywords"}
USER_LINE = re.compile(r"^\s*([A-Za-z_]+)\s*[:=]\s*(.+?)\s*$", re.MULTILINE)  # USER as text: KEY=value


def wav_slots(f: BinaryIO, size: int, name: str) -> list[Slots]:
    """What a WAV's metadata chunks say, a list per chunk: iXML first, then bext, then INFO ([] for a file
    that is not WAV)."""
    chunks = walk(f, size) or {}
    out: list[Slots] = []
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
            out.append(reader(data, name))
        except Exception as e:  # a hostile chunk must never fail the clip  # noqa: BLE001
            log.warning("%s: its %s chunk cannot be read, skipped: %s: %s", name, what, type(e).__name__, e)
    return out


def _latin1_bytes(error: UnicodeError) -> tuple[str, int]:
    """A decoding error handler: the bytes a codec has no character for, each read as Latin-1 reads it."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start:error.end].decode("latin-1"), error.end


# Windows-1252 has no character for 0x81, 0x8D, 0x8F, 0x90 and 0x9D: such a byte alone is read as Latin-1
LATIN1_BYTES = "wav-chunks-latin1-bytes"
codecs.register_error(LATIN1_BYTES, _latin1_bytes)


def text(raw: bytes, name: str, what: str, *, field_size: int | None = None) -> str:
    """A chunk's bytes as text: UTF-8 (ASCII is), else Windows-1252 with a warning (the encoding is not
    declared; what Windows tools write, whose curly quotes and `…` Latin-1 would read as controls), a byte
    with no Windows-1252 character read alone as Latin-1 (a C1 control: the rest keeps its quotes); cut at
    the first NUL. UTF-8 that fills a fixed field of `field_size` bytes to its last byte, cut there within a
    character, is that text without the cut character."""
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if len(raw) == field_size and e.reason == "unexpected end of data" and len(raw) - e.start < 4:
            return raw[:e.start].decode("utf-8")
        log.warning("%s: its %s text is not UTF-8; read as Windows-1252", name, what)
        return raw.decode("cp1252", errors=LATIN1_BYTES)


def _bext(data: bytes, name: str) -> Slots:
    """The bext chunk's text fields (EBU Tech 3285's fixed layout), each decoded on its own: one field in
    Windows-1252 leaves the others' UTF-8 as it is."""
    if len(data) < BEXT_TEXT_BYTES:
        raise ValueError(f"{len(data)} bytes, fewer than its {BEXT_TEXT_BYTES} bytes of text fields")
    out, at = [], 0
    for slot, size in BEXT_FIELDS:
        out.append((slot, text(data[at:at + size], name, f"bext {slot}", field_size=size)))
        at += size
    return out


def _info(data: bytes, name: str) -> Slots:
    out, at = [], 0
    while at + 8 <= len(data):
        ident, length = struct.unpack("<4sI", data[at:at + 8])
        if ident in INFO:
            out.append((INFO[ident], text(data[at + 8:at + 8 + length], name, f"INFO {ident.decode()}")))
        at += 8 + length + (length & 1)
    return out


DECLARES_ENTITIES = "it declares a DTD or entities, which iXML has no use for"


def _ixml(data: bytes, name: str) -> Slots:
    from wavinfo.wave_ixml_reader import WavIXMLFormat

    data = data.rstrip(b"\0")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError(DECLARES_ENTITIES)
    tree = WavIXMLFormat(data).raw_xml
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:  # in UTF-16, the bytes above are not
        raise ValueError(DECLARES_ENTITIES)
    root = tree.getroot()
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
