"""The searches: POST /search's request, and the hits, segments and moments they answer."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.excerpts import END_SLACK_S, excerpt_name, file_name, file_type
from app.schemas.clips import Fields, TagOut, UserTags, meta_out, tags_out
from app.schemas.common import INT64_MAX, storable_text
from index.collection import check_search
from index.exports import ExportRow
from index.store.records import Hit, MomentQuery, SearchFilter, SearchMode
from retrieval.composite import CompositeQuery, Weights
from retrieval.text import is_blank

MAX_QUERY_CHARS = 500
MAX_TAG_CHARS = 200
MAX_K = 100
MAX_PER_CLIP = 10
MAX_EXAMPLES = 20  # clip ids in `like`, and in `unlike`
MAX_WEIGHT = 2.0
MAX_EXPORT = MAX_K  # hits in an export: one answer's
MAX_EXPORT_NUMBER = 1e9  # seconds and scores an export writes (to the microsecond, exactly)
# a JSON body's fields take their JSON types only (a form's are text, read by type: AudioQuery, UploadForm)
JSON_BODY = ConfigDict(extra="forbid", strict=True)


def _not_blank(v: str) -> str:
    if is_blank(v):
        raise ValueError("the text is blank (only spaces or invisible characters)")
    return v


def _distinct(ids: list[int]) -> list[int]:
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"repeats clips {repeated}")
    return ids


QueryText = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS), AfterValidator(storable_text),
                      AfterValidator(_not_blank)]
# strict: a clip id is a JSON integer, not "42", 42.0 or true
StoredClipId = Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
ExampleIds = Annotated[list[StoredClipId], Field(max_length=MAX_EXAMPLES), AfterValidator(_distinct)]
Weight = Annotated[float, Field(strict=True, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]
# finite, so SQLite compares it and Qdrant's JSON can carry it
Seconds = Annotated[float, Field(allow_inf_nan=False)]
TagName = Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS), AfterValidator(storable_text)]
ClipName = Annotated[str, Field(max_length=4096), AfterValidator(storable_text)]
K = Annotated[int, Field(ge=1, le=MAX_K, description="how many clips to return, best first", examples=[10])]


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
    # no default in the schema (3 is MomentQuery's): a client that sends the schema's defaults without
    # moments (Swagger UI's form) is not refused for shaping moments it did not ask for
    per_clip: int | None = Field(None, ge=1, le=MAX_PER_CLIP, examples=[2],
                                 description=f"with moments: at most this many per clip (1-{MAX_PER_CLIP}; "
                                             f"{MomentQuery.per_clip} when left out)")
    threshold: Seconds | None = Field(None, ge=-1, le=1, examples=[0.3],
                                      description="with moments: the score a window must reach (unset: each "
                                                  "clip's best window's score minus 0.05)")

    @model_validator(mode="after")
    def _moments_asked(self) -> "MomentFields":
        shaped = [name for name in ("per_clip", "threshold") if name in self.model_fields_set
                  and getattr(self, name) is not None]
        if shaped and not self.moments:
            verb, them = ("shape", "them") if len(shaped) > 1 else ("shapes", "it")
            raise ValueError(f"{' and '.join(shaped)} {verb} moments: set moments to true, or leave {them} "
                             "out")
        return self

    def moment_query(self) -> MomentQuery | None:
        if not self.moments:
            return None
        return MomentQuery(per_clip=self.per_clip or MomentQuery.per_clip, threshold=self.threshold)


class SearchRequest(MomentFields):
    """A query, how many clips to return, and optional filters. The query may be composite: the vector
    searched is L2(w_query * query + w_like * mean(like) - w_unlike * mean(unlike) - w_not * not), and it
    needs something to search towards (a `query` or `like` clips, weighted above 0)."""

    # strict (JSON_BODY): `"k": true`, `"k": "5"` and `"moments": 1` are refused, not read as 1, 5 and true
    model_config = ConfigDict(**JSON_BODY, json_schema_extra={
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
        "names, descriptions, user tags, fields' values and top AudioSet tag names (BM25); `hybrid`: both "
        "rankings joined by reciprocal-rank fusion (k = 60)"))
    min_duration: Seconds | None = Field(None, ge=0, description="only clips at least this long, seconds "
                                                                 "(finite)")
    max_duration: Seconds | None = Field(None, gt=0, description="only clips at most this long, seconds "
                                                                 "(finite)")
    tag: TagName | None = Field(None, description="only clips with this AudioSet name among their top tags "
                                                  "(case-insensitive; no NUL)", examples=["Rain"])
    tags_any: UserTags | None = Field(None, description="only clips with at least one of these user tags "
                                      "(case-insensitive)", examples=[["kick", "snare"]])
    tags_all: UserTags | None = Field(None, description="only clips with every one of these user tags "
                                      "(case-insensitive)", examples=[["kick", "808"]])
    tags_none: UserTags | None = Field(None, description="only clips with none of these user tags "
                                       "(case-insensitive)", examples=[["loop"]])
    fields: Fields | None = Field(None, description="only clips whose user fields have exactly these values",
                                  examples=[{"pack": "Drums Vol 1"}])

    @model_validator(mode="after")
    def _something_to_search_towards(self) -> "SearchRequest":
        w = self.weights
        if not ((self.query is not None and w.query > 0) or (self.like and w.like > 0)):
            raise ValueError("nothing to search towards: give a `query` or `like` clips, with a weight above "
                             "0 (`unlike` and `not` only push away)")
        return self  # like and unlike sharing a clip: CompositeQuery says so

    @model_validator(mode="after")
    def _durations_ordered(self) -> "SearchRequest":
        lo, hi = self.min_duration, self.max_duration
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_duration is larger than max_duration")
        return self

    @model_validator(mode="after")
    def _mode_has_its_parts(self) -> "SearchRequest":
        check_search(self.composite(), self.mode, self.moment_query())
        return self

    def search_filter(self) -> SearchFilter | None:
        flt = SearchFilter(min_duration=self.min_duration, max_duration=self.max_duration, tag=self.tag,
                           tags_any=tuple(self.tags_any or ()), tags_all=tuple(self.tags_all or ()),
                           tags_none=tuple(self.tags_none or ()),
                           fields=tuple(sorted((self.fields or {}).items())))
        return None if flt.empty else flt

    def composite(self) -> CompositeQuery:
        return CompositeQuery(text=self.query, like=tuple(self.like), unlike=tuple(self.unlike),
                              not_=self.not_, weights=self.weights.weights())



class AudioQuery(MomentFields):
    """The text fields of POST /search/audio's multipart form, beside the example file."""

    model_config = ConfigDict(extra="forbid")  # a field it does not take (`mode`, `like`) is not ignored

    k: K = Field(10, description="how many clips (or moments) to return, best first")
    query: QueryText | None = Field(None, examples=["with rain"], description=(
        "optional text to combine with the example (the example in the `like` role)"))


