"""The service's errors, mapped to HTTP here and only here, with stable messages (`{"detail": "..."}`).

Routes and dependencies raise named errors: the library's (retrieval/errors.py, the job queue's) and the
edge's own, defined below. `STATUS_OF` gives each its status:

| error | status | why |
|---|---|---|
| KeyRequired | 401 | the route needs the API key and none was sent (with `WWW-Authenticate: Bearer`) |
| KeyRefused | 403 | the key is wrong, or the server has none configured (the message says to set one) |
| BodyNotUtf8 | 400 | a JSON body that is not UTF-8 text (RFC 8259 8.1: UTF-16 and UTF-32 are refused too) |
| ClipNotFound | 404 | the request names clips that are not in the collection (the message lists them) |
| JobNotFound | 404 | no job has this id |
| BadSpan | 400 | an excerpt's `start` and `end` are no span of the clip: one alone, reversed, past its end |
| RangeNotSatisfiable | 416 | no range of the `Range` starts within the file (`Content-Range: bytes */size`) |
| ClientGone | 400 | the client went away before its upload had arrived (logged, not a fault) |
| AudioFileGone | 404 | the clip's audio file is no longer where it was indexed |
| JobStateError | 409 | the job's status does not allow the change (only a queued job can be cancelled) |
| CheckpointMismatch | 409 | the index was made with another model than the one serving |
| ClipChanged | 409 | another process kept writing the clip while its metadata was written (try again) |
| AudioTooLong | 413 | the clip is over RETRIEVAL_MAX_DURATION_S: a size limit, like the byte limit |
| AudioDecodeError | 415 | not audio the decoder can read; the decoder's message says what is wrong |
| ModelNotFound | 503 | the configured weights are missing |
| NotReady | 503 | the models and the index are still loading |
| StoreClosed | 503 | the service is shutting down: a request that came as it closed the collection |
| StorageFull | 507 | the disk is full: nothing of the request was stored |
| any other RetrievalError | 400 | |

A body over RETRIEVAL_MAX_UPLOAD_BYTES answers 413 (BodyTooLarge, below), and one that stops arriving for
BODY_IDLE_S, or comes slower than BODY_MIN_RATE after that (app/limits.py), 408 (BodyTimeout), the
connection closed. A request that fails validation
answers 422 with FastAPI's list of `{"loc", "msg", "type"}`, without echoing the input back (it may be huge,
or not even representable in JSON, like a NaN): a name of the request's own in `loc` (an unknown key, a form
field) is cut to MAX_LOC_CHARS. ZeroQuery (a composite query whose parts cancel out) is such a failure, found
only once the parts are encoded: the same 422 list, at `["body"]`; so is a JSON integer longer than Python
reads (over 4300 digits), at its place, of type `int_parsing_size`.

A body FastAPI cannot parse at all is its 400 (the message says why where it is known: not UTF-8, nested too
deep), and a refused CORS preflight Starlette's 400 (app/security.py's JsonCORSMiddleware says it as JSON).
Both 400 and 422 come only once the caller may use the route: a caller without the key is told that
instead (401, 403), whatever the body.
"""

import json
import logging
import sys

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.ingest.jobs import JobNotFound, JobStateError
from index.store.contract import ClipChanged
from retrieval.errors import (
    AudioDecodeError,
    AudioTooLong,
    CheckpointMismatch,
    ClipNotFound,
    ModelNotFound,
    RetrievalError,
    StorageFull,
    StoreClosed,
    ZeroQuery,
    disk_full,
)

log = logging.getLogger(__name__)

TOO_LARGE = "the upload is larger than this server's limit of {limit} bytes (RETRIEVAL_MAX_UPLOAD_BYTES)"


class NoSuchClip(ClipNotFound):
    """The one clip a route names is not in the collection."""

    def __init__(self, clip_id: int) -> None:
        super().__init__(f"no clip with id {clip_id}")


class NoSuchJob(JobNotFound):
    """The one job a route names is not in the queue (it never existed, or it was cancelled)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id} (never queued, or cancelled: a cancelled job is removed)")


class AudioFileGone(RetrievalError):
    """A clip's record is in the collection, but its audio file is no longer where it was indexed."""

    def __init__(self, clip_id: int) -> None:
        super().__init__(f"the audio of clip {clip_id} is no longer where it was indexed")


class BadSpan(RetrievalError):
    """An excerpt's `start` and `end` (GET /audio/{id}/file) do not name a span of the clip."""


class ClientGone(RetrievalError):
    """The client went away before its request's body had all arrived (a page reloaded mid-upload):
    nothing is stored, and no one is left to read the answer."""


