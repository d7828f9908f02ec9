"""What every role's models share: text a store can hold, the page bounds, the error bodies."""

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field

from app.errors import NoSuchClip
from app.limits import BODY_IDLE_S, BODY_MIN_RATE
from index.store.names import unstorable

MAX_PAGE = 500
INT64_MAX = 2**63 - 1  # the largest integer SQLite binds; ids start at 1 in both stores


def storable_text(v: str) -> str:
    """Text SQLite and Qdrant store as it was sent (index/store/names.py `unstorable`: no NUL, no lone
    surrogate); a user's metadata is held to more (app/schemas/clips.py, `checked_text`)."""
    if (why := unstorable(v)) is not None:
        raise ValueError(why)
    return v


PageOffset = Annotated[int, Query(ge=0, le=INT64_MAX, description="skip this many clips (past the end: an "
                                                                  "empty page)")]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]

Responses = dict[int | str, dict[str, Any]]  # a route's `responses=` (OpenAPI)


class ErrorOut(BaseModel):
    """Every error answers with one stable message."""

    detail: str = Field(description="what went wrong and, where possible, what to do",
                        examples=[str(NoSuchClip(42))])


class ValidationIssue(BaseModel):
    """One field that failed validation."""

    loc: list[str | int] = Field(description="where: body, query or path, then the field",
                                 examples=[["body", "k"]])
    msg: str = Field(description="what is wrong with it",
                     examples=["Input should be less than or equal to 100"])
    type: str = Field(description="pydantic's error type", examples=["less_than_equal"])


class ValidationOut(BaseModel):
    """A request that does not match the route's schema (422)."""

    detail: list[ValidationIssue] = Field(description="every field that failed, in order")


# a body the server could not read at all (one that is not JSON is a validation error: 422, json_invalid),
# one over the byte limit, which every route's body is held to, and one that stopped arriving
BODY_ERRORS: Responses = {
    400: {"model": ErrorOut, "description": "the body could not be read: not UTF-8 text (UTF-16 and "
                                            "UTF-32 are not), JSON nested too deep (a body that is not "
                                            "JSON answers 422, json_invalid)"},
    408: {"model": ErrorOut, "description": f"the body stopped arriving (nothing of it for {BODY_IDLE_S:g} "
                                            f"s), or came slower than {BODY_MIN_RATE} bytes a second after "
                                            "that: the connection is closed"},
    413: {"model": ErrorOut, "description": "the body is over RETRIEVAL_MAX_UPLOAD_BYTES"}}