class SegmentOut(BaseModel):
    """Where in the clip it sounds like the query: its best window (or, for moments, the moment), scored by
    the same head and query vector as the clip."""

    start: float = Field(description="seconds from the clip's start", examples=[20.0])
    end: float = Field(description="seconds from the clip's start", examples=[30.0])
    score: float = Field(description="cosine similarity of its best window to the query", examples=[0.58])
    excerpt_url: str = Field(
        description="a WAV of this span alone (the clip's audio cut to it, at the file's own rate; see GET "
                    "/audio/{id}/file)", examples=["/audio/42/file?start=2.5&end=12.5"])
    excerpt_name: str = Field(
        description="the file name the excerpt is served under: the clip's name without its suffix, then "
                    "_<start>-<end>.wav", examples=["rain_on_roof_2.5-12.5.wav"])


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
    file_name: str = Field(description="the name the whole file downloads under (`audio_url`'s "
                                       "Content-Disposition): the clip's, with its container's suffix",
                           examples=["rain_on_roof.wav"])
    file_type: str = Field(description="the whole file's media type, by its container",
                           examples=["audio/wav"])
    segment: SegmentOut | None = Field(None, description="where in the clip: its best window, or the "
                                                         "moment this hit is; null for a clip indexed before "
                                                         "windows were kept (`retrieval index "
                                                         "backfill-windows`)")



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



