"""A clip of the collection: its record, its page, its waveform peaks, and the user's metadata it carries.

A user's metadata (description, user tags, fields) is bounded so that the largest one fits an ingest job's
fields (index/ingest/queue.py MAX_FIELDS_BYTES) with room to spare. Its text is held to the rule a clip's
name and a file's metadata follow (index/store/names.py): what a file's text would lose (a control character,
a direction control) is refused, 422 naming the field; what is taken is the text as stored (composed,
trimmed, line breaks LF; a tag as normalize_tag makes it), and a bound counts that.
"""

import json
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from app.schemas.common import INT64_MAX
from index.store.metadata import (
    FIELD_KEY,
    MAX_DESCRIPTION_CHARS,
    MAX_FIELD_KEY_CHARS,
    MAX_FIELD_VALUE_CHARS,
    MAX_FIELDS,
    MAX_USER_TAG_CHARS,
    MAX_USER_TAGS,
    TAG_SEPARATORS,
    Metadata,
    normalize_tag,
)
from index.store.names import checked_text
from index.store.records import ClipRecord


def _text_of_lines(v: str) -> str:
    """A description or a field value as stored (index/store/names.py `checked_text`: composed, line breaks
    LF, trimmed); refused for a control character (but tabs and line breaks), a direction control (U+202E...),
    a NUL or a lone surrogate, which a file's text would have taken out."""
    return checked_text(v, lines=True)


def _tag(v: str) -> str:
    """A tag as stored (normalize_tag: one line, composed, lower case, single spaces), refused as
    `_text_of_lines` refuses, or when it holds a separator or nothing."""
    if TAG_SEPARATORS.search(v):
        raise ValueError("a tag cannot hold ';' or ',' (they separate tags in forms and CSV files)")
    checked_text(v)
    if not (tag := normalize_tag(v)):
        raise ValueError("the tag is blank")
    return tag


def _at_most(chars: int) -> AfterValidator:
    """The text as stored (the validators before this one made it so) of at most `chars` characters: a bound
    counts what is kept, not spaces at the ends or a line break's CR."""
    def check(v: str) -> str:
        if len(v) > chars:  # pydantic's own error, as a max_length gives it
            raise PydanticCustomError("string_too_long", "String should have at most {max_length} characters "
                                      "(as stored: composed, trimmed, a tag's spaces single)",
                                      {"max_length": chars})
        return v

    return AfterValidator(check)


def tag_list(text: str) -> list[str]:
    """Tags written in one string (a form field, a CSV cell), separated by ';' or ','; blanks dropped."""
    return [t for t in TAG_SEPARATORS.split(text) if t.strip()]


# each text is checked, then made as stored (checked_text, normalize_tag), then held to its length: a
# refusal counts the characters kept
Description = Annotated[str, AfterValidator(_text_of_lines), _at_most(MAX_DESCRIPTION_CHARS)]
UserTag = Annotated[str, Field(min_length=1), AfterValidator(_tag), _at_most(MAX_USER_TAG_CHARS)]
FieldKey = Annotated[str, Field(pattern=f"^{FIELD_KEY.pattern}$", max_length=MAX_FIELD_KEY_CHARS)]
FieldValue = Annotated[str, AfterValidator(_text_of_lines), _at_most(MAX_FIELD_VALUE_CHARS)]
UserTags = Annotated[list[UserTag], Field(max_length=MAX_USER_TAGS)]
Fields = Annotated[dict[FieldKey, FieldValue], Field(max_length=MAX_FIELDS)]

ClipId = Annotated[int, Path(ge=1, le=INT64_MAX, description="the clip's id (1 to 2^63 - 1)", examples=[42])]


class TagOut(BaseModel):
    """One AudioSet tag PaSST gave the clip."""

    label: str = Field(description="AudioSet class name", examples=["Rain on surface"])
    probability: float = Field(ge=0, le=1, description="sigmoid of PaSST's logit", examples=[0.87])


class FileMetadataOut(BaseModel):
    """What a clip's file (its embedded tags and its UCS name) said when it was last read."""

    description: str = Field(description="the file's description ('' when none)", examples=["Door slam"])
    user_tags: list[str] = Field(description="the file's keywords, lower case", examples=[["door", "slam"]])
    fields: dict[str, str] = Field(description="the file's named values (title, UCS fields, ...)",
                                   examples=[{"title": "Door slam", "ucs_catid": "DOORWood"}])


