"""What users say about their clips: a description, their own tags and named fields, all optional.

Their text is user text as index/store/names.py stores it (one rule of characters with a clip's name: no
control characters or direction controls, composed (NFC), no spaces at either end): a description and a
field value are lines of text (tabs kept, line breaks LF), a tag one line. Text a user sends is refused where
the rule would take a character out (app/schemas/clips.py, `checked_text`); text read from files is cleaned
(index/ingest/embedded.py, `stored_text`); `Metadata.of` stores either as `stored_text` makes it.

User tags are kept normalised, so that both stores match them exactly: one line, composed, lower case, inner
whitespace as single spaces, no repeats (the first occurrence's place is kept); a filter's tags are
normalised alike (index/store/records.py `SearchFilter`). Field keys are identifiers
(``[A-Za-z_][A-Za-z0-9_]*``): Qdrant reads a dot in a payload key as a path. Field values are strings,
matched exactly. Their bounds (lengths, counts) are named here (MAX_*) and count the characters as stored
(a tag of 60 letters sent with spaces around it is 60): the service's models (app/schemas/clips.py
`MetadataIn`) hold requests to them, and what index/ writes without going through those models (the metadata
read from inside audio files, index/ingest/embedded.py) is cut to them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from index.store.names import lf_text as lf_text  # re-exported: index/qdrant/payload.py reads with it
from index.store.names import stored_text
from retrieval.errors import refuse_one_for_many

FIELD_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TAG_SEPARATORS = re.compile(r"[;,]")  # between tags in one string (a CSV cell, a form field)

MAX_DESCRIPTION_CHARS = 2000
MAX_USER_TAGS = 32  # per clip, and per filter
MAX_USER_TAG_CHARS = 64
MAX_FIELDS = 32  # per clip, and per filter
MAX_FIELD_KEY_CHARS = 64
MAX_FIELD_VALUE_CHARS = 200


def normalize_tag(tag: str) -> str:
    """A tag as stored: one line of `stored_text`, lower case, inner whitespace as single spaces, composed
    (`café` typed decomposed, an e and U+0301, is the tag `café`)."""
    return unicodedata.normalize("NFC", " ".join(stored_text(tag).split()).lower())


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Normalised, empty ones dropped, each once, in the order first given; TypeError for one string (its
    letters would be the tags)."""
    refuse_one_for_many(tags, str, "tags")
    return tuple(dict.fromkeys(t for t in map(normalize_tag, tags) if t))


def check_field_key(key: str) -> str:
    if not FIELD_KEY.fullmatch(key):
        raise ValueError(f"field key {key!r} is not an identifier (letters, digits, _; not starting with a "
                         "digit)")
    return key


