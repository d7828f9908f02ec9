"""The metadata inside an audio file and its UCS name, as a clip's :class:`Metadata`: read once per new clip
at ingestion (:func:`index.ingest.worker.ingest`, the Ray decode stage) and by `retrieval index
reread-metadata`. What the user gives wins, part by part (:meth:`Metadata.over`).

The mapping. Each source feeds one slot (index/ingest/wav_chunks.py reads WAV chunks with wavinfo,
index/ingest/tag_frames.py ID3 and Vorbis comments with mutagen; names are case-insensitive, except
Steinberg's); each slot lands in one place of the clip's metadata:

    slot                  lands in               iXML (USER element or KEY=value line; STEINBERG ATTR)
                                                 / BWF bext / RIFF INFO / ID3v2 (TXXX by its description)
                                                 / Vorbis and FLAC comment
    description           description, 1st part  USER DESCRIPTION / Description / ISBJ / TXXX DESCRIPTION
                                                 / DESCRIPTION
    comment               description, 2nd part  MediaComment / - / ICMT / COMM, TXXX COMMENT / COMMENT
    notes                 description, 3rd part  USER NOTES, NOTE / - / - / TXXX NOTES / NOTES
    keywords              tags (split at , ;)    USER KEYWORDS, MediaKeywords / - / IKEY / TXXX KEYWORDS
                                                 / KEYWORDS
    title                 field title            USER TITLE, USER SHORTID, MediaTrackTitle / - / INAM / TIT2,
                                                 TXXX TITLE / TITLE
    fx_name               field fx_name          USER FXNAME / - / - / TXXX FXNAME / FXNAME
    category              field category, a tag  USER CATEGORY, MediaCategoryPost / - / - / TXXX CATEGORY
                                                 / CATEGORY
    subcategory           field subcategory,     USER SUBCATEGORY, MediaSubCategoryPost / - / - / TXXX
                          a tag                  SUBCATEGORY / SUBCATEGORY
    catid                 field ucs_catid        USER CATID / - / - / TXXX CATID / CATID
    library               field library          USER LIBRARY, MediaLibrary, MediaLibraryName / - / IPRD
                                                 / TALB, TXXX LIBRARY, TXXX ALBUM / LIBRARY, ALBUM
    genre                 field genre, a tag     - / - / IGNR / TCON, TXXX GENRE / GENRE
    artist                field artist           USER DESIGNER / - / IART / TPE1, TXXX ARTIST / ARTIST
    copyright             field copyright        - / - / ICOP / TCOP, TXXX COPYRIGHT / COPYRIGHT
    originator            field originator       - / Originator / - / - / -
    originator_reference  field                  - / OriginatorReference / - / - / -
                          originator_reference
    origination_date      field origination_date - / OriginationDate / - / - / -

A UCS file name (index/ingest/ucs.py) adds the fields ``ucs_catid``, ``ucs_fx_name``, ``ucs_creator_id``,
``ucs_source_id``, ``ucs_user_data``, ``ucs_user_category``; a CatID the file holds (``catid``) wins over
the name's.

Where several sources give a slot, the first in this order is kept: iXML, bext, RIFF INFO, ID3, Vorbis
comments (keywords: all of them, each once); a source that gives a description slot several times (two
DESCRIPTION comments, two COMM frames) gives each distinct text, one paragraph each, and a field its first.
The description is the distinct texts of description, comment and notes, in that order, one paragraph each.
Text is cleaned by the one rule of user text as stored (index/store/names.py `stored_text`, the rule a clip's
name and the service's metadata follow): control characters (NUL, ESC, DEL, C1...) and direction controls
(U+202E...) dropped, a lone surrogate as U+FFFD, line breaks (CRLF, CR, NEL, U+2028...) as LF and tabs kept
(a tag's as spaces), composed (NFC), whitespace trimmed; where the service refuses a user's text holding
such a character, a file's is cleaned, never refused. It is then bounded as the service bounds a user's
metadata (index/store/metadata.py MAX_*), after that normalising: a description, tag or field value that is
too long is cut, tags and fields past their counts are dropped, each with a warning. Nothing read here ever
fails a clip: a reader that fails is skipped with a warning.
"""

import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from index.ingest.tag_frames import tag_slots
from index.ingest.ucs import ucs_fields
from index.ingest.wav_chunks import wav_slots
from index.store.metadata import (
    MAX_DESCRIPTION_CHARS,
    MAX_FIELD_VALUE_CHARS,
    MAX_FIELDS,
    MAX_USER_TAG_CHARS,
    MAX_USER_TAGS,
    TAG_SEPARATORS,
    Metadata,
    normalize_tags,
)
from index.store.names import stored_text

