"""GET /health/live and GET /health/ready."""

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from app.deps import CollectionDep, RetrieverDep, SettingsDep
from app.schemas.common import ErrorOut
from app.schemas.health import AccessInfo, Liveness, ModelInfo, Readiness

router = APIRouter(prefix="/health", tags=["health"])


@router.head("/live", include_in_schema=False)  # what monitors send first; the GET's headers
@router.get("/live", summary="The process is up", description="Answers as soon as the server runs; "
            "for a liveness probe. Never needs a key.")
async def live() -> Liveness:
    return Liveness(status="ok")


@router.head("/ready", include_in_schema=False)
@router.get("/ready", summary="Models and index are loaded; which model is serving",
            responses={503: {"model": ErrorOut, "description": "still loading"}},
            description="200 once the PaSST tagger, the text encoder, the head and the index are loaded, "
                        "with the model's spec and id (head `zero-shot` without a trained checkpoint), the "
                        "number of clips and the access rules. Never needs a key.")
async def ready(retriever: RetrieverDep, collection: CollectionDep, settings: SettingsDep) -> Readiness:
    model = ModelInfo(kind="zero-shot" if retriever.spec.zero_shot else "checkpoint", id=retriever.spec.id,
                      spec=retriever.spec.to_dict())
    access = AccessInfo(writes_enabled=bool(settings.api_key and settings.api_key.get_secret_value()),
                        protect_reads=settings.protect_reads)
    return Readiness(status="ready", model=model, clips=await run_in_threadpool(collection.count),
                     access=access)
