"""Jobs, events and the daemon itself."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from speicher import __version__
from speicher.api.deps import ServicesDep
from speicher.events import EventInfo
from speicher.jobs import JobInfo
from speicher.tls import CertificateInfo, CertificateStore, CertificateUpload

router = APIRouter()


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


def _certificates(request: Request) -> CertificateStore:
    store: CertificateStore = request.app.state.certificates
    return store


@router.get("/system/certificate", tags=["system"], summary="Show the API's TLS certificate")
def show_certificate(request: Request) -> CertificateInfo:
    return _certificates(request).show()


# async: the live SSL context is re-loaded on the event loop, where handshakes happen; the
# checks and the writing run in a worker thread


@router.put(
    "/system/certificate",
    tags=["system"],
    summary="Replace the API's TLS certificate",
    description="Takes effect for new connections at once. The certificate must match the key "
    "and must not have expired.",
)
async def set_certificate(upload: CertificateUpload, request: Request) -> CertificateInfo:
    store = _certificates(request)
    info = await to_thread.run_sync(store.replace, upload)
    store.reload()
    return info


@router.post(
    "/system/certificate/generate",
    tags=["system"],
    summary="Replace the API's TLS certificate by a new self-signed one",
    description="Clients that pinned the old certificate will refuse the new one until "
    "they pin it again.",
)
async def generate_certificate(request: Request) -> CertificateInfo:
    store = _certificates(request)
    info = await to_thread.run_sync(store.regenerate)
    store.reload()
    return info


@router.get("/jobs", tags=["jobs"], summary="List jobs, newest first")
def list_jobs(
    services: ServicesDep,
    limit: int = Query(50, ge=1, le=1000),
    state: str | None = Query(None, description="`running`, `succeeded` or `failed`."),
) -> list[JobInfo]:
    return services.jobs.list(limit, state)


@router.get("/jobs/{job_id}", tags=["jobs"], summary="Show a job")
def get_job(job_id: int, services: ServicesDep) -> JobInfo:
    return services.jobs.get(job_id)


@router.get("/events", tags=["events"], summary="List events, newest first")
def list_events(
    services: ServicesDep,
    limit: int = Query(100, ge=1, le=10000),
    kind: str | None = Query(None, description="Only kinds starting with this, e.g. `pool.`"),
) -> list[EventInfo]:
    return services.events.list(limit, kind)
