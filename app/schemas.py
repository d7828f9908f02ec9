"""The service's request and response bodies, by role; every field carries a description and an example.

Every value a request carries to the store is bounded here, once, so that what the store cannot hold is
refused with 422 at the edge instead of failing inside it (SQLite binds integers as signed 64-bit and text
as UTF-8; Qdrant's point ids are unsigned 64-bit, its filters travel as JSON, which has no NaN or
infinity): clip ids in [1, 2^63 - 1], page offsets in [0, 2^63 - 1], finite durations, texts without NUL
or lone surrogates, bounded lengths and k, at most MAX_EXAMPLES clip ids per list, weights in [0, 2]. A user's
metadata (description, user tags, fields) is bounded so that the largest one fits an ingest job's fields
(index/ingest/queue.py MAX_FIELDS_BYTES) with room to spare.
"""

import json
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from index.ingest.queue import Job
from index.store.contract import ClipRecord, Hit, MomentQuery, SearchFilter
from index.store.metadata import FIELD_KEY, TAG_SEPARATORS, Metadata
from index.store.words import query_words
from retrieval.composite import CompositeQuery, Weights

MAX_QUERY_CHARS = 500
MAX_TAG_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_USER_TAGS = 32  # per clip, and per filter
MAX_USER_TAG_CHARS = 64
MAX_FIELDS = 32  # per clip, and per filter
MAX_FIELD_KEY_CHARS = 64
MAX_FIELD_VALUE_CHARS = 200
MAX_K = 100
MAX_PAGE = 500
MAX_PER_CLIP = 10
INT64_MAX = 2**63 - 1  # the largest integer SQLite binds; ids start at 1 in both stores
MAX_EXAMPLES = 20  # clip ids in `like`, and in `unlike`
MAX_WEIGHT = 2.0


def _storable_text(v: str) -> str:
    """Text SQLite and Qdrant store as it was sent: no NUL (C APIs cut strings there), and encodable as
    UTF-8 (a lone surrogate is not)."""
    if "\x00" in v:
        raise ValueError("contains a NUL character")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in v):
        raise ValueError("contains a lone surrogate, which is not text")
    return v


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("the text is blank")
    return v


def _distinct(ids: list[int]) -> list[int]:
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"repeats clips {repeated}")
    return ids


StorableText = Annotated[str, AfterValidator(_storable_text)]
QueryText = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS), AfterValidator(_storable_text),
                      AfterValidator(_not_blank)]
# strict: a clip id is a JSON integer, not "42", 42.0 or true
StoredClipId = Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
ExampleIds = Annotated[list[StoredClipId], Field(max_length=MAX_EXAMPLES), AfterValidator(_distinct)]
Weight = Annotated[float, Field(strict=True, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]


def _no_controls(v: str) -> str:
    """Metadata is text to read: no control characters other than tab and line breaks."""
    if any((ord(ch) < 32 and ch not in "\t\n\r") or ord(ch) == 127 for ch in v):
        raise ValueError("contains a control character")
    return v


def _tag(v: str) -> str:
    if TAG_SEPARATORS.search(v):
        raise ValueError("a tag cannot hold ';' or ',' (they separate tags in forms and CSV files)")
    if not v.strip():
        raise ValueError("the tag is blank")
    return v


def tag_list(text: str) -> list[str]:
    """Tags written in one string (a form field, a CSV cell), separated by ';' or ','; blanks dropped."""
    return [t for t in TAG_SEPARATORS.split(text) if t.strip()]


MetaText = Annotated[StorableText, AfterValidator(_no_controls)]
Description = Annotated[MetaText, Field(max_length=MAX_DESCRIPTION_CHARS)]
UserTag = Annotated[MetaText, Field(min_length=1, max_length=MAX_USER_TAG_CHARS), AfterValidator(_tag)]
FieldKey = Annotated[str, Field(pattern=f"^{FIELD_KEY.pattern}$", max_length=MAX_FIELD_KEY_CHARS)]
FieldValue = Annotated[MetaText, Field(max_length=MAX_FIELD_VALUE_CHARS)]
UserTags = Annotated[list[UserTag], Field(max_length=MAX_USER_TAGS)]
Fields = Annotated[dict[FieldKey, FieldValue], Field(max_length=MAX_FIELDS)]
SearchMode = Literal["vector", "keyword", "hybrid"]
# finite, so SQLite compares it and Qdrant's JSON can carry it
Seconds = Annotated[float, Field(allow_inf_nan=False)]
K = Annotated[int, Field(ge=1, le=MAX_K, description="how many clips to return, best first", examples=[10])]

ClipId = Annotated[int, Path(ge=1, le=INT64_MAX, description="the clip's id (1 to 2^63 - 1)", examples=[42])]
PageOffset = Annotated[int, Query(ge=0, le=INT64_MAX, description="skip this many clips (past the end: an "
                                                                  "empty page)")]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]


