"""Jobs, events and the daemon itself."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from speicher import __version__
from speicher.api.deps import ServicesDep
from speicher.events import EventInfo
from speicher.events.models import AlertConditionInfo
from speicher.jobs import JobInfo
from speicher.preferences import PreferencesInfo, PreferencesUpdate
from speicher.services import Services
from speicher.tls import CertificateInfo, CertificateStore, CertificateUpload

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


@router.get("/system/preferences", tags=["system"], summary="Box-wide preferences")
def preferences(services: ServicesDep) -> PreferencesInfo:
    return services.preferences.get()


@router.patch("/system/preferences", tags=["system"], summary="Change box-wide preferences")
def update_preferences(req: PreferencesUpdate, services: ServicesDep) -> PreferencesInfo:
    """The time zone the web console shows times in (schedules stay in UTC)."""
    return services.preferences.update(req)


class PoolStatus(BaseModel):
    name: str = Field(description="Pool name.")
    health: str = Field(description="`ok`, `degraded` or `unavailable`.")
    size: int = Field(description="Usable bytes.")
    used: int = Field(description="Bytes used.")
    problem: str = Field(description="What is wrong, if anything.")


class ServiceStatus(BaseModel):
    name: str = Field(description="`api`, `smb` or `sftp` (more as protocols are added).")
    running: bool = Field(description="Whether it is up.")
    addresses: list[str] = Field(description="Where clients reach it.")


class StatusInfo(BaseModel):
    """One screen about the whole box."""

    version: str = Field(description="Speicher's version.")
    pools: list[PoolStatus] = Field(description="Every pool and its health.")
    services: list[ServiceStatus] = Field(description="The services and their addresses.")
    alerts: list[AlertConditionInfo] = Field(description="Conditions that have not ended.")
    running_jobs: list[JobInfo] = Field(description="Long operations under way.")


@router.get("/system/status", tags=["system"], summary="Version, pools, services, alerts")
def system_status(services: ServicesDep) -> StatusInfo:
    settings = services.settings
    smb = services.smb.get_settings()
    return StatusInfo(
        version=__version__,
        pools=[
            PoolStatus(name=p.name, health=p.health, size=p.size, used=p.used, problem=p.problem)
            for p in services.pools.list()
        ],
        services=[
            ServiceStatus(
                name="api",
                running=True,
                addresses=[f"https://{settings.https_host}:{settings.https_port}/api/v1"]
                + (
                    [f"http://{settings.http_host}:{settings.http_port}/api/v1"]
                    if settings.http_port
                    else []
                ),
            ),
            ServiceStatus(name="smb", running=smb.running, addresses=[f"port {smb.port}"]),
            *_sftp_status(services),
            *_s3_status(services),
        ],
        alerts=services.alerts.active(),
        running_jobs=services.jobs.list(50, "running"),
    )


def _sftp_status(services: Services) -> list[ServiceStatus]:
    sftp = services.sftp.info()
    if not sftp.enabled:
        return []
    return [ServiceStatus(name="sftp", running=sftp.running, addresses=[f"port {sftp.port}"])]


def _s3_status(services: Services) -> list[ServiceStatus]:
    """S3 runs in the daemon's event loop beside the API, on a port bound before the start
    went on: when the API answers, so does S3 (unless ``s3_port`` is 0)."""
    settings = services.settings
    if not settings.s3_port:
        return []
    scheme = "https" if settings.s3_tls else "http"
    return [
        ServiceStatus(
            name="s3", running=True, addresses=[f"{scheme}://{settings.s3_host}:{settings.s3_port}"]
        )
    ]


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
def get_job(job_id: JobId, services: ServicesDep) -> JobInfo:
    return services.jobs.get(job_id)


@router.get("/events", tags=["events"], summary="List events, newest first")
def list_events(
    services: ServicesDep,
    limit: int = Query(100, ge=1, le=10000),
    kind: str | None = Query(None, description="Only kinds starting with this, e.g. `pool.`"),
) -> list[EventInfo]:
    return services.events.list(limit, kind)
