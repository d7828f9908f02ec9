"""What routes get from `app.state`, as `Annotated` dependencies; tests swap them through overrides."""

from typing import Annotated

from fastapi import Depends, Request

from app.errors import NotReady
from app.ingest import Ingest
from app.observability import ServiceMetrics
from app.security import signed
from app.settings import Settings
from index.collection import Collection
from retrieval.pipeline import Retriever

NOT_READY = "the service is still loading its models and index"


def _loaded(request: Request, name: str):
    value = getattr(request.app.state, name, None)
    if value is None:
        raise NotReady(NOT_READY)
    return value


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_collection(request: Request) -> Collection:
    return _loaded(request, "collection")


def get_retriever(request: Request) -> Retriever:
    return _loaded(request, "retriever")


def get_ingest(request: Request) -> Ingest:
    return _loaded(request, "ingest")


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
CollectionDep = Annotated[Collection, Depends(get_collection)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
IngestDep = Annotated[Ingest, Depends(get_ingest)]


def audio_url(request: Request, clip_id: int) -> str:
    """Root-relative URL of a clip's audio, so it works behind a proxy that keeps the path; with protected
    reads a signed link (app/security.py), which reads the audio without the key until it expires."""
    path = str(request.app.url_path_for("audio_file", clip_id=clip_id))
    return request.scope.get("root_path", "") + signed(request.app.state.settings, path)
