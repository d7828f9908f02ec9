"""The collection's clips: add (upload), list, get, stream (whole, or an excerpt), delete."""

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel

from app.deps import CollectionDep, IngestDep, audio_url
from app.errors import AudioFileGone, NoSuchClip
from app.excerpts import check_span, content_disposition, file_name, file_type, read_excerpt
from app.limits import Utf8Json
from app.routes.jobs import job_view, wait_for
from app.routes.search import READ_ERRORS, UPLOAD_ERRORS
from app.schemas.clips import ClipId, ClipOut, ClipPage, MetadataPatch, UploadForm, clip_out
from app.schemas.common import BODY_ERRORS, ErrorOut, PageLimit, PageOffset, Responses
from app.schemas.jobs import JobOut
from app.security import ReadAccess, WriteAccess
from app.stored_file import StoredFile
from app.uploads import form_of, multipart_body, read_upload
from index.collection import Collection
from index.store.metadata import Metadata
from index.store.records import ClipRecord

router = APIRouter(tags=["audio"])

WRITE_ERRORS: Responses = {401: {"model": ErrorOut, "description": "no API key was sent"},
                403: {"model": ErrorOut, "description": "wrong key, or no key configured on the server "
                                                        "(the message says to set RETRIEVAL_API_KEY)"}}
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "no clip with this id"}}
DUPLICATE = "the same bytes were already in the collection: the existing record, nothing added"
ACCEPTED = ("acknowledged: the bytes and the job are stored; the job (its progress, then its clip); also "
            "the job already queued for the same bytes")
MAX_WAIT_S = 60
# the first bytes of each container the decoder reads, and the type a browser's <audio> expects for it
MAGIC_TYPES = ((b"RIFF", "audio/wav"), (b"RF64", "audio/wav"), (b"BW64", "audio/wav"),
               (b"fLaC", "audio/flac"), (b"OggS", "audio/ogg"), (b"ID3", "audio/mpeg"),
               (b"FORM", "audio/aiff"), (b"caff", "audio/x-caf"), (b".snd", "audio/basic"),
               (b"riff", "audio/x-w64"))


def audio_media_type(path: Path) -> str:
    """From the file's own first bytes (a stored copy's name may say nothing), else from its suffix."""
    with open(path, "rb") as f:
        head = f.read(4)
    for magic, media_type in MAGIC_TYPES:
        if head.startswith(magic):
            return media_type
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG frame sync
        return "audio/mpeg"
    return file_type(str(path))


def page_of(collection: Collection, offset: int, limit: int) -> tuple[list[ClipRecord], int]:
    """(the page, the collection's size); past the end the store is not asked for the page at all."""
    total = collection.count()
    return (collection.list(offset, limit) if offset < total else []), total


def get_or_404(collection: Collection, clip_id: int) -> ClipRecord:
    record = collection.get(clip_id)
    if record is None:
        raise NoSuchClip(clip_id)
    return record


@router.post("/audio", status_code=202, summary="Add a clip (needs the API key)", response_model=None,
             responses={**WRITE_ERRORS, **UPLOAD_ERRORS,
                        202: {"model": JobOut, "description": ACCEPTED, "headers": {
                            "Location": {"description": "/jobs/{id}", "schema": {"type": "string"}}}},
                        201: {"model": ClipOut, "description": "indexed within `wait` seconds: the record"},
                        200: {"model": ClipOut, "description": DUPLICATE},
                        507: {"model": ErrorOut, "description": "the disk is full: nothing was stored"}},
             openapi_extra=multipart_body(UploadForm),
             description="Multipart upload (`file`, optional `name`, `description`, `user_tags` separated by "
                         "`;` or `,`, `fields` as a JSON object of strings: malformed ones answer 422 and "
                         "store nothing). What the header tells (format, "
                         "channels, duration) is judged at once (4xx); then the bytes and an indexing job "
                         "are stored durably and the answer is **202** with the job "
                         "(`Location: /jobs/{id}`): PaSST tags the clip in the background. `wait=S` waits "
                         "up to S seconds: **201** "
                         "with the clip's record when it was indexed by then (a failure answers its error "
                         "status), else 202. The same bytes again add nothing: **200** with the indexed "
                         "record, or 202 with the job already queued for them (their metadata as it is: "
                         "PATCH /audio/{id} edits it).",
             dependencies=[WriteAccess])
