from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class SnapshotCreate(BaseModel):
    name: str | None = Field(
        None,
        description="`@GMT-YYYY.MM.DD-HH.MM.SS` (UTC); empty for now. This name is what "
        "Windows shows as a Previous Version.",
    )
    locked_until: dt.datetime | None = Field(
        None, description="Nobody can delete the snapshot before this time (UTC)."
    )


class SnapshotLock(BaseModel):
    until: dt.datetime = Field(
        description="Lock until this time (UTC). A lock can be extended, never shortened."
    )


class RestoreRequest(BaseModel):
    path: str = Field(description="File or folder to restore, relative to the share's top.")
    to: Literal["original", "beside"] = Field(
        "beside",
        description="`original` puts it back where it was (replacing what is there); `beside` "
        "puts it next to it with ` (restored <snapshot time>)` added to its name.",
    )


class RestoreResult(BaseModel):
    path: str = Field(description="Where the restored copy now is, relative to the share.")


class RollbackResult(BaseModel):
    safety_snapshot: str = Field(description="Snapshot of the share as it was before.")


class CloneRequest(BaseModel):
    name: str = Field(description="Name of the new share made from the snapshot.")


class PolicyCreate(BaseModel):
    name: str = Field(description="Name of the policy, e.g. `hourly`.")
    schedule: str = Field(description="When to take snapshots: cron, UTC, e.g. `0 * * * *`.")
    keep_last: int = Field(0, ge=0, le=10000, description="Keep the newest N.")
    keep_hourly: int = Field(0, ge=0, le=10000, description="Newest of each of the last N hours.")
    keep_daily: int = Field(0, ge=0, le=10000, description="Newest of each of the last N days.")
    keep_weekly: int = Field(0, ge=0, le=10000, description="Newest of each of the last N weeks.")
    keep_monthly: int = Field(0, ge=0, le=10000, description="Newest of each of N months.")
    lock_days: int = Field(
        0, ge=0, le=36500, description="Its snapshots cannot be deleted for N days."
    )
    enabled: bool = Field(True, description="Whether the scheduler runs it.")


class PolicyUpdate(BaseModel):
    schedule: str | None = Field(None, description="New cron schedule.")
    keep_last: int | None = Field(None, ge=0, le=10000)
    keep_hourly: int | None = Field(None, ge=0, le=10000)
    keep_daily: int | None = Field(None, ge=0, le=10000)
    keep_weekly: int | None = Field(None, ge=0, le=10000)
    keep_monthly: int | None = Field(None, ge=0, le=10000)
    lock_days: int | None = Field(None, ge=0, le=36500)
    enabled: bool | None = Field(None)


class PolicyInfo(PolicyCreate):
    share: str = Field(description="The share it takes snapshots of.")
    last_run_at: dt.datetime | None = Field(description="When it last ran (UTC).")
    next_run_at: dt.datetime | None = Field(description="When it runs next (UTC), if enabled.")


class SnapshotInfo(BaseModel):
    """A read-only snapshot of a share."""

    share: str = Field(description="The share it is a snapshot of.")
    name: str = Field(description="`@GMT-YYYY.MM.DD-HH.MM.SS`, the time it was taken (UTC).")
    time: dt.datetime = Field(description="When it was taken (UTC).")
    path: str = Field(description="Where it is on the server (read-only).")
    locked_until: dt.datetime | None = Field(
        description="Nobody can delete it before this time (UTC); null if not locked."
    )
    policy: str | None = Field(description="The policy that took it, if any.")
    exclusive: int | None = Field(
        None, description="Bytes only this snapshot holds (freed by deleting it)."
    )
