"""The API key: sent as `X-API-Key` or `Authorization: Bearer`, compared in constant time, never logged.

Writes always need the configured key; reads need it only with `protect_reads`. Without a configured key,
writes are refused (403) with a message saying how to set one.
"""

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.errors import KeyRefused, KeyRequired
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


def check_key(settings: Settings, presented: str | None, *, what: str) -> None:
    """KeyRefused without a configured key or with a wrong one; KeyRequired without a presented one."""
    if settings.api_key is None or not settings.api_key.get_secret_value():
        raise KeyRefused(NO_KEY_CONFIGURED.format(what=what))
    if not presented:
        raise KeyRequired(KEY_MISSING)
    expected = settings.api_key.get_secret_value().encode()
    if not hmac.compare_digest(presented.encode(), expected):
        raise KeyRefused(KEY_WRONG)


def _key(header_key: Annotated[str | None, Security(api_key_header)],
         credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> str | None:
    return presented_key(header_key, credentials)


def require_write(request: Request, key: Annotated[str | None, Depends(_key)]) -> None:
    check_key(request.app.state.settings, key, what="uploads, edits and deletes")


def require_read(request: Request, key: Annotated[str | None, Depends(_key)]) -> None:
    settings: Settings = request.app.state.settings
    if settings.protect_reads:
        check_key(settings, key, what="reads")


WriteAccess = Depends(require_write)
ReadAccess = Depends(require_read)
