"""The ingest queue: GET /jobs/{id}, GET /jobs, DELETE /jobs/{id}."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.deps import CollectionDep, IngestDep, audio_url
from app.errors import NoSuchJob
from app.routes.search import READ_ERRORS
from app.schemas.clips import clip_out
from app.schemas.common import ErrorOut, PageLimit, PageOffset, Responses
from app.schemas.jobs import JobId, JobOut, JobPage, JobStatus, job_out
from app.security import ReadAccess, WriteAccess
from index.collection import Collection
from index.ingest.jobs import Job
from index.ingest.queue import JobQueue

router = APIRouter(tags=["jobs"])

JOB_NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "no job with this id"}}
POLL_S = 0.1


def job_view(request: Request, collection: Collection, job: Job) -> JobOut:
    """The job with its clip's record once done."""
    record = collection.get(job.clip_id) if job.clip_id is not None else None
    clip = clip_out(record, audio_url=audio_url(request, record.id)) if record is not None else None
    return job_out(job, clip=clip)


async def wait_for(queue: JobQueue, job: Job, timeout_s: float) -> Job:
    """The job once done or failed, or as it is after `timeout_s` (polled without holding a thread)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while job.active and loop.time() < deadline:
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - loop.time())))
        latest: Job | None = await run_in_threadpool(queue.get, job.id)
        job = latest or job
    return job


def get_job_or_404(queue: JobQueue, job_id: int) -> Job:
    job = queue.get(job_id)
    if job is None:
        raise NoSuchJob(job_id)
    return job


@router.get("/jobs/{job_id}", name="job", summary="One upload's indexing job",
            responses={**READ_ERRORS, **JOB_NOT_FOUND}, dependencies=[ReadAccess],
            description="Status (`queued`, `running` with progress in PaSST windows, `done` with the clip's "
                        "record, `failed` with the reason) of an upload acknowledged by `POST /audio`.")
async def get_job(job_id: JobId, request: Request, ingest: IngestDep, collection: CollectionDep) -> JobOut:
    job = await run_in_threadpool(get_job_or_404, ingest.queue, job_id)
    return await run_in_threadpool(job_view, request, collection, job)


@router.get("/jobs", summary="The indexing jobs, a page at a time", responses=READ_ERRORS,
            dependencies=[ReadAccess], description="Oldest first; `status` keeps only jobs in that state.")
async def list_jobs(request: Request, ingest: IngestDep, collection: CollectionDep,
                    status: Annotated[JobStatus | None, Query(description="only jobs in this state")] = None,
                    offset: PageOffset = 0, limit: PageLimit = 50) -> JobPage:
    def page() -> JobPage:
        total = ingest.queue.count(status)
        jobs = ingest.queue.list(status=status, offset=offset, limit=limit) if offset < total else []
        return JobPage(total=total, offset=offset, limit=limit,
                       items=[job_view(request, collection, j) for j in jobs])

    return await run_in_threadpool(page)


@router.delete("/jobs/{job_id}", status_code=204, summary="Cancel a queued upload (needs the API key)",
               dependencies=[WriteAccess],
               responses={**JOB_NOT_FOUND, 401: {"model": ErrorOut, "description": "no API key was sent"},
                          403: {"model": ErrorOut, "description": "wrong key, or none configured"},
                          409: {"model": ErrorOut, "description": "the job is running or over: only a queued "
                                                                  "job can be cancelled"}},
               description="Removes a queued job and its stored bytes; nothing is indexed.")
async def cancel_job(job_id: JobId, ingest: IngestDep) -> Response:
    job = await run_in_threadpool(ingest.cancel, job_id)  # JobNotCancellable: 409
    if job is None:
        raise NoSuchJob(job_id)
    return Response(status_code=204)
