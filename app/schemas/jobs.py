"""An upload's indexing job, and a page of them."""

from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from app.schemas.clips import ClipOut
from app.schemas.common import INT64_MAX
from index.ingest.jobs import Job

JobId = Annotated[int, Path(ge=1, le=INT64_MAX, description="the job's id (1 to 2^63 - 1)", examples=[7])]
JobStatus = Literal["queued", "running", "done", "failed"]


class JobProgress(BaseModel):
    """How far PaSST is through an upload's windows."""

    windows_done: int = Field(description="PaSST windows tagged so far", examples=[3])
    windows_total: int = Field(description="PaSST windows of the clip (10 s windows every 2.5 s)",
                               examples=[13])


class JobOut(BaseModel):
    """An upload acknowledged and being indexed: its bytes and its job are stored durably."""

    id: int = Field(description="the job's id (GET /jobs/{id})", examples=[7])
    status: JobStatus = Field(description="queued, running (see progress), done (see clip) or failed (see "
                                          "error)", examples=["running"])
    name: str = Field(description="the name the clip will be stored under", examples=["rain_on_roof.wav"])
    sha256: str = Field(description="of the uploaded bytes", examples=["9f2c" + "0" * 60])
    created: float = Field(description="when the upload was acknowledged, unix seconds",
                           examples=[1764680000.0])
    progress: JobProgress = Field(description="PaSST windows tagged of the clip's windows")
    clip: ClipOut | None = Field(description="the clip's record once done, else null")
    error: str | None = Field(description="why it failed (the decoder's reason), else null",
                              examples=[None])


class JobPage(BaseModel):
    """One page of jobs, oldest first."""

    total: int = Field(description="jobs with this status (all jobs without a status filter)", examples=[3])
    offset: int = Field(description="index of the first item on this page", examples=[0])
    limit: int = Field(description="the page size asked for", examples=[50])
    items: list[JobOut] = Field(description="the jobs of this page")



def job_out(job: Job, *, clip: ClipOut | None) -> JobOut:
    return JobOut(id=job.id, status=job.status, name=job.name, sha256=job.sha256,  # type: ignore[arg-type]
                  created=job.created, clip=clip, error=job.error,
                  progress=JobProgress(windows_done=job.windows_done, windows_total=job.windows_total))

