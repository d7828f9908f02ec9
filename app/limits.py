"""The request-body size limit, enforced without holding a body in memory.

A declared `Content-Length` over the limit is answered 413 before anything is read; a body that streams
past the limit (chunked, or lying about its length) is cut off with 413 as soon as the count passes it.
"""

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BodyTooLarge, error_response


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
            error = BodyTooLarge(self.max_bytes)  # outside the routes' exception handlers: answered here
            await error_response(error.status_code, error.detail)(scope, receive, send)
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
