"""Scrubs and disk health."""

from __future__ import annotations

from fastapi import APIRouter, Query

from speicher.api.deps import ServicesDep
from speicher.jobs import JobInfo
from speicher.protection.models import (
    DiskHealthInfo,
    ScrubInfo,
    ScrubSchedule,
    ScrubScheduleInfo,
)
from speicher.validation import Name

router = APIRouter()


@router.post(
    "/pools/{name}/scrub",
    tags=["pools"],
    status_code=202,
    summary="Scrub a pool: check every block against its checksum and repair (job)",
)
def start_scrub(name: Name, services: ServicesDep) -> JobInfo:
    return services.scrubs.start(name)


@router.get("/pools/{name}/scrubs", tags=["pools"], summary="A pool's scrubs, newest first")
def list_scrubs(
    name: str, services: ServicesDep, limit: int = Query(50, ge=1, le=1000)
) -> list[ScrubInfo]:
    return services.scrubs.list(name, limit)


@router.get("/pools/{name}/scrub-schedule", tags=["pools"], summary="When a pool is scrubbed")
def get_scrub_schedule(name: Name, services: ServicesDep) -> ScrubScheduleInfo:
    return services.scrubs.get_schedule(name)


@router.put(
    "/pools/{name}/scrub-schedule",
    tags=["pools"],
    summary="Set when a pool is scrubbed (cron, UTC; empty for never)",
)
def set_scrub_schedule(name: Name, req: ScrubSchedule, services: ServicesDep) -> ScrubScheduleInfo:
    return services.scrubs.set_schedule(name, req.schedule)


@router.get(
    "/disks/health",
    tags=["disks"],
    summary="Health of every pool disk: btrfs error counters and SMART",
)
def disk_health(services: ServicesDep) -> list[DiskHealthInfo]:
    return services.health.report(refresh=True)