async def add_audio(request: Request, collection: CollectionDep, ingest: IngestDep,
                    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, allow_inf_nan=False,
                                                 description="seconds to wait for the clip to be "
                                                             "indexed")] = 0) -> Response:
    upload = await read_upload(request)
    metadata = form_of(UploadForm, upload.fields).applied_to(Metadata())
    submitted = await run_in_threadpool(ingest.submit, upload.data, upload.name, metadata)
    if submitted.record is not None:
        where = request.app.url_path_for("get_audio", clip_id=submitted.record.id)
        return _json(200, clip_out(submitted.record, audio_url=audio_url(request, submitted.record.id)),
                     location=str(where))
    assert submitted.job is not None
    job = await wait_for(ingest.queue, submitted.job, wait) if wait else submitted.job
    if job.status == "failed":
        status = int(job.fields.get("http_status", 500))  # 500: the worker died on it (see recover)
        return _json(status, ErrorOut(detail=job.error or "indexing failed"))
    view = await run_in_threadpool(job_view, request, collection, job)
    if view.clip is not None:  # 201 for the request whose job it was; the same bytes sent meanwhile: 200
        where = request.app.url_path_for("get_audio", clip_id=view.clip.id)
        return _json(201 if submitted.created else 200, view.clip, location=str(where))
    return _json(202, view, location=str(request.app.url_path_for("job", job_id=job.id)))


def edit_metadata(collection: Collection, clip_id: int, change: MetadataPatch) -> ClipRecord:
    record = collection.edit_metadata(clip_id, change.applied_to)
    if record is None:
        raise NoSuchClip(clip_id)
    return record


def _json(status: int, body: BaseModel, *, location: str | None = None) -> JSONResponse:
    headers = {"Location": location} if location else None
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


@router.get("/audio", summary="List the clips, a page at a time", responses=READ_ERRORS,
            description="Clips ordered by id; `total` is the size of the whole collection.",
            dependencies=[ReadAccess])
async def list_audio(request: Request, collection: CollectionDep, offset: PageOffset = 0,
                     limit: PageLimit = 50) -> ClipPage:
    records, total = await run_in_threadpool(page_of, collection, offset, limit)
    items = [clip_out(r, audio_url=audio_url(request, r.id)) for r in records]
    return ClipPage(total=total, offset=offset, limit=limit, items=items)


@router.get("/audio/{clip_id}", summary="One clip's record", responses={**READ_ERRORS, **NOT_FOUND},
            description="Name, duration, source sample rate, sha256, top tags, when it was added and where "
                        "its audio is.", dependencies=[ReadAccess])
async def get_audio(clip_id: ClipId, request: Request, collection: CollectionDep) -> ClipOut:
    record = await run_in_threadpool(get_or_404, collection, clip_id)
    return clip_out(record, audio_url=audio_url(request, record.id))


SPAN_TEXT = ("seconds from the clip's start; with `start` and `end` both (finite, 0 <= start < end <= the "
             "clip's duration) the answer is that span alone as a WAV")
Start = Annotated[float | None, Query(description=SPAN_TEXT, examples=[12.5])]
End = Annotated[float | None, Query(description=SPAN_TEXT, examples=[22.5])]  # a span with `start`'s