Responses = dict[int | str, dict[str, Any]]  # a route's `responses=` (OpenAPI)


class TagOut(BaseModel):
    """One AudioSet tag PaSST gave the clip."""

    label: str = Field(description="AudioSet class name", examples=["Rain on surface"])
    probability: float = Field(ge=0, le=1, description="sigmoid of PaSST's logit", examples=[0.87])


class ClipOut(BaseModel):
    """A clip of the collection."""

    id: int = Field(description="the clip's id in this collection", examples=[42])
    name: str = Field(description="the file name the clip was added under", examples=["rain_on_roof.wav"])
    duration: float = Field(description="seconds", examples=[12.5])
    sample_rate: int = Field(description="sample rate of the source file, Hz", examples=[44100])
    sha256: str = Field(description="sha256 of the file's bytes; the same bytes are stored once",
                        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
    tags: list[TagOut] = Field(description="top AudioSet tags, most probable first")
    description: str = Field(description="the user's description ('' when none)",
                             examples=["808 kick, long decay, recorded at 48 kHz"])
    user_tags: list[str] = Field(description="the user's own tags, lower case", examples=[["kick", "808"]])
    fields: dict[str, str] = Field(description="the user's named fields", examples=[{"pack": "Drums Vol 1"}])
    added_at: float = Field(description="when it was added, unix time", examples=[1767225600.0])
    audio_url: str = Field(description="where to fetch the audio (supports HTTP Range)",
                           examples=["/audio/42/file"])


JobId = Annotated[int, Path(ge=1, le=INT64_MAX, description="the job's id (1 to 2^63 - 1)", examples=[7])]
JobStatus = Literal["queued", "running", "done", "failed"]


class JobProgress(BaseModel):
    """How far PaSST is through an upload's windows."""

    windows_done: int = Field(description="PaSST windows tagged so far", examples=[3])
    windows_total: int = Field(description="PaSST windows of the clip (10 s windows every 2.5 s)",
                               examples=[13])


class JobOut(BaseModel):
    """An upload acknowledged and being indexed: its bytes and its job are stored durably."""

    id: int = Field(description="the job's id (GET /jobs/{id})", examples=[7])
    status: JobStatus = Field(description="queued, running (see progress), done (see clip) or failed (see "
                                          "error)", examples=["running"])
    name: str = Field(description="the name the clip will be stored under", examples=["rain_on_roof.wav"])
    sha256: str = Field(description="of the uploaded bytes", examples=["9f2c" + "0" * 60])
    created: float = Field(description="when the upload was acknowledged, unix seconds",
                           examples=[1764680000.0])
    progress: JobProgress = Field(description="PaSST windows tagged of the clip's windows")
    clip: "ClipOut | None" = Field(description="the clip's record once done, else null")
    error: str | None = Field(description="why it failed (the decoder's reason), else null",
                              examples=[None])


class JobPage(BaseModel):
    """One page of jobs, oldest first."""

    total: int = Field(description="jobs with this status (all jobs without a status filter)", examples=[3])
    offset: int = Field(description="index of the first item on this page", examples=[0])
    limit: int = Field(description="the page size asked for", examples=[50])
    items: list[JobOut] = Field(description="the jobs of this page")


class ClipPage(BaseModel):
    """One page of the collection, ordered by id."""

    total: int = Field(description="clips in the collection", examples=[1200])
    offset: int = Field(description="index of the first item on this page", examples=[0])
    limit: int = Field(description="the page size asked for", examples=[50])
    items: list[ClipOut] = Field(description="the clips of this page")


class QueryWeights(BaseModel):
    """How much each part of a composite query counts, each in [0, 2] (the defaults and why:
    retrieval/composite.py)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"query": 1.0, "like": 1.0, "unlike": 0.5, "not": 0.5}, {"like": 1.5, "not": 1.0}]})

    query: Weight = Field(default=Weights.query, description="of the query text", examples=[1.0])
    like: Weight = Field(default=Weights.like, description="of the mean of the liked clips", examples=[1.0])
    unlike: Weight = Field(default=Weights.unlike, examples=[0.5],
                           description="of the mean of the unliked clips (subtracted)")
    not_: Weight = Field(default=Weights.not_, alias="not", description="of the `not` text (subtracted)",
                         examples=[0.5])

    def weights(self) -> Weights:
        return Weights(query=self.query, like=self.like, unlike=self.unlike, not_=self.not_)


class MomentFields(BaseModel):
    """Moments instead of clips: the fields POST /search and POST /search/audio share."""

    moments: bool = Field(False, description="return the k best moments of the collection instead of "
                                             "clips: windows of one clip that score at least `threshold`, "
                                             "merged where they overlap or touch, each scored by its best "
                                             "window")
    per_clip: int = Field(3, ge=1, le=MAX_PER_CLIP, description="with moments: at most this many per clip")
    threshold: Seconds | None = Field(None, ge=-1, le=1, examples=[0.3],
                                      description="with moments: the score a window must reach (unset: each "
                                                  "clip's best window's score minus 0.05)")

    def moment_query(self) -> MomentQuery | None:
        return MomentQuery(per_clip=self.per_clip, threshold=self.threshold) if self.moments else None


class SearchRequest(MomentFields):
    """A query, how many clips to return, and optional filters. The query may be composite: the vector
    searched is L2(w_query * query + w_like * mean(like) - w_unlike * mean(unlike) - w_not * not), and it
    needs something to search towards (a `query` or `like` clips, weighted above 0)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"query": "rain on a tin roof while someone whistles", "k": 10},
                     {"query": "dog barking", "k": 5, "max_duration": 30, "tag": "Dog"},
                     {"query": "rain", "like": [42], "unlike": [7], "not": "thunder", "k": 10},
                     {"like": [42, 17], "weights": {"like": 1.0, "unlike": 1.0}, "unlike": [3], "k": 10},
                     {"query": "kick 808", "k": 10, "mode": "keyword", "tags_any": ["drums", "kick"]},
                     {"query": "punchy kick drum", "mode": "hybrid", "tags_all": ["kick"],
                      "fields": {"pack": "Drums Vol 1"}},
                     {"query": "a door slams", "k": 10, "moments": True, "per_clip": 2}]})

    query: QueryText | None = Field(None, description="what the clips should sound like (1-500 characters, "
                                                      "no NUL); may be left out when `like` is given",
                                    examples=["rain on a tin roof while someone whistles"])
    like: ExampleIds = Field(default_factory=list,
                             description=f"ids of clips the results should sound like (at most {MAX_EXAMPLES}"
                                         ", distinct): the mean of their stored vectors joins the query; "
                                         "they are not returned themselves", examples=[[42, 17]])
    unlike: ExampleIds = Field(default_factory=list,
                               description=f"ids of clips to move away from (at most {MAX_EXAMPLES}, "
                                           "distinct, none of them in `like`); not returned either",
                               examples=[[7]])
    not_: QueryText | None = Field(None, alias="not", description="text the clips should not sound like "
                                                                 "(1-500 characters, no NUL)",
                                   examples=["thunder"])
    weights: QueryWeights = Field(default_factory=QueryWeights,
                                  description="how much each part counts, each in [0, 2]; the defaults are "
                                              "query 1, like 1, unlike 0.5, not 0.5",
                                  examples=[{"query": 1.0, "like": 1.5, "unlike": 0.5, "not": 1.0}])
    k: K = 10
    mode: SearchMode = Field("vector", examples=["hybrid"], description=(
        "`vector`: the query's meaning (cosine in the shared space); `keyword`: its words in the clips' "
        "names, descriptions, user tags and top AudioSet tag names (BM25); `hybrid`: both rankings joined by "
        "reciprocal-rank fusion (k = 60)"))
    min_duration: Seconds | None = Field(None, ge=0, description="only clips at least this long, seconds "
                                                                 "(finite)")
    max_duration: Seconds | None = Field(None, gt=0, description="only clips at most this long, seconds "
                                                                 "(finite)")
    tag: StorableText | None = Field(None, min_length=1, max_length=MAX_TAG_CHARS,
                                     description="only clips with this AudioSet name among their top tags "
                                                 "(case-insensitive; no NUL)",
                                     examples=["Rain"])
    tags_any: UserTags | None = Field(None, description="only clips with at least one of these user tags "
                                      "(case-insensitive)", examples=[["kick", "snare"]])
    tags_all: UserTags | None = Field(None, description="only clips with every one of these user tags "
                                      "(case-insensitive)", examples=[["kick", "808"]])
    fields: Fields | None = Field(None, description="only clips whose user fields have exactly these values",
                                  examples=[{"pack": "Drums Vol 1"}])

    @model_validator(mode="after")
    def _something_to_search_towards(self) -> "SearchRequest":
        w = self.weights
        if not ((self.query is not None and w.query > 0) or (self.like and w.like > 0)):
            raise ValueError("nothing to search towards: give a `query` or `like` clips, with a weight above "
                             "0 (`unlike` and `not` only push away)")
        both = sorted(set(self.like) & set(self.unlike))
        if both:
            raise ValueError(f"clips {both} are in both `like` and `unlike`")
        return self

    @model_validator(mode="after")
    def _durations_ordered(self) -> "SearchRequest":
        lo, hi = self.min_duration, self.max_duration
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_duration is larger than max_duration")
        return self


    @model_validator(mode="after")
    def _mode_has_its_parts(self) -> "SearchRequest":
        if self.moments and self.mode != "vector":
            raise ValueError("moments are found by the query's vector: use mode `vector` with them")
        if self.mode != "keyword":
            return self  # hybrid: a query without words (or none, with `like`) is its vector ranking
        if self.like or self.unlike or self.not_ is not None:
            raise ValueError("`like`, `unlike` and `not` shape the query's vector: use mode `vector` or "
                             "`hybrid` with them")
        if not query_words(self.query or ""):
            raise ValueError("a keyword query needs a word (letters or digits) to match")
        return self

    def search_filter(self) -> SearchFilter | None:
        flt = SearchFilter(min_duration=self.min_duration, max_duration=self.max_duration, tag=self.tag,
                           tags_any=tuple(self.tags_any or ()), tags_all=tuple(self.tags_all or ()),
                           fields=tuple(sorted((self.fields or {}).items())))
        return None if flt.empty else flt

    def composite(self) -> CompositeQuery:
        return CompositeQuery(text=self.query, like=tuple(self.like), unlike=tuple(self.unlike),
                              not_=self.not_, weights=self.weights.weights())


