"""The request-body size limit, enforced without holding a body in memory.

A declared `Content-Length` over the limit is answered 413 before anything is read; a body that streams
past the limit (chunked, or lying about its length) is cut off with 413 as soon as the count passes it.
"""

import asyncio

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


DRAIN_BYTES = 64 * 1024 * 1024  # of a body an early answer left unread, at most this much is read and dropped
DRAIN_S = 30.0  # and for at most this long


class DrainUnreadBody:
    """A request answered before its body was read (an upload refused for its key or its size) has the rest
    of its body read and dropped, up to DRAIN_BYTES and DRAIN_S, before its answer is closed: a client that
    sends its whole body before it reads (Python's urllib, many scripts) then reads the answer instead of a
    connection reset. The answer is not delayed: all of it is sent at once, and only its end (an empty last
    chunk) waits for the body."""

    def __init__(self, app: ASGIApp, max_bytes: int = DRAIN_BYTES, max_s: float = DRAIN_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_s = max_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = declared_length(scope) in (None, 0) and "transfer-encoding" not in Headers(scope=scope)

        async def tracking_receive() -> Message:
            nonlocal body_done
            message = await receive()
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def holding_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False) \
                    and not body_done:
                await send({**message, "more_body": True})
                await self._drain(receive)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, tracking_receive, holding_send)

    async def _drain(self, receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        deadline, read = loop.time() + self.max_s, 0
        while read <= self.max_bytes:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return  # the client went away
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