class ClipOut(BaseModel):
    """A clip of the collection."""

    id: int = Field(description="the clip's id in this collection", examples=[42])
    name: str = Field(description="the file name the clip was added under", examples=["rain_on_roof.wav"])
    duration: float = Field(description="seconds", examples=[12.5])
    sample_rate: int = Field(description="sample rate of the source file, Hz", examples=[44100])
    sha256: str = Field(description="sha256 of the file's bytes; the same bytes are stored once",
                        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
    audio_sha256: str | None = Field(
        description="sha256 of its samples as the model hears them (mono, 32 kHz, float32): the same for "
                    "files whose audio is the same, however tagged or wrapped; null for clips stored before "
                    "it was kept",
        examples=["3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"])
    tags: list[TagOut] = Field(description="top AudioSet tags, most probable first")
    description: str = Field(description="the user's description ('' when none)",
                             examples=["808 kick, long decay, recorded at 48 kHz"])
    user_tags: list[str] = Field(description="the user's own tags, lower case", examples=[["kick", "808"]])
    fields: dict[str, str] = Field(description="the user's named fields", examples=[{"pack": "Drums Vol 1"}])
    added_at: float = Field(description="when it was added, unix time", examples=[1767225600.0])
    audio_url: str = Field(description="where to fetch the audio (supports HTTP Range)",
                           examples=["/audio/42/file"])
    file_metadata: FileMetadataOut | None = Field(
        description="what the clip's file and its UCS name said when last read, kept apart from the "
                    "clip's own description, user_tags and fields (yours over the file's): what the file no "
                    "longer says leaves the clip when the file is read again; null for clips stored before "
                    "it was kept")



class ClipPage(BaseModel):
    """One page of the collection, ordered by id."""

    total: int = Field(description="clips in the collection", examples=[1200])
    offset: int = Field(description="index of the first item on this page", examples=[0])
    limit: int = Field(description="the page size asked for", examples=[50])
    items: list[ClipOut] = Field(description="the clips of this page")



class MetadataIn(BaseModel):
    """A clip's description, user tags and fields, each optional; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"description": "808 kick, long decay", "user_tags": ["kick", "808"],
         "fields": {"pack": "Drums Vol 1"}},
        {"user_tags": []}]})

    description: Description | None = Field(None, examples=["808 kick, long decay"], description=(
        f"free text, searched by keyword (up to {MAX_DESCRIPTION_CHARS} characters as stored: composed, "
        "trimmed, each line break LF; no control characters nor direction controls; '' clears it)"))
    user_tags: UserTags | None = Field(None, examples=[["kick", "808"]], description=(
        f"the user's tags (up to {MAX_USER_TAGS}, each up to {MAX_USER_TAG_CHARS} characters as stored, "
        "without ';' or ','), kept on one line, composed, in lower case, each once; searched by keyword and "
        "filtered by `tags_any` / `tags_all`; [] clears them"))
    fields: Fields | None = Field(None, examples=[{"pack": "Drums Vol 1", "bpm": "120"}], description=(
        f"named values (up to {MAX_FIELDS}; keys are identifiers of up to {MAX_FIELD_KEY_CHARS} characters, "
        f"values strings of up to {MAX_FIELD_VALUE_CHARS} characters, stored as a description is), filtered "
        "by equality; replaces all of them, {} clears them"))

    def applied_to(self, meta: Metadata) -> Metadata:
        """`meta` with the parts given here replaced."""
        return Metadata.of(description=meta.description if self.description is None else self.description,
                           tags=meta.tags if self.user_tags is None else self.user_tags,
                           fields=meta.field_dict if self.fields is None else self.fields)


class MetadataPatch(MetadataIn):
    """What PATCH /audio/{id} changes: at least one of description, user_tags, fields."""

    @model_validator(mode="after")
    def _something(self) -> "MetadataPatch":
        if self.description is None and self.user_tags is None and self.fields is None:
            raise ValueError("give at least one of description, user_tags, fields")
        return self


def _json_text(v: Any) -> Any:
    """A form's JSON text as the value it holds; blank: left out; not JSON: as it is, to be refused."""
    if not isinstance(v, str):
        return v
    if not v.strip():
        return None
    try:
        return json.loads(v)
    except (ValueError, RecursionError):  # nested past the parser's depth: no object of fields either
        return v


def _tag_text(v: Any) -> Any:
    """A form's text of tags as their list (tag_list)."""
    return tag_list(v) if isinstance(v, str) else v


class UploadForm(MetadataIn):
    """The text fields of POST /audio's multipart form: MetadataIn's, each written as one text, and a name."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field (`tags`) is refused, not dropped

    # the upload's name is taken from the raw form by app/uploads.py read_upload; described here
    name: str | None = Field(None, examples=["kick_808.wav"], description=(
        "the name to store, its last path component cut to 255 characters (default, and when blank, `.` or "
        "`..`: the file's own name)"))
    user_tags: Annotated[UserTags | None, BeforeValidator(_tag_text, json_schema_input_type=str)] = Field(
        None, examples=["kick; 808; drums"],
        description="the user's tags as one text, separated by ';' or ',' (bounded as in PATCH /audio/{id})")
    fields: Annotated[Fields | None, BeforeValidator(_json_text, json_schema_input_type=str)] = Field(
        None, examples=['{"pack": "Drums Vol 1", "bpm": "120"}'],
        description="named values as a JSON object of strings (bounded as in PATCH /audio/{id})")


class PeaksOut(BaseModel):
    """A clip's waveform overview, computed once when it was indexed."""

    id: int = Field(description="the clip's id", examples=[42])
    duration: float = Field(description="seconds the peaks span", examples=[60.0])
    peaks: list[int] | None = Field(description="the peak amplitude of each equal slice of the clip, 0-255 "
                                                "(255 full scale); null for a clip indexed before peaks were "
                                                "kept", examples=[[0, 12, 200, 255, 31]])



def tags_out(record: ClipRecord) -> list[TagOut]:
    return [TagOut(label=t.label, probability=t.probability) for t in record.tags]



def meta_out(record: ClipRecord) -> dict:
    return metadata_dict(record.meta)


def metadata_dict(meta: Metadata) -> dict:
    return {"description": meta.description, "user_tags": list(meta.tags), "fields": meta.field_dict}


def clip_out(record: ClipRecord, *, audio_url: str) -> ClipOut:
    return ClipOut(id=record.id, name=record.name, duration=record.duration, sample_rate=record.sample_rate,
                   sha256=record.sha256, audio_sha256=record.audio_sha256, tags=tags_out(record),
                   added_at=record.added_at, audio_url=audio_url, **meta_out(record),
                   file_metadata=None if record.meta_layers is None
                   else FileMetadataOut(**metadata_dict(record.meta_layers.file)))