log = logging.getLogger(__name__)

DESCRIPTION_SLOTS = ("description", "comment", "notes")
TAG_SLOTS = ("category", "subcategory", "genre")  # each also a field
FIELD_OF = {"title": "title", "fx_name": "fx_name", "category": "category", "subcategory": "subcategory",
            "catid": "ucs_catid", "library": "library", "genre": "genre", "artist": "artist",
            "copyright": "copyright", "originator": "originator",
            "originator_reference": "originator_reference", "origination_date": "origination_date"}
MAX_READ_CHARS = 8 * MAX_DESCRIPTION_CHARS  # what one source's text is cut to before anything else


def file_metadata(source: Path | bytes, name: str) -> Metadata:
    """What the file (a path, or an upload's bytes) and its name say, bounded; Metadata() for nothing."""
    try:
        with _opened(source) as f:
            size = f.seek(0, io.SEEK_END)
            sources = [*wav_slots(f, size, name), tag_slots(f, size, name)]
    except OSError as e:
        log.warning("%s: its metadata cannot be read: %s", name, e)
        sources = []
    return from_slots(sources, ucs_fields(name), name)


def _opened(source: Path | bytes) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes | bytearray) else open(source, "rb")  # noqa: SIM115


def from_slots(sources: Iterable[Iterable[tuple[str, str]]], name_fields: dict[str, str],
               name: str) -> Metadata:
    """The metadata the sources' (slot, text) pairs make, over the UCS fields of the name: each slot from the
    first source that gives it (a description slot with all the distinct texts that source gives it, the
    others with its first), keywords from all."""
    first: dict[str, str] = {}
    keywords: list[str] = []
    for slots in sources:
        given: dict[str, list[str]] = {}
        for slot, raw in slots:
            if value := clean(raw):
                given.setdefault(slot, []).append(value)
        for slot, values in given.items():
            if slot == "keywords":
                keywords += [k for value in values for k in TAG_SEPARATORS.split(value)]
            elif slot not in first:
                first[slot] = "\n\n".join(dict.fromkeys(values)) if slot in DESCRIPTION_SLOTS else values[0]
    description = "\n\n".join(dict.fromkeys(first[s] for s in DESCRIPTION_SLOTS if s in first))
    fields = dict(name_fields)
    fields.update({FIELD_OF[s]: v for s, v in first.items() if s in FIELD_OF})
    tags = [t for s in TAG_SLOTS if s in first for t in TAG_SEPARATORS.split(first[s])]
    tags = keywords + tags  # tags cannot hold the separators
    return bounded(description, tags, fields, name)


def clean(text: str) -> str:
    """A file's text as stored (`stored_text` with its lines: no control or direction characters, line
    breaks LF, composed, trimmed), of at most MAX_READ_CHARS read."""
    return stored_text(text[:MAX_READ_CHARS], lines=True)


def bounded(description: str, tags: list[str], fields: dict[str, str], name: str) -> Metadata:
    """The service's bounds applied: long texts cut, tags and fields past their counts dropped (warned)."""
    if len(description) > MAX_DESCRIPTION_CHARS:
        log.warning("%s: its description is cut to %d characters", name, MAX_DESCRIPTION_CHARS)
        description = description[:MAX_DESCRIPTION_CHARS]
    cut_tags = []
    for tag in normalize_tags(tags):
        if len(tag) > MAX_USER_TAG_CHARS:
            log.warning("%s: the tag %r is cut to %d characters", name, tag[:40], MAX_USER_TAG_CHARS)
        cut_tags.append(tag[:MAX_USER_TAG_CHARS].strip())
    cut_tags = list(normalize_tags(cut_tags))
    if len(cut_tags) > MAX_USER_TAGS:
        log.warning("%s: %d tags, the last %d dropped", name, len(cut_tags), len(cut_tags) - MAX_USER_TAGS)
    for key, value in fields.items():
        if len(value) > MAX_FIELD_VALUE_CHARS:
            log.warning("%s: field %s is cut to %d characters", name, key, MAX_FIELD_VALUE_CHARS)
            fields[key] = value[:MAX_FIELD_VALUE_CHARS].strip()
    kept = dict(sorted(fields.items())[:MAX_FIELDS])
    if len(fields) > MAX_FIELDS:
        dropped = ", ".join(sorted(set(fields) - set(kept)))
        log.warning("%s: %d fields, %s dropped", name, len(fields), dropped)
    return Metadata.of(description=description.strip(), tags=cut_tags[:MAX_USER_TAGS], fields=kept)
