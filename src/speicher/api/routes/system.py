"""Jobs, events and the daemon itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from speicher import __version__
from speicher.api.deps import ServicesDep
from speicher.events import EventInfo
from speicher.jobs import JobInfo

router = APIRouter()

# SQLite's integers are 64 bits; a larger number would not even reach a query
JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The job's number.")]


class SystemInfo(BaseModel):
    version: str = Field(description="Speicher's version.")
    mount_root: str = Field(description="Where pools are mounted.")
    state_dir: str = Field(description="Where Speicher keeps its state.")


@router.get("/system", tags=["system"], summary="About this Speicher")
def system_info(services: ServicesDep) -> SystemInfo:
    return SystemInfo(
        version=__version__,
        mount_root=str(services.settings.mount_root),
        state_dir=str(services.settings.state_dir),
    )


@router.get("/jobs", tags=["jobs"], summary="List jobs, newest first")
def list_jobs(
    services: ServicesDep,
    limit: int = Query(50, ge=1, le=1000),
    state: str | None = Query(None, description="`running`, `succeeded` or `failed`."),
) -> list[JobInfo]:
    return services.jobs.list(limit, state)


@router.get("/jobs/{job_id}", tags=["jobs"], summary="Show a job")
def get_job(job_id: JobId, services: ServicesDep) -> JobInfo:
    return services.jobs.get(job_id)


@router.get("/events", tags=["events"], summary="List events, newest first")
def list_events(
    services: ServicesDep,
    limit: int = Query(100, ge=1, le=10000),
    kind: str | None = Query(None, description="Only kinds starting with this, e.g. `pool.`"),
) -> list[EventInfo]:
    return services.events.list(limit, kind)