def _exact(seconds: float) -> str:
    """A number for a URL, exactly (the shortest text that reads back as it), without a trailing `.0`."""
    return repr(float(seconds)).removesuffix(".0")


def search_hit(hit: Hit, *, audio_url: str) -> SearchHit:
    r = hit.record
    seg = hit.segment
    span = f"start={_exact(seg.start)}&end={_exact(seg.end)}" if seg is not None else ""
    segment = None if seg is None else SegmentOut(
        start=seg.start, end=seg.end, score=seg.score, excerpt_name=excerpt_name(r.name, seg.start, seg.end),
        excerpt_url=f"{audio_url}{'&' if '?' in audio_url else '?'}{span}")  # after a signed link's query
    return SearchHit(id=r.id, name=r.name, score=hit.score, duration=r.duration, tags=tags_out(r),
                     audio_url=audio_url, file_name=file_name(r.name, r.location),
                     file_type=file_type(r.location), segment=segment, **meta_out(r))


ExportFormat = Literal["csv", "jsonl", "audacity", "reaper"]
class ExportSpan(BaseModel):
    """A hit's segment as an export reads it (its other fields are ignored)."""

    model_config = ConfigDict(strict=True)

    start: Seconds = Field(ge=0, le=MAX_EXPORT_NUMBER, description="seconds from the clip's start",
                           examples=[20.0])
    end: Seconds = Field(ge=0, le=MAX_EXPORT_NUMBER, description="seconds from the clip's start",
                         examples=[30.0])

    @model_validator(mode="after")
    def _in_order(self) -> "ExportSpan":
        if self.end <= self.start:
            raise ValueError(f"a segment's end ({self.end:.10g} s) must come after its start "
                             f"({self.start:.10g} s)")
        return self


class ExportHit(BaseModel):
    """A hit of a search's answer as an export reads it (the other fields of SearchHit are ignored)."""

    model_config = ConfigDict(strict=True)

    id: int = Field(ge=0, le=INT64_MAX, description="the clip's id", examples=[42])
    name: ClipName = Field(description="the clip's name", examples=["rain_on_roof.wav"])
    score: float = Field(ge=-MAX_EXPORT_NUMBER, le=MAX_EXPORT_NUMBER, allow_inf_nan=False,
                         description="the hit's score", examples=[0.62])
    duration: Seconds = Field(ge=0, le=MAX_EXPORT_NUMBER, description="the clip's length, seconds",
                              examples=[12.5])
    segment: ExportSpan | None = Field(None, description="where in the clip (null: no span, as in keyword "
                                                         "mode)")

    @model_validator(mode="after")
    def _within(self) -> "ExportHit":
        if self.segment is not None and self.segment.end > self.duration + END_SLACK_S:
            raise ValueError(f"the segment ends at {self.segment.end:.10g} s, past the clip's end "
                             f"({self.duration:.10g} s)")
        return self


class ExportRequest(BaseModel):
    """A search's answer sent back to be written as a file: its `results` as POST /search gave them."""

    model_config = ConfigDict(**JSON_BODY, json_schema_extra={"examples": [
        {"moments": True, "results": [{"id": 7, "name": "door.wav", "score": 0.61, "duration": 95.0,
                                       "segment": {"start": 12.5, "end": 22.5}}]}]})

    results: list[ExportHit] = Field(max_length=MAX_EXPORT, description="the hits, best first")
    moments: bool = Field(False, description="whether they are moments (names the file `moments-...`)")


def export_rows(body: ExportRequest) -> list[ExportRow]:
    """The answer's hits, best first, as export rows ranked from 1."""
    return [ExportRow(rank, h.id, h.name, h.score, h.segment.start if h.segment else None,
                      h.segment.end if h.segment else None, h.duration)
            for rank, h in enumerate(body.results, 1)]
