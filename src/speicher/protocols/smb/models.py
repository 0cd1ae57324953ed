"""Shapes of the SMB settings and status in the API and the CLI's ``--json``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from speicher.validation import Request

Signing = Literal["default", "required"]


class SmbSettingsInfo(BaseModel):
    """Global SMB settings."""

    workgroup: str = Field(description="Windows workgroup name.")
    server_name: str = Field(description="NetBIOS name of the server; empty for the host name.")
    port: int = Field(description="TCP port smbd listens on (445 is the standard).")
    interfaces: list[str] = Field(description="Interfaces or addresses to listen on; empty: all.")
    running: bool = Field(description="Whether smbd is running.")
    min_protocol: str = Field(description="Lowest protocol offered (SMB1 never is).")
    signing: Signing = Field(
        description="`default`: clients sign if they want to (encrypted shares are protected "
        "anyway); `required`: every client must sign (Samba's `server signing = mandatory`)."
    )


class SmbSettingsUpdate(Request):
    workgroup: str | None = Field(None, description="New workgroup.")
    server_name: str | None = Field(None, description="New server name; empty for the host name.")
    port: int | None = Field(None, ge=1, le=65535, description="New port (restarts smbd).")
    interfaces: list[str] | None = Field(
        None, description="New interfaces (restarts smbd); empty list for all."
    )
    signing: Signing | None = Field(
        None, description="`required` to refuse clients that do not sign, or `default`."
    )


class SmbSessionInfo(BaseModel):
    user: str = Field(description="The Speicher user (or `nobody` for guests).")
    remote: str = Field(description="The client's address.")
    protocol: str = Field(description="SMB dialect, e.g. `SMB3_11`.")
    encryption: str = Field(description="Cipher in use, or empty.")
    pid: int = Field(description="The smbd process serving this client.")


class SmbOpenFileInfo(BaseModel):
    user: str = Field(description="Who has it open.")
    share_path: str = Field(description="The share's directory.")
    name: str = Field(description="The file, relative to the share.")


class SmbStatusInfo(BaseModel):
    running: bool = Field(description="Whether smbd is running.")
    sessions: list[SmbSessionInfo] = Field(description="Connected clients.")
    open_files: list[SmbOpenFileInfo] = Field(description="Files open over SMB.")
