"""SMB settings and status, and share snapshots."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import PlainTextResponse

from speicher.api.deps import ServicesDep
from speicher.protection.models import SnapshotCreate, SnapshotInfo
from speicher.protocols.smb.models import SmbSettingsInfo, SmbSettingsUpdate, SmbStatusInfo

router = APIRouter()


@router.get("/smb", tags=["smb"], summary="Global SMB settings")
def smb_settings(services: ServicesDep) -> SmbSettingsInfo:
    return services.smb.get_settings()


@router.patch("/smb", tags=["smb"], summary="Change global SMB settings")
def update_smb_settings(req: SmbSettingsUpdate, services: ServicesDep) -> SmbSettingsInfo:
    return services.smb.update_settings(req)


@router.get("/smb/status", tags=["smb"], summary="Connected SMB clients and open files")
def smb_status(services: ServicesDep) -> SmbStatusInfo:
    return services.smb.status()


@router.get(
    "/smb/config",
    tags=["smb"],
    summary="The effective smb.conf",
    response_class=PlainTextResponse,
)
def smb_config(services: ServicesDep) -> str:
    return services.smb.render_text()


@router.get("/shares/{name}/snapshots", tags=["snapshots"], summary="List a share's snapshots")
def list_snapshots(name: str, services: ServicesDep) -> list[SnapshotInfo]:
    return services.snapshots.list(name)


@router.post(
    "/shares/{name}/snapshots", tags=["snapshots"], status_code=201, summary="Take a snapshot"
)
def create_snapshot(name: str, req: SnapshotCreate, services: ServicesDep) -> SnapshotInfo:
    return services.snapshots.create(name, req.name)


@router.get("/shares/{name}/snapshots/{snapshot}", tags=["snapshots"], summary="Show a snapshot")
def get_snapshot(name: str, snapshot: str, services: ServicesDep) -> SnapshotInfo:
    return services.snapshots.get(name, snapshot)


@router.delete(
    "/shares/{name}/snapshots/{snapshot}",
    tags=["snapshots"],
    status_code=204,
    summary="Delete a snapshot",
)
def delete_snapshot(name: str, snapshot: str, services: ServicesDep) -> Response:
    services.snapshots.delete(name, snapshot)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
