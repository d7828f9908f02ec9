"""GET /health/live and GET /health/ready."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from app.deps import CollectionDep, IngestDep, RetrieverDep, SettingsDep
from app.schemas.common import ErrorOut
from app.schemas.health import AccessInfo, KeyAccess, Liveness, ModelInfo, Readiness
from app.security import key_sent, key_state

router = APIRouter(prefix="/health", tags=["health"])


@router.head("/live", include_in_schema=False)  # what monitors send first; the GET's headers
@router.get("/live", summary="The process is up", description="Answers as soon as the server runs; "
            "for a liveness probe. Never needs a key.")
async def live() -> Liveness:
    return Liveness(status="ok")


@router.head("/ready", include_in_schema=False)
@router.get("/ready", summary="Models and index are loaded; which model is serving",
            responses={503: {"model": ErrorOut, "description": "still loading"},
                       409: {"model": ErrorOut, "description": "the index was re-projected with another "
                                                               "model by another process: restart"}},
            description="200 once the PaSST tagger, the text encoder, the head and the index are loaded, "
                        "with the model's spec and id (head `zero-shot` without a trained checkpoint), the "
                        "number of clips, the access rules and whether the worker tagging uploads runs. "
                        "Never needs a key.")
async def ready(retriever: RetrieverDep, collection: CollectionDep, settings: SettingsDep,
                ingest: IngestDep) -> Readiness:
    model = ModelInfo(kind="zero-shot" if retriever.spec.zero_shot else "checkpoint", id=retriever.spec.id,
                      spec=retriever.spec.to_dict())
    access = AccessInfo(writes_enabled=bool(settings.api_key and settings.api_key.get_secret_value()),
                        protect_reads=settings.protect_reads)
    await run_in_threadpool(collection.store.check_current)  # 409 once re-projected by another process
    return Readiness(status="ready", model=model, clips=await run_in_threadpool(collection.count),
                     access=access, ingest_worker="running" if ingest.worker_running() else "stopped")


@router.get("/access", summary="What the API key sent may do", openapi_extra={"security": [{}]},  # optional
            description="Whether the key sent (as `X-API-Key` or `Authorization: Bearer`) is this server's, "
                        "and so whether uploads, edits and deletes, and reads, are allowed with it; nothing "
                        "else is done. Never refuses: a wrong key is an answer here, not a 403. Never "
                        "needs a key.")
async def access(settings: SettingsDep, key: Annotated[str | None, Depends(key_sent)]) -> KeyAccess:
    state = key_state(settings, key)
    return KeyAccess(key=state, writes=state == "valid", reads=state == "valid" or not settings.protect_reads)
