"""The library's named errors, mapped to HTTP at the edge with stable messages (`{"detail": "..."}`).

| error | status | why |
|---|---|---|
| AudioTooLong | 413 | the clip is over RETRIEVAL_MAX_DURATION_S: a size limit, like the byte limit |
| AudioDecodeError | 415 | not audio the decoder can read; the decoder's message says what is wrong |
| ClipNotFound | 404 | the request names clips that are not in the collection (the message lists them) |
| CheckpointMismatch | 409 | the index was made with another model than the one serving |
| ModelNotFound | 503 | the configured weights are missing |
| StorageFull | 507 | the disk is full: nothing of the request was stored |
| any other RetrievalError | 400 | |

A request that fails validation answers 422 with FastAPI's list of `{"loc", "msg", "type"}`, without echoing
the input back (it may be huge, or not even representable in JSON, like a NaN). ZeroQuery (a composite
query whose parts cancel out) is such a failure, found only once the parts are encoded: the same 422 list,
at `["body"]`.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from retrieval.errors import (
    AudioDecodeError,
    AudioTooLong,
    CheckpointMismatch,
    ClipNotFound,
    ModelNotFound,
    RetrievalError,
    StorageFull,
    ZeroQuery,
)

log = logging.getLogger(__name__)

STATUS_OF = {
    AudioTooLong: 413,
    AudioDecodeError: 415,
    ClipNotFound: 404,
    CheckpointMismatch: 409,
    ModelNotFound: 503,
    StorageFull: 507,
    RetrievalError: 400,
}


def status_for(error: RetrievalError) -> int:
    """The status of the most specific class in STATUS_OF the error is an instance of."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


async def retrieval_error_handler(request: Request, error: RetrievalError) -> JSONResponse:
    status = status_for(error)
    log.log(logging.ERROR if status >= 500 else logging.INFO, "%s %s -> %d %s: %s", request.method,
            request.url.path, status, type(error).__name__, error)
    return JSONResponse({"detail": str(error)}, status_code=status)


async def validation_error_handler(request: Request, error: RequestValidationError) -> JSONResponse:
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in error.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def zero_query_handler(request: Request, error: ZeroQuery) -> JSONResponse:
    issue = {"loc": ("body",), "msg": str(error), "type": "zero_query"}
    return await validation_error_handler(request, RequestValidationError([issue]))


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types handlers as taking any Exception; each of these is registered for its own class only
    app.add_exception_handler(RetrievalError, retrieval_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(ZeroQuery, zero_query_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error_handler)  # type: ignore[arg-type]
