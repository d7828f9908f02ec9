"""Reading one multipart upload after the route's access checks have passed.

Routes take the form from the request themselves (rather than as `File()` parameters, which FastAPI reads
before any dependency runs), so a request without a valid key is refused before its body is read.
"""

import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from app.errors import ClientGone, loc_part
from index.store.names import clip_name

# how clients escape a file name's characters in the part's header: a browser (WHATWG HTML, multipart/
# form-data) its `"`, LF and CR as %22, %0A and %0D; httpx and requests (urllib3) every control character as
# %00-%1F; none escapes `%` itself, so no other %XX is one
FILENAME_ESCAPED = re.compile("%(22|[01][0-9A-F])")
MAX_PARTS = 8  # of a form: text fields, and files (one is read: the others are refused by name, 422)
NO_FILE = ("send the audio as a multipart/form-data field named 'file' (none arrived whole: the field is "
           "missing, or the body ended before the part's closing boundary)")
FormT = TypeVar("FormT", bound=BaseModel)


@dataclass(frozen=True)
class Upload:
    data: bytes
    name: str  # a bare file name, never a path
    fields: dict[str, str]  # the form's other text fields


def multipart_body(form: type[BaseModel]) -> dict:
    """OpenAPI `requestBody` of a multipart form: a binary `file`, and the text fields `form` validates."""
    fields = {name: _form_field(prop) for name, prop in form.model_json_schema()["properties"].items()}
    schema = {"type": "object", "required": ["file"],
              "properties": {"file": {"type": "string", "format": "binary",
                                      "description": "WAV, FLAC, OGG (Vorbis/Opus) or MP3"}, **fields}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _form_field(prop: dict) -> dict:
    """A model field's JSON schema as a form field's: a form has no null (a field is sent or left out), so
    neither a `null` alternative nor a null default."""
    schema = {k: v for k, v in prop.items() if k != "default" or v is not None}
    options = [o for o in schema.pop("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    return schema


def form_of(model: type[FormT], fields: dict[str, str]) -> FormT:
    """The form's text fields as `model` reads them; 422 naming each malformed field."""
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])}
                                      for err in e.errors(include_url=False)]) from None


def bare_name(*names: str | None) -> str:
    """The last path component of the first of `names` that has one (whichever separator the client used;
    not `.` or `..`), as a clip's name is stored whichever way it comes in (index/store/names.py
    `clip_name`: composed form, tabs and line breaks as spaces, no other control characters or direction
    overrides, a lone surrogate as U+FFFD, at most MAX_NAME_CHARS); "upload" when none has. The whole name
    is cleaned before it is split (its spaces at either end too), then its last component."""
    for name in names:
        printable = clip_name(name or "", limit=None)
        base = clip_name(PureWindowsPath(PurePosixPath(printable).name).name)
        if base not in ("", ".", ".."):
            return base
    return "upload"


def unescaped_filename(filename: str | None) -> str | None:
    """A multipart part's file name as the client's file was named: its `%22` and `%00`-`%1F` (the escapes
    clients write for `"` and control characters, FILENAME_ESCAPED) read back, and no other %XX (a name may
    hold `%41`)."""
    return FILENAME_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), filename) if filename else filename


async def read_upload(request: Request) -> Upload:
    """The form's `file` (bounded by the body-size limit) and its text fields; 422 without a file, with a
    field sent twice (the file too), or with a file under another name (it would be dropped unread)."""
    try:
        form = await request.form(max_files=MAX_PARTS, max_fields=MAX_PARTS)
    except ClientDisconnect:
        raise ClientGone("the client went away before the upload arrived: nothing was stored") from None
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise RequestValidationError([{"loc": ("body", "file"), "msg": NO_FILE, "type": "missing"}])
        repeated = sorted({k for k, _ in form.multi_items() if len(form.getlist(k)) > 1})
        if repeated:  # which one was meant? (the last would win silently)
            raise RequestValidationError([{"loc": ("body", k), "type": "repeated",
                                           "msg": f"the field {loc_part(k)!r} is sent more than once"}
                                          for k in repeated])
        if stray := sorted({k for k, v in form.multi_items() if k != "file" and isinstance(v, UploadFile)}):
            raise RequestValidationError([{"loc": ("body", k), "type": "unexpected_file",
                                           "msg": "a file, where only the field 'file' takes one"}
                                          for k in stray])
        data = await file.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        # a blank `name`: the file's
        return Upload(data, bare_name(fields.get("name"), unescaped_filename(file.filename)), fields)
    finally:
        await form.close()
