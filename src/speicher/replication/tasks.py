"""Replication tasks: a share sent to a target on a schedule (docs/replication.md).

Each run takes a snapshot of the share and sends it (incremental against the newest one the
target holds), then keeps the task's newest ``keep_last`` snapshots on the source. A run that
fails is retried with back-off (1, 2, 4 ... minutes, at most an hour) before its next
scheduled time; ``alert_after`` failures in a row are an error event (so an alert), and so is
a replica older than ``rpo_hours``, once until a run succeeds again.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import threading
import time

from pydantic import BaseModel, Field
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from speicher import schedule
from speicher.db import Database, ReplicationTarget, ReplicationTask, Share
from speicher.db.models import utcnow
from speicher.errors import Conflict, InvalidInput, NotFound, SpeicherError
from speicher.events import EventService
from speicher.jobs import JobInfo, JobService
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


def _check_schedule(cron: str) -> None:
    if reason := schedule.check(cron):
        raise InvalidInput(field="schedule", reason=reason)


def _info(task: ReplicationTask, now: dt.datetime) -> TaskInfo:
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
        replica_age_seconds=(now - task.last_ok_at).total_seconds() if task.last_ok_at else None,
        last_snapshot=task.last_snapshot,
        last_bytes=task.last_bytes,
        last_seconds=task.last_seconds,
        last_error=task.last_error,
        failures=task.failures,
        next_run_at=following if task.enabled else None,
    )


class ReplicationTasks:
    def __init__(
        self,
        db: Database,
        events: EventService,
        jobs: JobService,
        snapshots: SnapshotService,
        replicator: Replicator,
    ) -> None:
        self.db = db
        self.events = events
        self.jobs = jobs
        self.snapshots = snapshots
        self.replicator = replicator
        self._running: set[int] = set()
        self._late: set[int] = set()  # tasks whose RPO alert was given
        self._lock = threading.Lock()

    # -- the model ---------------------------------------------------------------------------

    def create(self, req: TaskCreate) -> TaskInfo:
        _check_schedule(req.schedule)
        try:
            with self.db.session() as s:
                share = s.scalars(select(Share).where(Share.name == req.share)).first()
                if share is None or share.state != "ready":
                    raise NotFound(f"no share named '{req.share}'")
                target = s.scalars(
                    select(ReplicationTarget).where(ReplicationTarget.name == req.target)
                ).first()
                if target is None:
                    raise NotFound(f"no replication target named '{req.target}'")
                task = ReplicationTask(
                    share_id=share.id,
                    target_id=target.id,
                    schedule=req.schedule,
                    keep_last=req.keep_last,
                    rpo_hours=req.rpo_hours,
                    alert_after=req.alert_after,
                    compress=req.compress,
                    bandwidth_mib=req.bandwidth_mib,
                    enabled=req.enabled,
                )
                s.add(task)
                s.flush()
                task_id = task.id
        except IntegrityError:
            raise Conflict(
                f"share '{req.share}' has a replication task to '{req.target}' already", "share"
            ) from None
        self.events.record(
            "info",
            "replication.task_created",
            req.share,
            f"replication task {task_id}: share {req.share} to {req.target}, '{req.schedule}'",
        )
        return self.get(task_id)

    def _query(self) -> Select[ReplicationTask]:
        return select(ReplicationTask).options(
            selectinload(ReplicationTask.share), selectinload(ReplicationTask.target)
        )

    def list(self) -> builtins.list[TaskInfo]:
        now = utcnow()
        with self.db.session() as s:
            rows = s.scalars(self._query().order_by(ReplicationTask.id)).all()
            return [_info(t, now) for t in rows]

    def get(self, task_id: int) -> TaskInfo:
        with self.db.session() as s:
            task = s.scalars(self._query().where(ReplicationTask.id == task_id)).first()
            if task is None:
                raise NotFound(f"no replication task {task_id}")
            return _info(task, utcnow())

    def update(self, task_id: int, req: TaskUpdate) -> TaskInfo:
        if req.schedule is not None:
            _check_schedule(req.schedule)
        with self.db.session() as s:
            task = s.get(ReplicationTask, task_id)
            if task is None:
                raise NotFound(f"no replication task {task_id}")
            for field in TaskUpdate.model_fields:
                value = getattr(req, field)
                if value is not None:
                    setattr(task, field, value)
        return self.get(task_id)

    def delete(self, task_id: int) -> None:
        """Forget the task; its snapshots and the replicas stay."""
        with self.db.session() as s:
            task = s.get(ReplicationTask, task_id)
            if task is None:
                raise NotFound(f"no replication task {task_id}")
            s.delete(task)
        self.events.record(
            "info", "replication.task_deleted", str(task_id), f"replication task {task_id} deleted"
        )

    # -- running -----------------------------------------------------------------------------

    def run(self, task_id: int) -> JobInfo:
        """Run the task now, in a job (409 while it runs)."""
        info = self.get(task_id)
        with self._lock:
            if task_id in self._running:
                raise Conflict(f"replication task {task_id} is running")
            self._running.add(task_id)
        try:
            return self.jobs.start(
                "replication.task",
                f"{info.share} to {info.target}",
                lambda progress: self._run(task_id, progress),
                "taking a snapshot",
            )
        except BaseException:
            with self._lock:
                self._running.discard(task_id)
            raise

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
        finally:
            with self._lock:
                self._running.discard(task_id)
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
        with self._lock:
            self._late.discard(task_id)
        self._prune(task_id, info.share, result.name)
        return result.summary

    def _failed(self, task_id: int, started: dt.datetime, error: str) -> None:
        with self.db.session() as s:
            task = s.get(ReplicationTask, task_id)
            if task is None:
                return
            task.last_run_at = started
            task.last_error = error
            task.failures += 1
            failures, alert_after = task.failures, task.alert_after
        if failures == alert_after:
            self.events.record(
                "error",
                "replication.failing",
                str(task_id),
                f"replication task {task_id} failed {failures} times in a row: {error}",
            )

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

    def run_due(self, now: dt.datetime | None = None) -> builtins.list[int]:
        """Start every enabled task whose time (or retry) has come; the ids started. Also
        gives the RPO alert of tasks whose newest replica is too old."""
        now = now or utcnow()
        with self.db.session() as s:
            rows = [
                (t.id, t.schedule, t.last_run_at, t.last_ok_at, t.created_at, t.failures,
                 t.rpo_hours)
                for t in s.scalars(select(ReplicationTask).where(ReplicationTask.enabled.is_(True)))
            ]  # fmt: skip
        started = []
        for task_id, cron, last_run, last_ok, created, failures, rpo in rows:
            self._check_age(task_id, last_ok or created, rpo, now)
            due = schedule.due_or_retry(cron, last_run, created, failures, now)
            with self._lock:
                busy = task_id in self._running
            if due and not busy:
                try:
                    self.run(task_id)
                    started.append(task_id)
                except SpeicherError as exc:
                    log.warning("replication task %d did not start: %s", task_id, exc.message)
        return started

    def _check_age(self, task_id: int, since: dt.datetime, rpo: float, now: dt.datetime) -> None:
        if not rpo or now - since <= dt.timedelta(hours=rpo):
            return
        with self._lock:
            if task_id in self._late:
                return
            self._late.add(task_id)
        hours = (now - since).total_seconds() / 3600
        self.events.record(
            "error",
            "replication.late",
            str(task_id),
            f"replication task {task_id}: the newest replica is {hours:.1f} hours old "
            f"(allowed: {rpo:g})",
        )