@dataclass(frozen=True)
class Metadata:
    description: str = ""
    tags: tuple[str, ...] = ()  # user tags, normalised
    fields: tuple[tuple[str, str], ...] = ()  # (key, value), sorted by key

    @classmethod
    def of(cls, *, description: str = "", tags: Iterable[str] = (),
           fields: Mapping[str, str] | None = None) -> Metadata:
        """Normalised: the description and the field values as stored (`stored_text` with their lines: its
        line breaks LF, as a file's CRLF and a form's LF are the same text; composed; stripped; without
        control characters or direction controls), tags as normalize_tags, fields sorted; ValueError for a
        field key that is not an identifier or a value that is not a string."""
        items = sorted((fields or {}).items())
        for key, value in items:
            check_field_key(key)
            if not isinstance(value, str):
                raise ValueError(f"field {key!r}: values are strings, not {type(value).__name__}")
        return cls.from_stored(description, tags, dict(items))

    def over(self, found: Metadata) -> Metadata:
        """This metadata (what the user gave) laid over `found` (what a file says), part by part: this
        description replaces found's; tags are this metadata's then found's, fields found's with this
        metadata's keys winning, both cut to their counts (MAX_USER_TAGS, MAX_FIELDS) keeping this one's."""
        fields = dict(self.fields)
        for key, value in found.fields:
            if len(fields) >= MAX_FIELDS:
                break
            fields.setdefault(key, value)
        return Metadata(self.description or found.description,
                        normalize_tags((*self.tags, *found.tags))[:max(MAX_USER_TAGS, len(self.tags))],
                        tuple(sorted(fields.items())))

    def less(self, read: Metadata) -> Metadata:
        """What of this metadata (a clip's) `read` (its file's) does not say: the description unless it is
        the file's, the tags the file does not have, the fields whose value is not the file's (what counts as
        the user's in a clip stored before the two were kept apart, MetaLayers)."""
        file_fields = read.field_dict
        return Metadata("" if self.description == read.description else self.description,
                        tuple(t for t in self.tags if t not in read.tags),
                        tuple((k, v) for k, v in self.fields if file_fields.get(k) != v))

    def common(self, other: Metadata) -> Metadata:
        """What this metadata and `other` both say: the description if it is the same, the tags both have
        (in this one's order), the fields with the same value in both."""
        return self.less(self.less(other))

    def same(self, other: Metadata) -> bool:
        """Whether both say the same, the tags in any order."""
        return (self.description, set(self.tags), self.fields) == (other.description, set(other.tags),
                                                                    other.fields)

    def under(self, given: Metadata) -> Metadata:
        """`given` laid over this metadata: given.over(self)."""
        return given.over(self)

    @property
    def field_dict(self) -> dict[str, str]:
        return dict(self.fields)

    @property
    def empty(self) -> bool:
        return not (self.description or self.tags or self.fields)

    def to_dict(self) -> dict:
        return {"description": self.description, "tags": list(self.tags), "fields": self.field_dict}

    @classmethod
    def from_dict(cls, d: Mapping | None) -> Metadata:
        d = d or {}
        return cls.of(description=d.get("description", ""), tags=d.get("tags", ()), fields=d.get("fields"))

    def to_json(self) -> str:
        """to_dict as one JSON text (a shard's `metadata` column); from_json_text reads it."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json_text(cls, text: str) -> Metadata:
        return cls.from_dict(json.loads(text))

    def tags_json(self) -> str:
        return json.dumps(list(self.tags))

    def fields_json(self) -> str:
        return json.dumps(self.field_dict, sort_keys=True)

    @classmethod
    def from_json(cls, description: str, tags: str, fields: str) -> Metadata:
        """From the three stored columns of the clip database (from_stored)."""
        return cls.from_stored(description, json.loads(tags), json.loads(fields))

    @classmethod
    def from_stored(cls, description: str, tags: Iterable[str], fields: Mapping[str, str]) -> Metadata:
        """A clip's metadata as a store holds it, normalised as `of` does without its checks: what was
        stored before (a description with CRLF, a tag decomposed, a control character the service took
        then) reads as it is stored now, so that it compares equal to its layers (MetaLayers, read through
        `of`), and a reread of its file does not make the file's text the user's."""
        return cls(stored_text(description, lines=True), normalize_tags(tags),
                   tuple(sorted((k, stored_text(v, lines=True)) for k, v in fields.items())))


@dataclass(frozen=True)
class MetaLayers:
    """Where a clip's metadata comes from, kept apart: what its file and file name said when last read
    (`file`), what the user set (`own`: an upload's form, `index add`'s flags or CSV, PATCH), and what of the
    file's the user took off (`dropped`: a keyword, a field, the description, each as the file said it). A
    clip's metadata is `own` over what of `file` was not taken off; a value taken off stays off while the
    file says it, and shows again once the file says another (a field's new value, a new description)."""

    file: Metadata = Metadata()
    own: Metadata = Metadata()
    dropped: Metadata = Metadata()

    @property
    def meta(self) -> Metadata:
        return self.own.over(self.file.less(self.dropped))

    def edited(self, new: Metadata) -> MetaLayers:
        """The layers once an edit made the clip's metadata `new`: the user's are what of `new` only the file
        does not say (a form that sends back all it shows leaves the file's values the file's); what the
        clip showed of the file's (or the user's value over it) and `new` lacks is taken off (a field whose
        key `new` has is the user's value instead), and what was taken off before stays off unless `new`
        gives it back. A file value the clip could not show (past MAX_USER_TAGS or MAX_FIELDS) is not taken
        off."""
        shown, new_fields = self.meta, new.field_dict
        was_off, slots = self.dropped, shown.field_dict  # a key shown with the user's value counts as shown
        dropped = Metadata(self.file.description if self.file.description and not new.description else "",
                           tuple(t for t in self.file.tags
                                 if t not in new.tags and (t in shown.tags or t in was_off.tags)),
                           tuple((k, v) for k, v in self.file.fields
                                 if k not in new_fields and (k in slots or (k, v) in was_off.fields)))
        return MetaLayers(self.file, new.less(self.file.less(self.own)), dropped)

    def caught_up(self, meta: Metadata) -> MetaLayers:
        """These layers with the clip's metadata `meta`: themselves when they make it, else as after an edit
        that made it (a clip edited before what an edit takes off was kept)."""
        return self if self.meta.same(meta) else self.edited(meta)

    def given(self, given: Metadata, meta: Metadata) -> MetaLayers:
        """The layers once a run gave the clip (whose metadata is `meta`) `given`: the user's, over what they
        set before; a value they had taken off, given back. The file's stay as they were read."""
        return self.caught_up(meta).reread(self.file, given=given)

    def reread(self, found: Metadata, *, given: Metadata = Metadata(),
               dropped: Metadata = Metadata()) -> MetaLayers:
        """The layers once the file was read again and says `found`: what the user set is `given` (what the
        run gives) over what they set before; what they took off (with `dropped`, what they took off a clip
        this one replaces) stays off where `found` still says it and `given` does not give it back."""
        off = self.dropped.over(dropped).common(found).less(given)
        return MetaLayers(found, given.over(self.own), off)

    def to_json(self) -> str:
        return json.dumps({"file": self.file.to_dict(), "own": self.own.to_dict(),
                           "dropped": self.dropped.to_dict()}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json_text(cls, text: str) -> MetaLayers:
        d = json.loads(text)  # no "dropped" before values taken off were kept
        return cls(Metadata.from_dict(d.get("file")), Metadata.from_dict(d.get("own")),
                   Metadata.from_dict(d.get("dropped")))
