"""Ransomware detection in the API: a share's policy, incidents, and resolving one."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from speicher.validation import Request


class GuardInfo(BaseModel):
    """How a share is watched, and what happens when ransomware is suspected there."""

    share: str = Field(description="The share.")
    detect: bool = Field(description="Whether changes on the share are watched at all.")
    canary: bool = Field(description="Whether canary files are in its top folder and watched.")
    window: float = Field(description="Seconds over which the signals are counted.")
    renames: int = Field(description="Files renamed to one new extension that raise an incident.")
    overwrites: int = Field(
        description="Files overwritten with random-looking content that raise an incident."
    )
    deletes: int = Field(
        description="Files deleted after a copy with a new extension was made that raise one."
    )
    disable_user: bool = Field(
        description="Whether the user is disabled (every session ended) on an incident."
    )
    read_only: bool = Field(
        description="Whether the shares the user may write become read-only for everyone on "
        "an incident (until it is released)."
    )
    lock_days: int = Field(description="Days the incident's snapshot is locked.")


class GuardUpdate(Request):
    """Change what is given; the rest stays."""

    model_config = ConfigDict(extra="forbid")

    detect: bool | None = None
    canary: bool | None = None
    window: float | None = Field(None, ge=5, le=3600)
    renames: int | None = Field(None, ge=2, le=100_000)
    overwrites: int | None = Field(None, ge=2, le=100_000)
    deletes: int | None = Field(None, ge=2, le=100_000)
    disable_user: bool | None = None
    read_only: bool | None = None
    lock_days: int | None = Field(None, ge=0, le=3650)


class RestoreResult(BaseModel):
    """What ``resolve --restore`` did on one share."""

    share: str
    snapshot: str | None = Field(description="The snapshot from before the incident.")
    restored: int = Field(description="Files and folders put back as the snapshot has them.")
    removed: int = Field(description="Files the incident made (encrypted copies, notes) removed.")
    kept: list[str] = Field(description="Touched files left alone: changed later by someone else.")
    missing: list[str] = Field(
        description="Touched files the snapshot does not have and the incident did not make."
    )


class IncidentInfo(BaseModel):
    """Ransomware suspected: who, from where, what it touched and what was done."""

    id: int
    user: str = Field(description="The user whose sessions did it.")
    address: str = Field(description="The client's address.")
    protocol: str = Field(description="Over what it came: smb, webdav, sftp, s3, web.")
    share: str = Field(description="The share where a signal crossed its threshold.")
    signal: str = Field(description="`canary`, `renames`, `overwrites` or `deletes`.")
    detail: str = Field(description="The signal in words.")
    paths: list[str] = Field(description="Files that counted (at most 20).")
    first_seen: dt.datetime = Field(description="The first change that counted (UTC).")
    detected_at: dt.datetime = Field(description="When it was detected (UTC).")
    state: str = Field(description="`open` until the user is released, then `resolved`.")
    response: list[str] = Field(description="What Speicher did, a sentence each.")
    user_disabled: bool = Field(description="Whether the user was disabled.")
    snapshots: dict[str, str] = Field(
        description="Share -> the snapshot taken at detection (locked)."
    )
    read_only: list[str] = Field(description="Shares it made read-only (until released).")
    restored_at: dt.datetime | None = Field(description="When its files were rolled back.")
    restore: list[RestoreResult] = Field(description="What the rollback did, per share.")
    released_at: dt.datetime | None = Field(description="When the user was enabled again.")


class ResolveRequest(Request):
    """``restore``: roll back the files the incident touched; ``release``: enable the user
    again and close the incident. Either or both."""

    model_config = ConfigDict(extra="forbid")

    restore: bool = False
    release: bool = False
