"""The health probes' answers: the process is up; models and index are loaded, and which model serves."""

from typing import Any, Literal

from pydantic import BaseModel, Field


class Liveness(BaseModel):
    """The process is up (says nothing about the models)."""

    status: Literal["ok"] = Field(description="the process is up", examples=["ok"])


class ModelInfo(BaseModel):
    """Which model is serving."""

    kind: Literal["zero-shot", "checkpoint"] = Field(
        description="zero-shot (tag names only, lam = 0) or a trained head checkpoint",
        examples=["zero-shot"])
    id: str = Field(description="short hash of the model spec: equal ids, equal vectors",
                    examples=["3f2a9c0d1e4b5a69"])
    spec: dict[str, Any] = Field(description="the model spec: PaSST arch, windowing and weights sha256, text "
                                             "model, revision and dimension, head checkpoint sha256 (or "
                                             "'zero-shot') and lam")


class AccessInfo(BaseModel):
    """Who may do what on this server."""

    writes_enabled: bool = Field(description="an API key is configured, so uploads, edits and deletes can be "
                                             "made")
    protect_reads: bool = Field(description="searches and reads need the API key too")


class KeyAccess(BaseModel):
    """What the API key sent with the request may do here (a page checks a key typed in before keeping it)."""

    key: Literal["valid", "wrong", "missing", "unconfigured"] = Field(
        description="the key sent: this server's, not this server's, none sent, or the server has none "
                    "configured (no writes at all)", examples=["valid"])
    writes: bool = Field(description="uploads, edits and deletes are allowed with this key")
    reads: bool = Field(description="searches and reads are allowed with this key (or need none)")


class Readiness(BaseModel):
    """Models and index are loaded and the service can answer."""

    status: Literal["ready"] = Field(description="models and index are loaded", examples=["ready"])
    model: ModelInfo = Field(description="the model serving the searches")
    clips: int = Field(description="clips in the index", examples=[1200])
    access: AccessInfo = Field(description="what needs the API key on this server")
    ingest_worker: Literal["running", "stopped"] = Field(
        description="the worker that tags uploads: `stopped` when it has ended (its reason is in the log), "
                    "uploads are then acknowledged and kept in the queue, not tagged, until a restart",
        examples=["running"])