class MetadataIn(BaseModel):
    """A clip's description, user tags and fields, each optional; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"description": "808 kick, long decay", "user_tags": ["kick", "808"],
         "fields": {"pack": "Drums Vol 1"}},
        {"user_tags": []}]})

    description: Description | None = Field(None, examples=["808 kick, long decay"], description=(
        f"free text, searched by keyword (up to {MAX_DESCRIPTION_CHARS} characters; '' clears it)"))
    user_tags: UserTags | None = Field(None, examples=[["kick", "808"]], description=(
        f"the user's tags (up to {MAX_USER_TAGS}, each up to {MAX_USER_TAG_CHARS} characters, without ';' or "
        "','), kept in lower case, each once; searched by keyword and filtered by `tags_any` / `tags_all`; "
        "[] clears them"))
    fields: Fields | None = Field(None, examples=[{"pack": "Drums Vol 1", "bpm": "120"}], description=(
        f"named values (up to {MAX_FIELDS}; keys are identifiers of up to {MAX_FIELD_KEY_CHARS} characters, "
        f"values strings of up to {MAX_FIELD_VALUE_CHARS}), filtered by equality; replaces all of them, {{}} "
        "clears them"))

    def applied_to(self, meta: Metadata) -> Metadata:
        """`meta` with the parts given here replaced."""
        return Metadata.of(description=meta.description if self.description is None else self.description,
                           tags=meta.tags if self.user_tags is None else self.user_tags,
                           fields=meta.field_dict if self.fields is None else self.fields)

    @classmethod
    def from_form(cls, form: dict[str, str]) -> "MetadataIn":
        """From an upload's text fields: `description`; `user_tags` separated by ';' or ','; `fields` as a
        JSON object. ValidationError naming the field when one is malformed."""
        raw: dict[str, Any] = {}
        if "description" in form:
            raw["description"] = form["description"]
        if "user_tags" in form:
            raw["user_tags"] = tag_list(form["user_tags"])
        if form.get("fields", "").strip():
            try:
                raw["fields"] = json.loads(form["fields"])
            except ValueError:
                raw["fields"] = form["fields"]  # not JSON: refused below as not an object
        return cls.model_validate(raw)


class MetadataPatch(MetadataIn):
    """What PATCH /audio/{id} changes: at least one of description, user_tags, fields."""

    @model_validator(mode="after")
    def _something(self) -> "MetadataPatch":
        if self.description is None and self.user_tags is None and self.fields is None:
            raise ValueError("give at least one of description, user_tags, fields")
        return self


class SegmentOut(BaseModel):
    """Where in the clip it sounds like the query: its best window (or, for moments, the moment), scored by
    the same head and query vector as the clip."""

    start: float = Field(description="seconds from the clip's start", examples=[20.0])
    end: float = Field(description="seconds from the clip's start", examples=[30.0])
    score: float = Field(description="cosine similarity of its best window to the query", examples=[0.58])


class SearchHit(BaseModel):
    """A clip that matches the query, with its score and where in it."""

    id: int = Field(description="the clip's id", examples=[42])
    name: str = Field(description="the clip's file name", examples=["rain_on_roof.wav"])
    score: float = Field(examples=[0.62], description=(
        "higher is closer; by mode: `vector` the cosine similarity to the query in the shared space, "
        "`keyword` the BM25 score of the query's words, `hybrid` the fused score, the sum of 1 / (60 + rank) "
        "over the two rankings"))
    duration: float = Field(description="seconds", examples=[12.5])
    tags: list[TagOut] = Field(description="top AudioSet tags, most probable first")
    description: str = Field(description="the user's description", examples=["808 kick, long decay"])
    user_tags: list[str] = Field(description="the user's own tags", examples=[["kick", "808"]])
    fields: dict[str, str] = Field(description="the user's named fields", examples=[{"pack": "Drums Vol 1"}])
    audio_url: str = Field(description="where to fetch the audio", examples=["/audio/42/file"])
    segment: SegmentOut | None = Field(None, description="where in the clip: its best window, or the "
                                                         "moment this hit is; null for a clip indexed before "
                                                         "windows were kept (`retrieval index "
                                                         "backfill-windows`)")


class PeaksOut(BaseModel):
    """A clip's waveform overview, computed once when it was indexed."""

    id: int = Field(description="the clip's id", examples=[42])
    duration: float = Field(description="seconds the peaks span", examples=[60.0])
    peaks: list[int] | None = Field(description="the peak amplitude of each equal slice of the clip, 0-255 "
                                                "(255 full scale); null for a clip indexed before peaks were "
                                                "kept", examples=[[0, 12, 200, 255, 31]])