@router.head("/audio/{clip_id}/file", include_in_schema=False, dependencies=[ReadAccess])  # players ask first
@router.get("/audio/{clip_id}/file", name="audio_file", summary="Stream a clip's audio, or an excerpt",
            response_class=FileResponse, dependencies=[ReadAccess],
            responses={**READ_ERRORS, **NOT_FOUND,
                       200: {"content": {"audio/*": {}}, "description": "the whole file, or the excerpt "
                                                                      "(audio/wav) asked for"},
                       206: {"content": {"audio/*": {}}, "description": "the byte range asked for"},
                       400: {"model": ErrorOut, "description": "`start` and `end` are not a span of the "
                                                               "clip: one alone, not finite, negative, "
                                                               "reversed or past its end"},
                       304: {"description": "If-None-Match or If-Modified-Since: the client's copy is "
                                            "the file's (no body)"},
                       412: {"model": ErrorOut, "description": "If-Match or If-Unmodified-Since: the file is "
                                                               "no longer the version named"},
                       416: {"model": ErrorOut, "description": "no range of the Range header starts within "
                                                               "the file (Content-Range: bytes */size)"}},
            description="The stored audio as it was added, with its content type (audio/wav, audio/flac, "
                        "audio/ogg, audio/mpeg). Supports `Range: bytes=...` (206 with Content-Range; ranges "
                        "starting past the end are dropped, 416 when none is left; a header that is not "
                        "byte ranges is ignored), so a browser player can seek; `If-None-Match` / "
                        "`If-Modified-Since` (304), `If-Match` / `If-Unmodified-Since` (412), settled before "
                        "the Range; an `If-Range` that is not the file's ETag sends the whole file.\n\n"
                        "An excerpt, with `start` and `end` (seconds): only that span, read from the "
                        "file alone, as a WAV at the file's own sample rate and channels (16-bit PCM "
                        "from 16-bit sources, else 32-bit float), frames round(start * rate) to "
                        "round(end * rate), so it lasts end - start to within a sample; named "
                        "`<name>_<start>-<end>.wav` (Content-Disposition).")
async def audio_file(clip_id: ClipId, collection: CollectionDep, start: Start = None,
                     end: End = None) -> Response:
    span = check_span(start, end)
    record = await run_in_threadpool(get_or_404, collection, clip_id)
    path = Path(collection.audio_path(record))
    if not path.is_file():
        raise AudioFileGone(clip_id)
    if span is not None:
        excerpt = await run_in_threadpool(read_excerpt, path, record.name, *span)
        return StreamingResponse(iterate_in_threadpool(excerpt.chunks()), media_type="audio/wav",
                                 headers={"Content-Disposition": content_disposition(excerpt.filename),
                                          "Content-Length": str(excerpt.size)})
    media_type = await run_in_threadpool(audio_media_type, path)
    # the file settles the request's preconditions, then its Range (RFC 9110 13.2.2): app/stored_file.py
    return StoredFile(path, media_type=media_type,  # named as the search hit says
                      headers={"Content-Disposition": content_disposition(file_name(record.name,
                                                                                     record.location))})


@router.patch("/audio/{clip_id}", summary="Edit a clip's description, user tags, fields (needs the API key)",
              responses={**WRITE_ERRORS, **NOT_FOUND,
                         **BODY_ERRORS},
              dependencies=[WriteAccess, Utf8Json],
              description="Replaces the parts given (`description`, `user_tags`, `fields`; at least one) and "
                          "leaves the others as they are; the clip's keyword document follows at once. "
                          "Answers the updated record.")
async def edit_audio(clip_id: ClipId, body: MetadataPatch, request: Request,
                     collection: CollectionDep) -> ClipOut:
    record = await run_in_threadpool(edit_metadata, collection, clip_id, body)
    return clip_out(record, audio_url=audio_url(request, record.id))


@router.delete("/audio/{clip_id}", status_code=204, summary="Remove a clip (needs the API key)",
               responses={**WRITE_ERRORS, **NOT_FOUND,
                         **BODY_ERRORS},
              dependencies=[WriteAccess],
               description="Removes the clip from the index; an uploaded clip's stored copy is deleted too, "
                           "an indexed file on disk is left alone.")
async def delete_audio(clip_id: ClipId, collection: CollectionDep) -> Response:
    removed = await run_in_threadpool(collection.remove, [clip_id])
    if not removed:
        raise NoSuchClip(clip_id)
    return Response(status_code=204)
