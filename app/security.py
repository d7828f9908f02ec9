"""The API key: sent as `X-API-Key` or `Authorization: Bearer`, compared in constant time, never logged.

Writes always need the configured key; reads need it only with `protect_reads`. Without a configured key,
writes are refused (403) with a message saying how to set one.

With `protect_reads`, the audio URLs the service hands out (a clip's file, a segment's excerpt) are signed
links: `?expires=<unix time>&token=<HMAC of the path and the time>`, under a secret derived from the API key.
Such a link reads that clip's audio without the key until it expires (`link_ttl_s`, 24 hours by default),
so a player, a DAW or a file manager given the URL (the page's drag-out) can fetch it; changing the key
revokes every link.
"""

import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import KeyRefused, KeyRequired, error_response
from app.settings import Settings

NO_KEY_CONFIGURED = ("this server has no API key configured, so {what} are disabled: "
                     "set RETRIEVAL_API_KEY and restart the service")
KEY_MISSING = "an API key is required: send it as the X-API-Key header or as Authorization: Bearer <key>"
KEY_WRONG = "the API key is not valid"

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key")
bearer = HTTPBearer(auto_error=False, description="the server's API key as a bearer token")


def presented_key(header_key: str | None, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if header_key:
        return header_key
    return credentials.credentials if credentials is not None else None


KeyState = Literal["valid", "wrong", "missing", "unconfigured"]


def key_state(settings: Settings, presented: str | None) -> KeyState:
    """The presented key against the configured one (compared in constant time)."""
    if settings.api_key is None or not settings.api_key.get_secret_value():
        return "unconfigured"
    if not presented:
        return "missing"
    expected = settings.api_key.get_secret_value().encode()
    return "valid" if hmac.compare_digest(presented.encode(), expected) else "wrong"


def check_key(settings: Settings, presented: str | None, *, what: str) -> None:
    """KeyRefused without a configured key or with a wrong one; KeyRequired without a presented one."""
    state = key_state(settings, presented)
    if state == "unconfigured":
        raise KeyRefused(NO_KEY_CONFIGURED.format(what=what))
    if state == "missing":
        raise KeyRequired(KEY_MISSING)
    if state == "wrong":
        raise KeyRefused(KEY_WRONG)


def key_sent(header_key: Annotated[str | None, Security(api_key_header)],
         credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> str | None:
    return presented_key(header_key, credentials)


def require_write(request: Request, key: Annotated[str | None, Depends(key_sent)]) -> None:
    check_key(request.app.state.settings, key, what="uploads, edits and deletes")


def require_read(request: Request, key: Annotated[str | None, Depends(key_sent)]) -> None:
    settings: Settings = request.app.state.settings
    if not settings.protect_reads:
        return
    if key is None and request.query_params.get("token") is not None:  # a signed link, or meant as one
        refused = _link_refusal(settings, request)
        if refused is None:
            return
        raise KeyRequired(f"{refused}: search again for a fresh link, or send the API key")
    check_key(settings, key, what="reads")


def _link_secret(settings: Settings) -> bytes | None:
    key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    return hmac.new(key.encode(), b"signed audio links", hashlib.sha256).digest() if key else None


def _link_token(secret: bytes, path: str, expires: int) -> str:
    return hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed(settings: Settings, path: str, *, now: float | None = None) -> str:
    """`path` (a route's path, without the proxy's root path) as a signed link when reads are protected
    (`?expires=...&token=...`, good for the settings' link_ttl_s), else as it is."""
    secret = _link_secret(settings)
    if not settings.protect_reads or secret is None:
        return path
    expires = int(time.time() if now is None else now) + settings.link_ttl_s
    return f"{path}?expires={expires}&token={_link_token(secret, path, expires)}"


def _link_refusal(settings: Settings, request: Request) -> str | None:
    """None when the request is a signed link to its own path, not expired; else why it is not one."""
    token, expires = request.query_params.get("token"), request.query_params.get("expires")
    secret = _link_secret(settings)
    if secret is None:
        return "this server signs no links (it has no API key)"
    if not token or not expires or not (expires.isascii() and expires.isdigit()) or len(expires) > 20:
        return "this signed link is incomplete (it needs `expires` and `token`)"
    path, root = request.scope["path"], request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    if not hmac.compare_digest(token.encode(), _link_token(secret, path, int(expires)).encode()):
        return "this signed link is not valid for this address (changed, or another clip's)"
    if int(expires) < time.time():
        return "this signed link has expired"
    return None


WriteAccess = Depends(require_write)
ReadAccess = Depends(require_read)


def say_reads_are_open(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Reads open (no `protect_reads`): the OpenAPI `security` of each read route of `routers` gets the empty
    alternative `{}`, as GET /health/access has, so the schema says what the server does: the key is
    optional there. Added to this app's schema once it is made; the routes themselves are shared by every
    app (FastAPI includes a router's routes, it does not copy them)."""
    reads = {(route.path_format, method.lower()) for router in routers for route in router.routes
             if isinstance(route, APIRoute) and require_read in {d.dependency for d in route.dependencies}
             for method in route.methods or ()}
    make_schema = app.openapi

    def schema_with_open_reads() -> dict[str, Any]:
        made = app.openapi_schema is not None  # FastAPI makes the schema once, then answers its copy
        schema = make_schema()
        for path, method in reads if not made else ():
            operation = schema["paths"].get(path, {}).get(method)
            if operation is not None and {} not in operation.setdefault("security", []):
                operation["security"].append({})
        return schema

    app.openapi = schema_with_open_reads  # type: ignore[method-assign]  # FastAPI's way to extend the schema


async def check_route_access(request: Request) -> None:
    """The access check of the request's route, run on its own: FastAPI parses a JSON body before a route's
    dependencies, so a body that is not JSON would be answered (422) before the key was looked at."""
    route = request.scope.get("route")
    checks = {d.dependency for d in getattr(route, "dependencies", ())} & {require_write, require_read}
    if checks:
        key = presented_key(await api_key_header(request), await bearer(request))
        for check in checks:
            check(request, key)


# on every answer: no sniffing a clip's bytes as another type, no framing of the page (whose forms take the
# API key) by another site, and no Referer carrying a signed link's token to another origin
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"referrer-policy", b"same-origin"))


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to every HTTP answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


CORS_REFUSALS = {"origin": "the Origin is not one of this server's RETRIEVAL_CORS_ORIGINS",
                 "method": "the method asked for is not one this API answers",
                 "headers": "a header asked for is not one the API takes (Authorization, X-API-Key, "
                            "Content-Type, Range)",
                 "private-network": "private network access is not allowed"}


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflight (400) says why in JSON, `{"detail": "..."}`,
    as every other error does, rather than as text ("Disallowed CORS origin, method")."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code != 400:
            return answer
        text = bytes(answer.body).decode()
        failures = text.removeprefix("Disallowed CORS ").split(", ") if text.startswith("Disallowed") else []
        why = "; ".join(CORS_REFUSALS.get(f, f) for f in failures) or text
        kept = {k: v for k, v in answer.headers.items() if k not in ("content-length", "content-type")}
        return error_response(400, f"the CORS preflight is refused: {why}", kept)