class SearchResponse(BaseModel):
    """The ranked clips, best first; an empty collection gives an empty list."""

    query: str = Field(description="the query as received when it is one text (the file name for an example "
                                   "alone); otherwise its parts, towards (+) then away (-)",
                       examples=["rain on a tin roof while someone whistles",
                                 '"rain" + like #42 - unlike #7 - not "thunder"', 'mine.wav + "with rain"'])
    mode: SearchMode = Field(description="how the clips were ranked (query by example: vector)",
                             examples=["vector"])
    took_ms: float = Field(description="time spent encoding the query and searching, milliseconds",
                           examples=[18.4])
    results: list[SearchHit] = Field(description="the k closest clips (or moments), best first")


class ErrorOut(BaseModel):
    """Every error answers with one stable message."""

    detail: str = Field(description="what went wrong and, where possible, what to do",
                        examples=["no clip with id 42"])


class ValidationIssue(BaseModel):
    """One field that failed validation."""

    loc: list[str | int] = Field(description="where: body, query or path, then the field",
                                 examples=[["body", "k"]])
    msg: str = Field(description="what is wrong with it",
                     examples=["Input should be less than or equal to 100"])
    type: str = Field(description="pydantic's error type", examples=["less_than_equal"])


class ValidationOut(BaseModel):
    """A request that does not match the route's schema (422)."""

    detail: list[ValidationIssue] = Field(description="every field that failed, in order")


