"""The service's request and response bodies, by role; every field carries a description and an example.

Every value a request carries to the store is bounded here, once, so that what the store cannot hold is
refused with 422 at the edge instead of failing inside it (SQLite binds integers as signed 64-bit and text
as UTF-8; Qdrant's point ids are unsigned 64-bit, its filters travel as JSON, which has no NaN or
infinity): clip ids in [1, 2^63 - 1], page offsets in [0, 2^63 - 1], finite durations, texts without NUL
or lone surrogates, bounded lengths and k.
"""

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from index.base import ClipRecord, Hit, MomentQuery, SearchFilter
from index.jobs import Job

MAX_QUERY_CHARS = 500
MAX_TAG_CHARS = 200
MAX_K = 100
MAX_PAGE = 500
MAX_PER_CLIP = 10
INT64_MAX = 2**63 - 1  # the largest integer SQLite binds; ids start at 1 in both stores


def _storable_text(v: str) -> str:
    """Text SQLite and Qdrant store as it was sent: no NUL (C APIs cut strings there), and encodable as
    UTF-8 (a lone surrogate is not)."""
    if "\x00" in v:
        raise ValueError("contains a NUL character")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in v):
        raise ValueError("contains a lone surrogate, which is not text")
    return v


StorableText = Annotated[str, AfterValidator(_storable_text)]
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


class SearchRequest(BaseModel):
    """A text query and how many clips to return; the filters are optional."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"query": "rain on a tin roof while someone whistles", "k": 10},
                     {"query": "dog barking", "k": 5, "max_duration": 30, "tag": "Dog"},
                     {"query": "a door slams", "k": 10, "moments": True, "per_clip": 2}]})

    query: StorableText = Field(min_length=1, max_length=MAX_QUERY_CHARS,
                                description="what the clips should sound like (no NUL)",
                                examples=["rain on a tin roof while someone whistles"])
    k: K = 10
    min_duration: Seconds | None = Field(None, ge=0, description="only clips at least this long, seconds "
                                                                 "(finite)")
    max_duration: Seconds | None = Field(None, gt=0, description="only clips at most this long, seconds "
                                                                 "(finite)")
    tag: StorableText | None = Field(None, min_length=1, max_length=MAX_TAG_CHARS,
                                     description="only clips with this AudioSet name among their top tags "
                                                 "(case-insensitive; no NUL)",
                                     examples=["Rain"])

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the query is blank")
        return v

    @model_validator(mode="after")
    def _durations_ordered(self) -> "SearchRequest":
        lo, hi = self.min_duration, self.max_duration
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_duration is larger than max_duration")
        return self

    moments: bool = Field(False, description="return the k best moments of the collection instead of "
                                             "clips: windows of one clip that score at least `threshold`, "
                                             "merged where they overlap or touch, each scored by its best "
                                             "window")
    per_clip: int = Field(3, ge=1, le=MAX_PER_CLIP, description="with moments: at most this many per clip")
    threshold: Seconds | None = Field(None, ge=-1, le=1, examples=[0.3],
                                      description="with moments: the score a window must reach (unset: each "
                                                  "clip's best window's score minus 0.05)")

    def search_filter(self) -> SearchFilter | None:
        flt = SearchFilter(min_duration=self.min_duration, max_duration=self.max_duration, tag=self.tag)
        return None if flt.empty else flt

    def moment_query(self) -> MomentQuery | None:
        return MomentQuery(per_clip=self.per_clip, threshold=self.threshold) if self.moments else None


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
    score: float = Field(description="cosine similarity to the query in the shared space (higher is closer)",
                         examples=[0.62])
    duration: float = Field(description="seconds", examples=[12.5])
    tags: list[TagOut] = Field(description="top AudioSet tags, most probable first")
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

    query: str = Field(description="the query as received (the file name for query by example)",
                       examples=["rain on a tin roof while someone whistles"])
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

    writes_enabled: bool = Field(description="an API key is configured, so uploads and deletes can be made")
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


def clip_out(record: ClipRecord, *, audio_url: str) -> ClipOut:
    return ClipOut(id=record.id, name=record.name, duration=record.duration, sample_rate=record.sample_rate,
                   sha256=record.sha256, tags=tags_out(record), added_at=record.added_at, audio_url=audio_url)


def search_hit(hit: Hit, *, audio_url: str) -> SearchHit:
    r = hit.record
    seg = hit.segment
    segment = None if seg is None else SegmentOut(start=seg.start, end=seg.end, score=seg.score)
    return SearchHit(id=r.id, name=r.name, score=hit.score, duration=r.duration, tags=tags_out(r),
                     audio_url=audio_url, segment=segment)
