"""POST /search (text) and POST /search/audio (query by example)."""

import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from app.deps import CollectionDep, MetricsDep, RetrieverDep, audio_url
from app.observability import ServiceMetrics
from app.schemas import (
    MAX_K,
    MAX_PER_CLIP,
    ErrorOut,
    K,
    Responses,
    SearchRequest,
    SearchResponse,
    ValidationOut,
    search_hit,
)
from app.security import ReadAccess
from app.uploads import multipart_body, read_upload
from index.base import Hit, MomentQuery
from index.collection import Collection
from retrieval.pipeline import Retriever

router = APIRouter(tags=["search"], dependencies=[ReadAccess])

READ_ERRORS: Responses = {401: {"model": ErrorOut, "description": "reads are protected and no key was sent"},
               403: {"model": ErrorOut, "description": "reads are protected and the key is wrong"}}
UPLOAD_ERRORS: Responses = {400: {"model": ErrorOut,
                                  "description": "a malformed multipart body, or over 8 form fields"},
                 413: {"model": ErrorOut, "description": "over RETRIEVAL_MAX_UPLOAD_BYTES or "
                                                         "RETRIEVAL_MAX_DURATION_S"},
                 415: {"model": ErrorOut, "description": "not audio the decoder can read (its message)"},
                 422: {"model": ValidationOut, "description": "no `file` field, or a bad form field"}}


class AudioQuery(BaseModel):
    k: K = 10
    moments: bool = False
    per_clip: int = Field(3, ge=1, le=MAX_PER_CLIP)
    threshold: float | None = Field(None, ge=-1, le=1, allow_inf_nan=False)

    def moment_query(self) -> MomentQuery | None:
        return MomentQuery(per_clip=self.per_clip, threshold=self.threshold) if self.moments else None


def text_search(collection: Collection, retriever: Retriever, metrics: ServiceMetrics,
                req: SearchRequest) -> list[Hit]:
    """Encode the query, then search; timed apart so the metrics tell the encoder from the index."""
    with metrics.query_encode.time():
        xq = retriever.encode_text([req.query])  # (1, D)
    with metrics.search.time():
        return collection.search_vector(xq, req.k, req.search_filter(), req.moment_query())


def respond(request: Request, query: str, hits: list[Hit], start: float) -> SearchResponse:
    results = [search_hit(h, audio_url=audio_url(request, h.record.id)) for h in hits]
    took_ms = round(1000 * (time.perf_counter() - start), 3)
    return SearchResponse(query=query, took_ms=took_ms, results=results)


@router.post("/search", summary="Search the collection with text",
             responses={**READ_ERRORS, 400: {"model": ErrorOut, "description": "the body is not JSON"}},
             description="Encodes the query into the shared space and returns the k closest clips, best "
                         "first, with their scores (cosine similarity), top tags, audio URL and `segment`: "
                         "where in the clip it sounds most like the query. With `moments: true`, the k best "
                         "moments of the whole collection instead (several per clip, at most `per_clip`), "
                         "filters applying as to clips. An empty collection answers an empty list.")
async def search(body: SearchRequest, request: Request, collection: CollectionDep, retriever: RetrieverDep,
                 metrics: MetricsDep) -> SearchResponse:
    start = time.perf_counter()
    hits = await run_in_threadpool(text_search, collection, retriever, metrics, body)
    return respond(request, body.query, hits, start)


@router.post("/search/audio", summary="Find clips that sound like an uploaded one",
             responses={**READ_ERRORS, **UPLOAD_ERRORS},
             openapi_extra=multipart_body(fields={
                 "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10,
                       "description": "how many clips (or moments)"},
                 "moments": {"type": "boolean", "default": False,
                             "description": "the k best moments instead of clips (as in POST /search)"},
                 "per_clip": {"type": "integer", "minimum": 1, "maximum": MAX_PER_CLIP, "default": 3,
                              "description": "with moments: at most this many per clip"},
                 "threshold": {"type": "number", "minimum": -1, "maximum": 1,
                               "description": "with moments: the score a window must reach"}}),
             description="Query by example: the uploaded clip is decoded, tagged by PaSST and projected like "
                         "an indexed one (it is not added), and the k closest clips are returned. `query` in "
                         "the answer is the uploaded file's name.")
async def search_audio(request: Request, collection: CollectionDep, metrics: MetricsDep) -> SearchResponse:
    upload = await read_upload(request)
    try:
        q = AudioQuery.model_validate(upload.fields)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from None
    start = time.perf_counter()
    with metrics.audio_encode.labels("search").time():
        hits = await run_in_threadpool(collection.search_audio, upload.data, q.k, None, upload.name,
                                       q.moment_query())
    return respond(request, upload.name, hits, start)