class Liveness(BaseModel):
    """The process is up (says nothing about the models)."""

    status: Literal["ok"] = Field(description="the process is up", examples=["ok"])


class ModelInfo(BaseModel):
    """Which model is serving."""

    kind: Literal["zero-shot", "checkpoint"] = Field(
        description="zero-shot (tag names only, lam = 0) or a trained head checkpoint",
        examples=["zero-shot"])
    id: str = Field(description="short hash of the model spec: equal ids, equal vectors",
                    examples=["3f2a9c0d1e4b5a69"])
    spec: dict[str, Any] = Field(description="the model spec: PaSST arch, windowing and weights sha256, text "
                                             "model, revision and dimension, head checkpoint sha256 (or "
                                             "'zero-shot') and lam")


class AccessInfo(BaseModel):
    """Who may do what on this server."""

    writes_enabled: bool = Field(description="an API key is configured, so uploads, edits and deletes can be "
                                             "made")
    protect_reads: bool = Field(description="searches and reads need the API key too")


class Readiness(BaseModel):
    """Models and index are loaded and the service can answer."""

    status: Literal["ready"] = Field(description="models and index are loaded", examples=["ready"])
    model: ModelInfo = Field(description="the model serving the searches")
    clips: int = Field(description="clips in the index", examples=[1200])
    access: AccessInfo = Field(description="what needs the API key on this server")


