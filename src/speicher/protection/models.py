from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from speicher.validation import Name, Request


class SnapshotCreate(Request):
    name: str | None = Field(
        None,
        description="`@GMT-YYYY.MM.DD-HH.MM.SS` (UTC); empty for now. This name is what "
        "Windows shows as a Previous Version.",
    )
    locked_until: dt.datetime | None = Field(
        None, description="Nobody can delete the snapshot before this time (UTC)."
    )


class SnapshotLock(Request):
    until: dt.datetime = Field(
        description="Lock until this time (UTC). A lock can be extended, never shortened."
    )


class RestoreRequest(Request):
    path: str = Field(description="File or folder to restore, relative to the share's top.")
    to: Literal["original", "beside"] = Field(
        "beside",
        description="`original` puts it back where it was (replacing what is there); `beside` "
        "puts it next to it with ` (restored <snapshot time>)` added to its name.",
    )


class RestoreResult(BaseModel):
    path: str = Field(description="Where the restored copy now is, relative to the share.")
    safety_snapshot: str | None = Field(
        None,
        description="When the restore replaced something (`to: original`): the snapshot of the "
        "share taken just before, which still holds what was replaced.",
    )


class RollbackResult(BaseModel):
    safety_snapshot: str = Field(description="Snapshot of the share as it was before.")


class CloneRequest(Request):
    name: Name = Field(description="Name of the new share made from the snapshot.")


class PolicyCreate(Request):
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


class PolicyUpdate(Request):
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
    problem: str = Field(
        "", description="Why it cannot run (e.g. a schedule that never comes); empty if it can."
    )


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


class ScrubInfo(BaseModel):
    """One scrub of a pool: btrfs read every block and checked it against its checksum."""

    id: int = Field(description="Scrub number; higher is newer.")
    pool: str = Field(description="The pool it checked.")
    job_id: int | None = Field(description="The job that ran it.")
    state: Literal["running", "finished", "failed"] = Field(
        description="`running`, `finished` (whatever it found) or `failed` (it could not run "
        "to the end)."
    )
    started_at: dt.datetime = Field(description="When it started (UTC).")
    finished_at: dt.datetime | None = Field(description="When it ended (UTC), if it has.")
    bytes_checked: int = Field(
        description="Bytes read and checked, over all disks (each copy counts)."
    )
    errors_found: int = Field(
        description="Blocks that could not be read or did not match their checksum."
    )
    errors_corrected: int = Field(description="Of those, repaired from a good copy.")
    errors_uncorrectable: int = Field(
        description="Of those, without a good copy: the data in them is lost."
    )
    uncorrectable_files: list[str] = Field(
        description="Files with lost data (paths on the server), as far as btrfs could name "
        "them; restore them from a backup or snapshot."
    )
    message: str = Field("", description="How it ended, for people.")


class ScrubSchedule(Request):
    """When a pool is scrubbed."""

    schedule: str = Field(
        description="Cron expression, UTC, e.g. `0 3 1 * *` (03:00 on the 1st of every month, "
        "the default); empty for no scheduled scrubs."
    )


class ScrubScheduleInfo(ScrubSchedule):
    pool: str = Field(description="The pool.")
    last_scrub_at: dt.datetime | None = Field(description="When its last scrub started (UTC).")
    next_scrub_at: dt.datetime | None = Field(
        description="When the schedule starts the next one (UTC); null without a schedule."
    )
    problem: str = Field(
        "", description="Why the schedule cannot run (e.g. it never comes); empty if it can."
    )


class DiskCounters(BaseModel):
    """btrfs's error counters of a disk (``btrfs device stats``); they only ever grow."""

    write_io_errs: int = Field(0, description="Writes the disk failed.")
    read_io_errs: int = Field(0, description="Reads the disk failed.")
    flush_io_errs: int = Field(0, description="Cache flushes the disk failed.")
    corruption_errs: int = Field(
        0, description="Blocks read back with a wrong checksum (bit rot, a bad cable...)."
    )
    generation_errs: int = Field(0, description="Blocks older than expected (lost writes).")


class DiskHealthInfo(BaseModel):
    """The health of one disk of a pool."""

    pool: str = Field(description="The pool the disk belongs to.")
    disk: str = Field(description="The disk's name (virtual) or device path.")
    device: str = Field(description="Current block device; empty when missing.")
    state: Literal["ok", "errors", "failing", "missing"] = Field(
        description="`ok`; `errors` when its counters are not zero (the pool stays ok); "
        "`failing` when SMART says so or I/O errors grew in the last day (the pool is "
        "degraded); `missing` when the pool cannot see it."
    )
    counters: DiskCounters | None = Field(description="btrfs error counters; null if unknown.")
    smart: Literal["passed", "failed", "unknown", "unsupported"] = Field(
        description="SMART verdict (`smartctl -H`); `unsupported` for virtual disks or "
        "without smartmontools."
    )
    smart_message: str = Field("", description="What smartctl said.")
    temperature_celsius: int | None = Field(
        None, description="The disk's temperature at the last SMART reading; null if unknown."
    )
    problem: str | None = Field(description="Why it counts as failing, if it does.")
    checked_at: dt.datetime | None = Field(description="When it was last checked (UTC).")
