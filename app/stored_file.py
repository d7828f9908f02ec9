"""A clip's whole file as a response, by RFC 9110's rules for ranges and conditional requests.

Starlette's FileResponse sends the file and its byte ranges; this settles first what it is asked:
- `Range` (section 14.2): a header that is not a set of byte ranges (another unit, a reversed or garbled
  range, none at all) is ignored and the whole file sent, as the RFC asks; its empty list elements
  (`bytes=0-9,`) are skipped, as section 5.6.1.2 says a recipient must; of a valid set, the ranges that
  start within the file are served and the others dropped (a set is satisfiable when one of its ranges
  is), and a set of none is 416 with `Content-Range: bytes */size`.
- `If-Match` (13.1.1, strong comparison) or, without it, `If-Unmodified-Since` (13.1.4): 412 when the file
  is no longer the version the client names (evaluated first, section 13.2.2).
- `If-None-Match` (13.1.2, weak comparison) or, without it, `If-Modified-Since` (13.1.3): 304 with the
  validators and no body when the file has not changed since.
- `If-Range` (13.1.5): a Range is served only when it names the file as it is by its strong ETag, else
  ignored and the whole file sent (a date is not trusted: Last-Modified counts whole seconds).
The preconditions are evaluated before the Range (section 13.2.2): a request naming another version of the
file is 412, and one holding the file 304, whatever its Range asks for.
Dates are read in each of the three forms of section 5.6.7, all of them GMT (asctime's names no zone).
"""

import os
import re
from datetime import UTC
from email.utils import parsedate_to_datetime

import anyio
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from app.errors import RangeNotSatisfiable, retrieval_error_handler

BYTE_RANGES = re.compile(r"bytes\s*=([\d\s,-]*)", re.IGNORECASE)  # a list, its elements checked apart
RANGE_SPEC = re.compile(r"(\d*)\s*-\s*(\d*)")
KEPT_ON_304 = ("etag", "last-modified", "cache-control", "content-location", "expires", "vary")


def _number(digits: str) -> tuple[int, str]:
    """A run of digits, comparable as the number it spells whatever its length (no int() of 5,000 digits)."""
    digits = digits.lstrip("0") or "0"
    return len(digits), digits


def usable_range(header: str | None, size: int) -> str | None:
    """The `Range` to serve from a file of `size` bytes: None to send the whole file (no header, or one that
    is not a set of byte ranges), else the byte ranges of the header that start within the file;
    RangeNotSatisfiable when none does (a suffix of 0 bytes does not, nor does any range of an empty
    file)."""
    if header is None or (match := BYTE_RANGES.fullmatch(header.strip())) is None:
        return None
    specs = [RANGE_SPEC.fullmatch(element.strip()) for element in match.group(1).split(",")
             if element.strip()]  # an empty element (`bytes=0-9,`, `bytes=,0-9`) is no range
    if not specs or any(spec is None for spec in specs):
        return None
    spans = [(spec.group(1), spec.group(2)) for spec in specs if spec is not None]
    if any(first == last == "" or (first and last and _number(first) > _number(last))
           for first, last in spans):
        return None
    kept = [f"{first}-{last}" for first, last in spans
            if size and (_number(first) < _number(str(size)) if first else _number(last) > _number("0"))]
    if not kept:
        raise RangeNotSatisfiable(header, size)
    return "bytes=" + ",".join(kept)


def _etags(header: str) -> list[str]:
    """The entity tags of an If-None-Match header, weak ones without their W/ (weak comparison)."""
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def http_date(text: str) -> float | None:
    """An HTTP date (IMF-fixdate, RFC 850 or asctime: all GMT) as a POSIX time; None for one that is none."""
    try:
        when = parsedate_to_datetime(text)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def precondition_failed(request: Headers, etag: str, mtime: float) -> bool:
    """Whether the client asked for the file only as a version it no longer is: an If-Match none of whose
    tags is the file's (strong comparison: a weak tag never matches), or else an If-Unmodified-Since
    before its last change (an invalid date is ignored)."""
    if (tags := request.get("if-match")) is not None:
        listed = [tag.strip() for tag in tags.split(",") if tag.strip()]
        return not ("*" in listed or (not etag.startswith("W/") and etag in listed))
    if (since := request.get("if-unmodified-since")) is not None:
        when = http_date(since)
        return when is not None and int(mtime) > when
    return False


def not_modified(request: Headers, etag: str, mtime: float) -> bool:
    """Whether the client's copy, by its If-None-Match or else its If-Modified-Since, is the file's."""
    if (tags := request.get("if-none-match")) is not None:
        return "*" in _etags(tags) or etag.removeprefix("W/") in _etags(tags)
    if (since := request.get("if-modified-since")) is not None:
        when = http_date(since)
        return when is not None and int(mtime) <= when
    return False


def range_applies(request: Headers, etag: str) -> bool:
    """Whether the request's Range is to be served: it has no If-Range, or its If-Range is the file's strong
    ETag. Otherwise it gets the whole file (RFC 9110 13.1.5): a tag of another version, or a date, which is
    not trusted (Last-Modified counts whole seconds: a file written again within the second keeps it, and
    the parts of two versions would be joined)."""
    if (validator := request.get("if-range")) is None:
        return True
    return validator.strip() == etag and not etag.startswith("W/")


class StoredFile(FileResponse):
    """FileResponse, answering conditional requests and serving only the usable part of the request's Range,
    in RFC 9110's order (13.2.2): If-Match / If-Unmodified-Since (412), If-None-Match / If-Modified-Since
    (304), then If-Range and Range (206, or 416 when no range starts within the file)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.stat_result is None:
            self.stat_result = await anyio.to_thread.run_sync(os.stat, self.path)
            self.set_stat_headers(self.stat_result)
        asked = Headers(scope=scope)
        if precondition_failed(asked, self.headers["etag"], self.stat_result.st_mtime):
            said = {"detail": "the file is no longer the version the request names (If-Match, "
                              "If-Unmodified-Since)"}
            refused = JSONResponse(said, status_code=412, headers={"etag": self.headers["etag"]})
            await refused(scope, receive, send)
            return
        if not_modified(asked, self.headers["etag"], self.stat_result.st_mtime):
            kept = {k: v for k, v in self.headers.items() if k in KEPT_ON_304}
            await Response(status_code=304, headers=kept)(scope, receive, send)
            return
        try:
            byte_range = self._byte_range(asked)
        except RangeNotSatisfiable as error:  # answered as the app answers it anywhere (app/errors.py)
            await (await retrieval_error_handler(Request(scope, receive), error))(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]
        if byte_range is not None:
            headers.append((b"range", byte_range.encode("latin-1")))
        await super().__call__({**scope, "headers": headers}, receive, send)

    def _byte_range(self, asked: Headers) -> str | None:
        """The Range to serve (None: the whole file), once the preconditions hold; RangeNotSatisfiable when
        the request's applicable Range has no range starting within the file."""
        if not range_applies(asked, self.headers["etag"]):
            return None
        assert self.stat_result is not None  # set by __call__ before it asks
        return usable_range(asked.get("range"), self.stat_result.st_size)
