"""What the API tells about the SFTP server."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SftpHostKey(BaseModel):
    algorithm: str = Field(description="Key type, e.g. `ssh-ed25519`.")
    fingerprint: str = Field(
        description="SHA-256 fingerprint as `ssh` shows it at the first connection "
        "(`SHA256:` and base64): compare before you answer yes."
    )


class SftpInfo(BaseModel):
    """The SFTP server: where it listens and how clients recognise it."""

    enabled: bool = Field(description="Whether SFTP is on (setting `sftp_port`, 0 is off).")
    running: bool = Field(description="Whether it is listening.")
    host: str = Field(description="The address it listens on (setting `sftp_host`).")
    port: int = Field(description="Its TCP port.")
    host_keys: list[SftpHostKey] = Field(description="The server's host keys.")
    connections: int = Field(description="SSH connections now (also those logging in).")
    sessions: int = Field(description="SFTP sessions now.")
    failed_logins: int = Field(description="Refused password logins since the daemon started.")
    lockouts: int = Field(description="Addresses or user names locked out since the start.")