class RangeNotSatisfiable(RetrievalError):
    """A request for a clip's audio asked for bytes that are not in the file (416, with Content-Range)."""

    def __init__(self, header: str, size: int) -> None:
        super().__init__(f"the Range {header[:80]!r} asks for bytes past the end of the file ({size} bytes): "
                         f"ask for bytes=0-{max(size - 1, 0)} or less")
        self.headers = {"Content-Range": f"bytes */{size}"}


class NotReady(RetrievalError):
    """The service is up but its models and index are still loading."""


class KeyRequired(RetrievalError):
    """The route needs the API key and the request carries none."""


class KeyRefused(RetrievalError):
    """The request's API key is wrong, or the server has no key configured."""


class BodyNotUtf8(RetrievalError):
    """A JSON body that is not UTF-8 text: bytes UTF-8 does not have, or text in UTF-16 or UTF-32 (which
    Python's json reads, and FastAPI with it; RFC 8259 says JSON travels as UTF-8)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the body is not UTF-8 text, as JSON must be ({why})")


class BodyTooLarge(HTTPException):
    """The request body is over RETRIEVAL_MAX_UPLOAD_BYTES (413). Raised while a route reads the body, so an
    HTTPException: the one kind FastAPI lets through from a body read (any other becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, TOO_LARGE.format(limit=limit))


class BodyTimeout(HTTPException):
    """The request body stopped arriving (408): no part of it came for `idle_s` seconds, or, given
    `min_rate`, it came slower than that many bytes a second (`received` so far) once `idle_s` had passed (a
    client that declares more than it sends holds a connection and a task forever otherwise). An
    HTTPException for the reason BodyTooLarge is; its answer closes the connection, whose rest of a body
    will not come."""

    def __init__(self, idle_s: float, *, min_rate: int | None = None, received: int = 0) -> None:
        detail = (f"the request body stopped arriving: nothing of it came for {idle_s:g} seconds"
                  if min_rate is None else
                  f"the request body came too slowly: {received:,} bytes, where {idle_s:g} seconds and "
                  f"{min_rate:,} bytes a second after them were allowed")
        super().__init__(408, detail, headers={"Connection": "close"})


STATUS_OF = {
    KeyRequired: 401,
    KeyRefused: 403,
    BodyNotUtf8: 400,
    BadSpan: 400,
    RangeNotSatisfiable: 416,
    ClientGone: 400,
    ClipNotFound: 404,
    JobNotFound: 404,
    AudioFileGone: 404,
    JobStateError: 409,
    CheckpointMismatch: 409,
    ClipChanged: 409,
    AudioTooLong: 413,
    AudioDecodeError: 415,
    ModelNotFound: 503,
    NotReady: 503,
    StoreClosed: 503,
    StorageFull: 507,
    RetrievalError: 400,
}
# the headers an error's answer carries
HEADERS_OF: dict[type[RetrievalError], dict[str, str]] = {KeyRequired: {"WWW-Authenticate": "Bearer"}}


