"""Replication tasks: a share sent to a target on a schedule (docs/replication.md).

Each run takes a snapshot of the share and sends it (incremental against the newest one the
target holds), then keeps the task's newest ``keep_last`` snapshots on the source. A run that
fails is retried with back-off (1, 2, 4 ... minutes, at most an hour) before its next
scheduled time; ``alert_after`` failures in a row are an error event (so an alert), and so is
a replica older than ``rpo_hours``, once until a run succeeds again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from pydantic import BaseModel, Field

from speicher import schedule
from speicher.db import Database, ReplicationTarget, ReplicationTask
from speicher.db.models import utcnow
from speicher.errors import Conflict, NotFound, SpeicherError
from speicher.events import EventService
from speicher.jobs import JobInfo, JobService
from speicher.jobs.scheduled import ScheduledTasks
from speicher.jobs.service import Progress
from speicher.protection import SnapshotService
from speicher.replication.transfer import Replicator, wire_of
from speicher.validation import Name, Request

log = logging.getLogger(__name__)


class TaskCreate(Request):
    share: Name = Field(max_length=64, description="The share to replicate.")
    target: Name = Field(max_length=64, description="The paired target it goes to.")
    schedule: str = Field(max_length=64, description="Cron (UTC), e.g. `*/15 * * * *`.")
    keep_last: int = Field(
        0, ge=0, le=100_000, description="The task's snapshots kept here; 0: all."
    )
    rpo_hours: float = Field(
        0, ge=0, le=24 * 366, description="Alert when the newest replica is older; 0: never."
    )
    alert_after: int = Field(3, ge=1, le=1000, description="Alert after this many failures.")
    compress: bool = Field(True, description="zstd on the wire.")
    bandwidth_mib: float = Field(0, ge=0, le=100_000, description="MiB/s at most; 0: no limit.")
    enabled: bool = True


class TaskUpdate(Request):
    schedule: str | None = Field(None, max_length=64)
    keep_last: int | None = Field(None, ge=0, le=100_000)
    rpo_hours: float | None = Field(None, ge=0, le=24 * 366)
    alert_after: int | None = Field(None, ge=1, le=1000)
    compress: bool | None = None
    bandwidth_mib: float | None = Field(None, ge=0, le=100_000)
    enabled: bool | None = None


class TaskInfo(BaseModel):
    id: int
    share: str
    target: str
    schedule: str
    keep_last: int
    rpo_hours: float
    alert_after: int
    compress: bool
    bandwidth_mib: float
    enabled: bool
    last_run_at: dt.datetime | None
    last_ok_at: dt.datetime | None = Field(description="When the newest replica was made.")
    replica_age_seconds: float | None = Field(description="How old the newest replica is.")
    last_snapshot: str
    last_bytes: int
    last_seconds: float
    last_error: str
    failures: int = Field(description="Failed runs in a row.")
    next_run_at: dt.datetime | None


class ReplicationTasks(ScheduledTasks[ReplicationTask, TaskInfo, TaskCreate, TaskUpdate]):
    kind = "replication"
    late_unit = "hours"
    model = ReplicationTask
    target_model = ReplicationTarget

    def __init__(
        self,
        db: Database,
        events: EventService,
        jobs: JobService,
        snapshots: SnapshotService,
        replicator: Replicator,
    ) -> None:
        super().__init__(db, events, jobs)
        self.snapshots = snapshots
        self.replicator = replicator

    # -- what it says and shows --------------------------------------------------------------

    def _info(self, task: ReplicationTask, now: dt.datetime) -> TaskInfo:
        following = schedule.next_try(task.schedule, now, task.failures, task.last_run_at)
        return TaskInfo(
            id=task.id,
            share=task.share.name,
            target=task.target.name,
            schedule=task.schedule,
            keep_last=task.keep_last,
            rpo_hours=task.rpo_hours,
            alert_after=task.alert_after,
            compress=task.compress,
            bandwidth_mib=task.bandwidth_mib,
            enabled=task.enabled,
            last_run_at=task.last_run_at,
            last_ok_at=task.last_ok_at,
            replica_age_seconds=(
                (now - task.last_ok_at).total_seconds() if task.last_ok_at else None
            ),
            last_snapshot=task.last_snapshot,
            last_bytes=task.last_bytes,
            last_seconds=task.last_seconds,
            last_error=task.last_error,
            failures=task.failures,
            next_run_at=following if task.enabled else None,
        )

    def _unknown(self, task_id: int) -> NotFound:
        return NotFound(f"no replication task {task_id}")

    def _unknown_target(self, target: str) -> NotFound:
        return NotFound(f"no replication target named '{target}'")

    def _taken(self, share: str, target: str) -> Conflict:
        return Conflict(f"share '{share}' has a replication task to '{target}' already", "share")

    def _busy(self, task_id: int) -> Conflict:
        return Conflict(f"replication task {task_id} is running")

    def _age_limit(self, task: ReplicationTask) -> float:
        return task.rpo_hours  # the RPO

    def _late_message(self, task_id: int, age: float, allowed: float) -> str:
        return (
            f"replication task {task_id}: the newest replica is {age:.1f} hours old "
            f"(allowed: {allowed:g})"
        )

    # -- running -----------------------------------------------------------------------------

    def run(self, task_id: int) -> JobInfo:
        """Run the task now, in a job (409 while it runs)."""
        info = self.get(task_id)
        return self._start(  # held until the job ends: its bookkeeping too (see _prune)
            task_id,
            "replication.task",
            f"{info.share} to {info.target}",
            lambda progress: self._run(task_id, progress),
            "taking a snapshot",
        )

    def _run(self, task_id: int, progress: Progress) -> str:
        started, clock = utcnow(), time.monotonic()
        try:
            info = self.get(task_id)
            taken = self.snapshots.create(info.share)
            with self.db.session() as s:
                task = s.get(ReplicationTask, task_id)
                if task is not None:
                    task.snapshots = "\n".join([*task.snapshots.split(), taken.name])
            local = [x.name for x in self.snapshots.list(info.share)]
            wire = wire_of(info.compress, info.bandwidth_mib)
            result = self.replicator.send(
                info.target, info.share, taken.name, local, progress, wire
            )
        except SpeicherError as exc:
            self._failed(task_id, started, exc.message)
            raise
        except Exception as exc:
            self._failed(task_id, started, f"internal error: {exc}")
            raise
        with self.db.session() as s:
            task = s.get(ReplicationTask, task_id)
            if task is not None:
                task.last_run_at = started
                task.last_ok_at = started
                task.last_snapshot = result.name
                task.last_bytes = result.bytes
                task.last_seconds = time.monotonic() - clock
                task.last_error = ""
                task.failures = 0
        self._on_time(task_id)
        self._prune(task_id, info.share, result.name)
        return result.summary

    def _prune(self, task_id: int, share: str, newest: str) -> None:
        """Keep the task's newest ``keep_last`` snapshots (never the one just sent, the base
        of the next increment); a locked one stays until its lock ends."""
        with self.db.session() as s:
            task = s.get(ReplicationTask, task_id)
            if task is None or task.keep_last == 0:
                return
            mine = task.snapshots.split()
            keep = task.keep_last
        gone = [n for n in mine[: max(0, len(mine) - keep)] if n != newest]
        kept = [n for n in mine if n not in gone]
        for name in gone:
            try:
                self.snapshots.delete(share, name)
            except NotFound:
                continue
            except SpeicherError as exc:  # locked: it stays, and is tried again next time
                log.info("replication task %d keeps %s: %s", task_id, name, exc.message)
                kept.append(name)
        with self.db.session() as s:
            task = s.get(ReplicationTask, task_id)
            if task is not None:
                task.snapshots = "\n".join(sorted(set(kept)))
