"""GET /audio/{id}/peaks: a clip's waveform overview, for the page to draw."""

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from app.deps import CollectionDep
from app.routes.audio import NOT_FOUND, get_or_404
from app.routes.search import READ_ERRORS
from app.schemas.clips import ClipId, PeaksOut
from app.security import ReadAccess

router = APIRouter(tags=["audio"], dependencies=[ReadAccess])


@router.get("/audio/{clip_id}/peaks", summary="A clip's waveform overview",
            responses={**READ_ERRORS, **NOT_FOUND},
            description="The peak amplitude of each of a few hundred equal slices of the clip, computed "
                        "once when it was indexed (null for a clip indexed before they were kept).")
async def clip_peaks(clip_id: ClipId, collection: CollectionDep) -> PeaksOut:
    record = await run_in_threadpool(get_or_404, collection, clip_id)
    peaks = await run_in_threadpool(collection.store.peaks, clip_id)
    return PeaksOut(id=record.id, duration=record.duration, peaks=None if peaks is None else peaks.tolist())