def status_for(error: RetrievalError) -> int:
    """The status of the most specific class in STATUS_OF the error is an instance of."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


def job_status(error: Exception) -> int:
    """What a request waiting on an upload answers when the ingest worker failed its job with `error`: the
    status of a named error, 507 for a full disk however it was said, 500 for any other (the worker's own
    failure: a RetrievalError of no class the table names, a store gone or a device lost mid-ingest, is no
    fault of the client's)."""
    if disk_full(error):
        return STATUS_OF[StorageFull]
    if isinstance(error, RetrievalError) and any(cls in STATUS_OF for cls in type(error).__mro__
                                                 if cls is not RetrievalError):
        return status_for(error)
    return 500


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer of every error with a message: `{"detail": "..."}`."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def retrieval_error_handler(request: Request, error: RetrievalError) -> JSONResponse:
    status = status_for(error)
    log.log(logging.ERROR if status >= 500 else logging.INFO, "%s %s -> %d %s: %s", request.method,
            request.url.path, status, type(error).__name__, error)
    headers = {**HEADERS_OF.get(type(error), {}), **getattr(error, "headers", {})}
    return error_response(status, str(error), headers or None)


MAX_LOC_CHARS = 100  # of a name in a 422's `loc`: a key of the client's own may be a megabyte long
TOO_DEEP = "the JSON body is nested deeper than this server parses"


def loc_part(part: object) -> object:
    """A `loc` element as a 422 says it: a name over MAX_LOC_CHARS cut there, with an ellipsis (the 422
    echoes no input, and a name the client made up is input)."""
    return part[:MAX_LOC_CHARS] + "\u2026" if isinstance(part, str) and len(part) > MAX_LOC_CHARS else part


async def access_refused(request: Request) -> JSONResponse | None:
    """The 401 or 403 of a request its route's key check refuses, else None: checked again where the body
    failed first (FastAPI parses and validates a JSON body before a route's dependencies run)."""
    from app.security import check_route_access  # the key check raises this module's errors

    try:
        await check_route_access(request)
    except RetrievalError as refused:
        return await retrieval_error_handler(request, refused)
    return None


async def validation_error_handler(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with each problem, once the caller may use the route (a body that is not JSON fails before the
    route's key check has run: a caller without the key is told that instead)."""
    if (refused := await access_refused(request)) is not None:
        return refused
    detail = [{"loc": [loc_part(part) for part in e.get("loc", ())], "msg": e.get("msg", ""),
               "type": e.get("type", "")} for e in error.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


class _LongInteger(str):
    """The digits of a JSON integer longer than Python reads, kept as text."""


def long_integer(body: bytes) -> tuple[tuple[str | int, ...], int] | None:
    """Where in the JSON `body` its first integer longer than Python reads is (sys.get_int_max_str_digits:
    4300 digits by default, against quadratic-time conversions), and how many digits it has; None when it
    has none, or is no JSON."""
    limit = sys.get_int_max_str_digits()

    def parse_int(text: str) -> int | _LongInteger:
        return _LongInteger(text) if limit and len(text.lstrip("-")) > limit else int(text)

    try:
        document = json.loads(body, parse_int=parse_int)
    except (ValueError, RecursionError):
        return None
    pending: list[tuple[tuple[str | int, ...], object]] = [((), document)]  # depth first, in document order
    while pending:
        path, value = pending.pop()
        if isinstance(value, _LongInteger):
            return path, len(value.lstrip("-"))
        if isinstance(value, dict):
            pending.extend(reversed([((*path, k), v) for k, v in value.items()]))
        elif isinstance(value, list):
            pending.extend(reversed([((*path, i), v) for i, v in enumerate(value)]))
    return None


async def unparsed_body_answer(request: Request, cause: BaseException) -> Response | None:
    """The answer to a body FastAPI could not parse (`cause`; its 400 says only "There was an error parsing
    the body"), once the caller may use the route: what is wrong with it where that is known (not UTF-8,
    nested too deep, a number too long: 422 at its place), else None for FastAPI's own 400."""
    if (refused := await access_refused(request)) is not None:
        return refused
    if isinstance(cause, UnicodeDecodeError):
        return await retrieval_error_handler(request, BodyNotUtf8(str(cause)))
    if isinstance(cause, RecursionError):
        return error_response(400, TOO_DEEP)
    if isinstance(cause, ValueError) and (found := long_integer(await request.body())) is not None:
        path, digits = found
        issue = {"loc": ("body", *path), "type": "int_parsing_size",
                 "msg": f"a number of {digits} digits: more than the {sys.get_int_max_str_digits()} this "
                        "server reads"}
        return await validation_error_handler(request, RequestValidationError([issue]))
    return None


async def zero_query_handler(request: Request, error: ZeroQuery) -> JSONResponse:
    issue = {"loc": ("body",), "msg": str(error), "type": "zero_query"}
    return await validation_error_handler(request, RequestValidationError([issue]))


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at the request's path (RFC 9110: a 405's Allow lists
    them all; the router names only those of the first route whose path matched)."""
    path = request.scope.get("path", "")
    table = getattr(request.app.state, "route_methods", [])  # (path regex, methods): app/main.py's
    return sorted({m for regex, methods in table if regex.match(path) for m in methods})


async def http_error_handler(request: Request, error: StarletteHTTPException) -> Response:
    """FastAPI's answer to the router's own errors (404, 405), a 405 with every allowed method; a body
    FastAPI could not parse (its 400, raised from the parser's error) by unparsed_body_answer."""
    if error.status_code == 405 and (allowed := allowed_methods(request)):
        error.headers = {**(error.headers or {}), "Allow": ", ".join(allowed)}
    if error.status_code == 400 and error.__cause__ is not None:
        if (answer := await unparsed_body_answer(request, error.__cause__)) is not None:
            return answer
    return await http_exception_handler(request, error)


async def internal_error_handler(request: Request, error: Exception) -> JSONResponse:
    """A bug's answer: JSON like every other error, nothing of the failure in it (the server logs its
    traceback)."""
    return error_response(500, "an internal error: the service's log has its traceback")


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types handlers as taking any Exception; each of these is registered for its own class only
    app.add_exception_handler(Exception, internal_error_handler)  # Starlette's last resort, then re-raised
    app.add_exception_handler(StarletteHTTPException, http_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RetrievalError, retrieval_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(ZeroQuery, zero_query_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error_handler)  # type: ignore[arg-type]
