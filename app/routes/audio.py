"""The collection's clips: add (upload), list, get, stream, delete."""

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from app.deps import CollectionDep, MetricsDep, audio_url
from app.routes.search import READ_ERRORS, UPLOAD_ERRORS
from app.schemas import ClipId, ClipOut, ClipPage, ErrorOut, PageLimit, PageOffset, Responses, clip_out
from app.security import ReadAccess, WriteAccess
from app.uploads import multipart_body, read_upload
from index.base import ClipRecord
from index.collection import Collection

router = APIRouter(tags=["audio"])

WRITE_ERRORS: Responses = {401: {"model": ErrorOut, "description": "no API key was sent"},
                403: {"model": ErrorOut, "description": "wrong key, or no key configured on the server "
                                                        "(the message says to set RETRIEVAL_API_KEY)"}}
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "no clip with this id"}}
DUPLICATE = "the same bytes were already in the collection: the existing record, nothing added"

# the first bytes of each container the decoder reads, and the type a browser's <audio> expects for it
MAGIC_TYPES = ((b"RIFF", "audio/wav"), (b"fLaC", "audio/flac"), (b"OggS", "audio/ogg"),
               (b"ID3", "audio/mpeg"))
SUFFIX_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
                ".opus": "audio/ogg", ".mp3": "audio/mpeg"}


def audio_media_type(path: Path) -> str:
    """From the file's own first bytes (a stored copy's name may say nothing), else from its suffix."""
    with open(path, "rb") as f:
        head = f.read(4)
    for magic, media_type in MAGIC_TYPES:
        if head.startswith(magic):
            return media_type
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG frame sync
        return "audio/mpeg"
    return SUFFIX_TYPES.get(path.suffix.lower(), "application/octet-stream")


def page_of(collection: Collection, offset: int, limit: int) -> tuple[list[ClipRecord], int]:
    """(the page, the collection's size); past the end the store is not asked for the page at all."""
    total = collection.count()
    return (collection.list(offset, limit) if offset < total else []), total


def get_or_404(collection: Collection, clip_id: int) -> ClipRecord:
    record = collection.get(clip_id)
    if record is None:
        raise HTTPException(404, f"no clip with id {clip_id}")
    return record


@router.post("/audio", status_code=201, summary="Add a clip (needs the API key)",
             responses={**WRITE_ERRORS, **UPLOAD_ERRORS,
                        200: {"model": ClipOut, "description": DUPLICATE}},
             openapi_extra=multipart_body(fields={"name": {"type": "string", "maxLength": 255,
                                                           "description": "name to store (default: the "
                                                                          "file's own name)"}}),
             description="Multipart upload (`file`, optional `name`). The clip is decoded, tagged by "
                         "PaSST, projected and added; the answer is its record with its top tags (201). "
                         "Uploading the same bytes again adds nothing and answers the existing record with "
                         "200.",
             dependencies=[WriteAccess])
async def add_audio(request: Request, response: Response, collection: CollectionDep,
                    metrics: MetricsDep) -> ClipOut:
    upload = await read_upload(request)
    with metrics.audio_encode.labels("add").time():
        record, created = await run_in_threadpool(collection.add_bytes, upload.data, upload.name)
    if not created:
        response.status_code = 200
    return clip_out(record, audio_url=audio_url(request, record.id))


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


@router.get("/audio/{clip_id}/file", name="audio_file", summary="Stream a clip's audio",
            response_class=FileResponse, dependencies=[ReadAccess],
            responses={**READ_ERRORS, **NOT_FOUND,
                       200: {"content": {"audio/*": {}}, "description": "the whole file"},
                       206: {"content": {"audio/*": {}}, "description": "the byte range asked for"},
                       416: {"description": "the Range cannot be satisfied (Content-Range: bytes */size)"}},
            description="The stored audio as it was added, with its content type (audio/wav, audio/flac, "
                        "audio/ogg, audio/mpeg). Supports `Range: bytes=...` (206 with Content-Range; 416 "
                        "for a range outside the file), so a browser player can seek.")
async def audio_file(clip_id: ClipId, collection: CollectionDep) -> FileResponse:
    record = await run_in_threadpool(get_or_404, collection, clip_id)
    path = Path(collection.audio_path(record))
    if not path.is_file():
        raise HTTPException(404, f"the audio of clip {clip_id} is no longer where it was indexed")
    media_type = await run_in_threadpool(audio_media_type, path)
    return FileResponse(path, media_type=media_type, filename=record.name, content_disposition_type="inline")


@router.delete("/audio/{clip_id}", status_code=204, summary="Remove a clip (needs the API key)",
               responses={**WRITE_ERRORS, **NOT_FOUND}, dependencies=[WriteAccess],
               description="Removes the clip from the index; an uploaded clip's stored copy is deleted too, "
                           "an indexed file on disk is left alone.")
async def delete_audio(clip_id: ClipId, collection: CollectionDep) -> Response:
    removed = await run_in_threadpool(collection.remove, [clip_id])
    if not removed:
        raise HTTPException(404, f"no clip with id {clip_id}")
    return Response(status_code=204)
