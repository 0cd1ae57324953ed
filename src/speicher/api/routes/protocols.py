"""SMB settings and status; the SFTP server's port and host keys."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from speicher.api.deps import ServicesDep
from speicher.protocols.sftp.models import SftpInfo
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


@router.get("/sftp", tags=["sftp"], summary="The SFTP server: port, host key fingerprints")
def sftp_info(services: ServicesDep) -> SftpInfo:
    return services.sftp.info()
