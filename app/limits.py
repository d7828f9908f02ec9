"""The request body's limits: its size, enforced without holding a body in memory; its pace; a JSON body's
encoding.

A declared `Content-Length` over the limit is answered 413 before anything is read; a body that streams
past the limit (chunked, or lying about its length) is cut off with 413 as soon as the count passes it. A
body of which nothing arrives for BODY_IDLE_S is answered 408 and its connection closed. A JSON body is
UTF-8 text (RFC 8259 8.1), or 400.
"""

import asyncio
import json

from fastapi import Depends, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BodyNotUtf8, BodyTimeout, BodyTooLarge, error_response

# a request body of which nothing arrives for this long, seconds, is answered 408: time enough for a client
# on a slow, lossy link to send its next packet; a module constant, as app/settings.py has no setting for it
BODY_IDLE_S = 60.0
# and one that arrives slower than this on average, bytes a second, once BODY_IDLE_S have passed: each byte
# buys 1/BODY_MIN_RATE s more (Apache's mod_reqtimeout's rule and its MinRate), so a client sending a byte
# a minute is not served forever; 500 B/s is 4 kbit/s, slower than any link an upload would come over
BODY_MIN_RATE = 500


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


def body_expected(scope: Scope) -> bool:
    """Whether the request declares a body (a Content-Length above 0, or chunked)."""
    return declared_length(scope) not in (None, 0) or "transfer-encoding" in Headers(scope=scope)


class BodyIdleLimit:
    """A request body that stops arriving is answered 408 (BodyTimeout) and its connection closed: each part
    must come within BODY_IDLE_S (read as each request comes) of the route asking for it, and the whole by
    BODY_IDLE_S after the first part was asked for plus 1/BODY_MIN_RATE s for each byte come. Uvicorn waits
    for a declared body as long as it takes, so a client that declares 100 bytes and sends 9 held a
    connection and a task forever (slowloris), and one sending a byte every 59 s still did. Once the body is
    whole, or the answer has started (a streamed answer listens for the client's disconnect, and no longer
    needs the body), receive() waits as long as it likes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        idle_s, min_rate = BODY_IDLE_S, BODY_MIN_RATE
        body_done, answering = not body_expected(scope), False
        started: float | None = None  # when the body was first asked for
        received = 0

        async def timed_receive() -> Message:
            nonlocal body_done, started, received
            if body_done or answering:
                return await receive()
            now = asyncio.get_running_loop().time()
            started = now if started is None else started
            left = idle_s + received / min_rate - (now - started)  # what its average pace has earned
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, min(idle_s, left)))
            except TimeoutError:
                if answering:  # the answer started meanwhile: wait for the client's disconnect as it asks
                    return await receive()
                # the limit that set the timeout says why: the idle one (on the first part, exactly
                # idle_s: nothing came at all) or the pace's; the route's exception handler answers 408
                raise (BodyTimeout(idle_s) if left >= idle_s else
                       BodyTimeout(idle_s, min_rate=min_rate, received=received)) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            received += len(message.get("body", b""))
            return message

        async def noting_send(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, timed_receive, noting_send)


UTF8 = ("utf-8", "utf-8-sig")  # a byte-order mark is ignored, as RFC 8259 allows (json.loads does)


async def require_utf8_json(request: Request) -> None:
    """A JSON body is UTF-8 text (RFC 8259 8.1), else BodyNotUtf8 (400). Python's json reads UTF-16 and
    UTF-32 as well (it guesses from the first bytes), and FastAPI with it, so a body in either was served
    as if it were UTF-8; bytes UTF-8 does not have fail the parse itself (app/errors.py says so). A
    dependency, after the route's key check: the body has been read (and parsed) by then."""
    body = await request.body()
    if body and (encoding := json.detect_encoding(body)) not in UTF8:
        raise BodyNotUtf8(f"it is {encoding.upper()}")


Utf8Json = Depends(require_utf8_json)

DRAIN_BYTES = 64 * 1024 * 1024  # of a body an early answer left unread, at most this much is read and dropped
DRAIN_S = 30.0  # and for at most this long


class DrainUnreadBody:
    """A request answered before its body was read (an upload refused for its key or its size) has the rest
    of its body read and dropped, up to DRAIN_BYTES and DRAIN_S, before its answer is closed: a client that
    sends its whole body before it reads (Python's urllib, many scripts) then reads the answer instead of a
    connection reset. The answer is not delayed: all of it is sent at once, and only its end (an empty last
    chunk) waits for the body. An answer that closes the connection (`Connection: close`: a body that
    stopped arriving, 408) does not wait for the rest of a body that is not coming."""

    def __init__(self, app: ASGIApp, max_bytes: int = DRAIN_BYTES, max_s: float = DRAIN_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_s = max_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done, closing = not body_expected(scope), False

        async def tracking_receive() -> Message:
            nonlocal body_done
            message = await receive()
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def holding_send(message: Message) -> None:
            nonlocal closing
            if message["type"] == "http.response.start":
                closing = any(k.lower() == b"connection" and b"close" in v.lower()
                              for k, v in message.get("headers", []))
            if message["type"] == "http.response.body" and not message.get("more_body", False) \
                    and not body_done and not closing:
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
