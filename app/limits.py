"""The request-body size limit, enforced without holding a body in memory.

A declared `Content-Length` over the limit is answered 413 before anything is read; a body that streams
past the limit (chunked, or lying about its length) is cut off with 413 as soon as the count passes it.
"""

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE = "the upload is larger than this server's limit of {limit} bytes (RETRIEVAL_MAX_UPLOAD_BYTES)"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, TOO_LARGE.format(limit=limit))


def declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            error = BodyTooLarge(self.max_bytes)
            await JSONResponse({"detail": error.detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # the route's exception handler answers 413
            return message

        await self.app(scope, counting_receive, send)