def tags_out(record: ClipRecord) -> list[TagOut]:
    return [TagOut(label=t.label, probability=t.probability) for t in record.tags]


def job_out(job: Job, *, clip: ClipOut | None) -> JobOut:
    return JobOut(id=job.id, status=job.status, name=job.name, sha256=job.sha256,  # type: ignore[arg-type]
                  created=job.created, clip=clip, error=job.error,
                  progress=JobProgress(windows_done=job.windows_done, windows_total=job.windows_total))


def meta_out(record: ClipRecord) -> dict:
    return {"description": record.meta.description, "user_tags": list(record.meta.tags),
            "fields": record.meta.field_dict}


def clip_out(record: ClipRecord, *, audio_url: str) -> ClipOut:
    return ClipOut(id=record.id, name=record.name, duration=record.duration, sample_rate=record.sample_rate,
                   sha256=record.sha256, tags=tags_out(record), added_at=record.added_at, audio_url=audio_url,
                   **meta_out(record))


def search_hit(hit: Hit, *, audio_url: str) -> SearchHit:
    r = hit.record
    seg = hit.segment
    segment = None if seg is None else SegmentOut(start=seg.start, end=seg.end, score=seg.score)
    return SearchHit(id=r.id, name=r.name, score=hit.score, duration=r.duration, tags=tags_out(r),
                     audio_url=audio_url, segment=segment, **meta_out(r))
