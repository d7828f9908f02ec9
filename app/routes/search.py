"""POST /search (text), POST /search/audio (query by example) and POST /exports/{format} (an answer as a
file)."""

import time
from functools import partial

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.compose import example_limits
from app.deps import CollectionDep, MetricsDep, SettingsDep, audio_url
from app.excerpts import content_disposition
from app.limits import Utf8Json
from app.observability import ServiceMetrics
from app.schemas.common import BODY_ERRORS, ErrorOut, Responses, ValidationOut
from app.schemas.search import (
    AudioQuery,
    ExportFormat,
    ExportRequest,
    SearchMode,
    SearchRequest,
    SearchResponse,
    export_rows,
    search_hit,
)
from app.security import ReadAccess
from app.uploads import form_of, multipart_body, read_upload
from index import exports
from index.collection import Collection
from index.store.records import Hit
from retrieval.composite import CompositeQuery

router = APIRouter(tags=["search"], dependencies=[ReadAccess])

READ_ERRORS: Responses = {401: {"model": ErrorOut, "description": "reads are protected and no key was sent"},
               403: {"model": ErrorOut, "description": "reads are protected and the key is wrong"}}
UPLOAD_ERRORS: Responses = {400: {"model": ErrorOut,
                                  "description": "a malformed multipart body, or over 8 form fields or "
                                                 "8 files"},
                 408: BODY_ERRORS[408],
                 413: {"model": ErrorOut, "description": "over RETRIEVAL_MAX_UPLOAD_BYTES or "
                                                         "RETRIEVAL_MAX_DURATION_S"},
                 415: {"model": ErrorOut, "description": "not audio the decoder can read (its message)"},
                 422: {"model": ValidationOut, "description": "no `file` field, a bad form field, a field "
                                                             "sent twice (`file` too), or a file under "
                                                             "another name"}}


COMPOSITE_ERRORS: Responses = {
    404: {"model": ErrorOut, "description": "`like` or `unlike` names clips the collection does not hold "
                                            "(the message lists them)"},
    422: {"model": ValidationOut, "description": "a field out of its bounds or of the wrong type, nothing to "
                                                 "search towards, a clip in both `like` and `unlike`, or "
                                                 "parts that cancel out (a zero vector)"}}


def text_search(collection: Collection, metrics: ServiceMetrics, req: SearchRequest) -> list[Hit]:
    """The request's search, encoding and search timed apart so the metrics tell the encoder from the
    index."""
    return collection.search(req.composite(), req.k, req.search_filter(), mode=req.mode,
                             moments=req.moment_query(), encoding=metrics.query_encode.time,
                             searching=metrics.search.time)


def respond(request: Request, query: str, hits: list[Hit], start: float, *,
            mode: SearchMode = "vector") -> SearchResponse:
    results = [search_hit(h, audio_url=audio_url(request, h.record.id)) for h in hits]
    took_ms = round(1000 * (time.perf_counter() - start), 3)
    return SearchResponse(query=query, mode=mode, took_ms=took_ms, results=results)


@router.post("/search", summary="Search the collection with text and example clips",
             responses={**READ_ERRORS, **COMPOSITE_ERRORS,
                        **BODY_ERRORS},
             description="Returns the k best clips for the query, best first, with their scores, top "
                         "tags, the user's metadata, audio URL and `segment` (where in the clip it sounds "
                         "most like the query; null in keyword mode); the filters apply inside the "
                         "search. `mode`: `vector` (default) encodes the query into the shared space "
                         "(cosine similarity); `keyword` matches its words against each clip's name, "
                         "description, user tags and top AudioSet tag names (BM25); `hybrid` joins both "
                         "rankings by reciprocal-rank fusion (k = 60). In `vector` and `hybrid` mode the "
                         "query may be composite: text, clips to sound like (`like`) and unlike "
                         "(`unlike`), and text to avoid (`not`), weighted (`weights`); the clips named in "
                         "`like` and `unlike` are left out of the results. With `moments: true` (vector "
                         "mode), the k best moments of the whole collection instead (several per clip, at "
                         "most `per_clip`), filters applying as to clips. An empty collection answers an "
                         "empty list.", dependencies=[Utf8Json])
async def search(body: SearchRequest, request: Request, collection: CollectionDep,
                 metrics: MetricsDep) -> SearchResponse:
    start = time.perf_counter()
    hits = await run_in_threadpool(text_search, collection, metrics, body)
    return respond(request, body.composite().describe(), hits, start, mode=body.mode)


@router.post("/search/audio", summary="Find clips that sound like an uploaded one",
             responses={**READ_ERRORS, **UPLOAD_ERRORS},
             openapi_extra=multipart_body(AudioQuery),
             description="Query by example: the uploaded clip is decoded, tagged by PaSST and projected like "
                         "an indexed one (it is not added), and the k closest clips are returned; it may "
                         "last RETRIEVAL_MAX_EXAMPLE_DURATION_S (60 s by default; 413 past it). With a "
                         "text `query` (\"like this file, but with rain\") the vector searched is "
                         "L2(w_query * text + w_like * example) with the default weights of POST /search. "
                         "`query` in the answer is the uploaded file's name, and the text after it.")
async def search_audio(request: Request, collection: CollectionDep, metrics: MetricsDep,
                       settings: SettingsDep) -> SearchResponse:
    upload = await read_upload(request)
    form = form_of(AudioQuery, upload.fields)
    start = time.perf_counter()
    with metrics.audio_encode.labels("search").time():
        hits = await run_in_threadpool(partial(collection.search_audio, text=form.query,
                                               moments=form.moment_query(), limits=example_limits(settings)),
                                       upload.data, form.k, None, upload.name)
    return respond(request, CompositeQuery(text=form.query).describe(example=upload.name), hits, start)


@router.post("/exports/{format}", summary="Write a search's answer as a file for a DAW or a spreadsheet",
             response_class=Response,
             responses={**READ_ERRORS,
                        200: {"description": "the file, as an attachment named `results-<format>.<suffix>` "
                                             "or `moments-...`",
                              "content": {"text/csv": {}, "application/jsonl": {}, "text/plain": {}}},
                        **BODY_ERRORS,
                        422: {"model": ValidationOut, "description": "an unknown format, or a hit that is "
                                                                     "not one of a search's answer"}},
             description="The `results` of a POST /search answer (as it gave them; other fields are "
                         "ignored) in one of the command line's export formats, the same text as "
                         "`retrieval search QUERY --export FORMAT`: `csv` (rank, id, name, score, start, "
                         "end, duration), `jsonl`, `audacity` (a label track of the spans) or `reaper` (its "
                         "region CSV). The web page's export buttons download these.",
             dependencies=[Utf8Json])
async def export(format: ExportFormat, body: ExportRequest) -> Response:
    text = exports.WRITERS[format](export_rows(body))
    name = exports.file_name(format, moments=body.moments)
    return Response(text.encode("utf-8"), media_type=exports.MEDIA_TYPES[format],
                    headers={"Content-Disposition": content_disposition(name, "attachment")})
