"""Tasks that copy a share elsewhere on a schedule, each run a job: what the replication tasks
(speicher.replication.tasks) and the backup tasks (speicher.backup.tasks) have in common.

A task is a row (share, target, cron schedule, ``alert_after``, and what its last runs did),
made, listed, changed and deleted the same way for both kinds. One run of a task at a time:
a second one is refused (409) while the first holds it. A run that fails counts a failure
and is retried with back-off (``schedule.due_or_retry``); the ``alert_after``-th failure in a
row is an error event (so an alert), and so is a task whose newest copy is older than it
allows, once until a run succeeds again.

What differs stays with each kind: its texts (the problems a user reads are translated by
their templates in the source, see speicher.web.problems, so they are written out in full
there), what a run does, and how a task is shown.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from speicher import schedule
from speicher.db import (
    BackupTarget,
    BackupTask,
    Database,
    ReplicationTarget,
    ReplicationTask,
    Share,
)
from speicher.db.models import utcnow
from speicher.errors import Conflict, InvalidInput, NotFound, SpeicherError
from speicher.events import EventService
from speicher.jobs.models import JobInfo
from speicher.jobs.service import JobService, Progress
from speicher.validation import Request

Row = TypeVar("Row", ReplicationTask, BackupTask)
Info = TypeVar("Info", bound=BaseModel)
New = TypeVar("New", bound=Request)
Change = TypeVar("Change", bound=Request)


def check_schedule(cron: str) -> None:
    """Refuse a schedule that is not a cron expression we accept (422, on its field)."""
    if reason := schedule.check(cron):
        raise InvalidInput(field="schedule", reason=reason)


class ScheduledTasks(Generic[Row, Info, New, Change]):
    """The tasks of one kind: ``kind`` names its events (``replication.failing``) and, as
    ``"<kind> task <id>"``, each task in them; ``model`` is its row and ``target_model`` the
    row of the targets it goes to. A new task is a ``New`` request (``share``, ``target``,
    ``schedule`` and the columns of ``model`` it sets), a change a ``Change`` (each field
    that is not None is set).

    The late alert: a task is late when its newest copy (or, before the first one, the task
    itself) is older than ``_age_limit`` of it in ``late_unit`` (0: never late)."""

    kind: ClassVar[str]
    late_unit: ClassVar[Literal["hours", "days"]]
    model: type[Row]
    target_model: type[ReplicationTarget] | type[BackupTarget]

    def __init__(self, db: Database, events: EventService, jobs: JobService) -> None:
        self.db = db
        self.events = events
        self.jobs = jobs
        self._running: set[int] = set()  # tasks a job holds
        self._late: set[int] = set()  # tasks whose late alert was given
        self._lock = threading.Lock()

    # -- what each kind says and shows -------------------------------------------------------

    def _info(self, task: Row, now: dt.datetime) -> Info:
        """The task as the API shows it, at ``now``."""
        raise NotImplementedError

    def _unknown(self, task_id: int) -> NotFound:
        raise NotImplementedError

    def _unknown_target(self, target: str) -> NotFound:
        raise NotImplementedError

    def _taken(self, share: str, target: str) -> Conflict:
        """The problem of a second task of one share to one target."""
        raise NotImplementedError

    def _busy(self, task_id: int) -> Conflict:
        """The problem of a run while a job holds the task."""
        raise NotImplementedError

    def _age_limit(self, task: Row) -> float:
        """How old (in ``late_unit``) the task's newest copy may be; 0: any age."""
        raise NotImplementedError

    def _late_message(self, task_id: int, age: float, allowed: float) -> str:
        """The late event's text: the newest copy is ``age`` old, ``allowed`` is the limit."""
        raise NotImplementedError

    # -- the model ---------------------------------------------------------------------------

    def create(self, req: New) -> Info:
        fields = req.model_dump()
        share, target, cron = fields.pop("share"), fields.pop("target"), fields["schedule"]
        check_schedule(cron)
        try:
            with self.db.session() as s:
                found = s.scalars(select(Share).where(Share.name == share)).first()
                if found is None or found.state != "ready":
                    raise NotFound(f"no share named '{share}'")
                to = self.target_model
                target_id = s.scalars(select(to.id).where(to.name == target)).first()
                if target_id is None:
                    raise self._unknown_target(target)
                task = self.model(share_id=found.id, target_id=target_id, **fields)
                s.add(task)
                s.flush()
                task_id = task.id
        except IntegrityError:
            raise self._taken(share, target) from None
        self.events.record(
            "info",
            f"{self.kind}.task_created",
            share,
            f"{self.kind} task {task_id}: share {share} to {target}, '{cron}'",
        )
        return self.get(task_id)

    def _query(self) -> Select[Row]:
        return select(self.model).options(
            selectinload(self.model.share), selectinload(self.model.target)
        )

    def list(self) -> builtins.list[Info]:
        now = utcnow()
        with self.db.session() as s:
            rows = s.scalars(self._query().order_by(self.model.id)).all()
            return [self._info(t, now) for t in rows]

    def get(self, task_id: int) -> Info:
        with self.db.session() as s:
            task = s.scalars(self._query().where(self.model.id == task_id)).first()
            if task is None:
                raise self._unknown(task_id)
            return self._info(task, utcnow())

    def update(self, task_id: int, req: Change) -> Info:
        changes = {k: v for k, v in req.model_dump().items() if v is not None}
        if "schedule" in changes:
            check_schedule(changes["schedule"])
        with self.db.session() as s:
            task = s.get(self.model, task_id)
            if task is None:
                raise self._unknown(task_id)
            for field, value in changes.items():
                setattr(task, field, value)
        return self.get(task_id)

    def delete(self, task_id: int) -> None:
        """Forget the task; what its runs made (snapshots, replicas, backups) stays."""
        with self.db.session() as s:
            task = s.get(self.model, task_id)
            if task is None:
                raise self._unknown(task_id)
            s.delete(task)
        self.events.record(
            "info",
            f"{self.kind}.task_deleted",
            str(task_id),
            f"{self.kind} task {task_id} deleted",
        )

    # -- running -----------------------------------------------------------------------------

    def _launch(
        self, task_id: int, kind: str, label: str, job: Callable[[Progress], str], first: str
    ) -> JobInfo:
        """Hold the task (``_busy`` while a job holds it) and start ``job`` for it; the job
        lets it go (``_release``) when it is done with it."""
        with self._lock:
            if task_id in self._running:
                raise self._busy(task_id)
            self._running.add(task_id)
        try:
            return self.jobs.start(kind, label, job, first)
        except BaseException:
            self._release(task_id)
            raise

    def _start(
        self, task_id: int, kind: str, label: str, fn: Callable[[Progress], str], first: str
    ) -> JobInfo:
        """``_launch`` a job that holds the task until it ends."""

        def job(progress: Progress) -> str:
            try:
                return fn(progress)
            finally:
                self._release(task_id)

        return self._launch(task_id, kind, label, job, first)

    def _release(self, task_id: int) -> None:
        with self._lock:
            self._running.discard(task_id)

    def _on_time(self, task_id: int) -> None:
        """A run succeeded: the task's next late alert may come."""
        with self._lock:
            self._late.discard(task_id)

    def _failed(self, task_id: int, started: dt.datetime, error: str) -> None:
        with self.db.session() as s:
            task = s.get(self.model, task_id)
            if task is None:
                return
            task.last_run_at = started
            task.last_error = error
            task.failures += 1
            failures, alert_after = task.failures, task.alert_after
        if failures == alert_after:
            self.events.record(
                "error",
                f"{self.kind}.failing",
                str(task_id),
                f"{self.kind} task {task_id} failed {failures} times in a row: {error}",
            )

    def run(self, task_id: int) -> JobInfo:
        """Run the task now, in a job (409 while a job holds it)."""
        raise NotImplementedError

    def run_due(self, now: dt.datetime | None = None) -> builtins.list[int]:
        """Start every enabled task whose time (or retry) has come; the ids started. Also
        gives the late alert of tasks whose newest copy is too old."""
        now = now or utcnow()
        with self.db.session() as s:
            rows = [
                (t.id, t.schedule, t.last_run_at, t.last_ok_at, t.created_at, t.failures,
                 self._age_limit(t))
                for t in s.scalars(select(self.model).where(self.model.enabled.is_(True)))
            ]  # fmt: skip
        started = []
        for task_id, cron, last_run, last_ok, created, failures, limit in rows:
            self._check_age(task_id, last_ok or created, limit, now)
            due = schedule.due_or_retry(cron, last_run, created, failures, now)
            with self._lock:
                busy = task_id in self._running
            if due and not busy:
                try:
                    self.run(task_id)
                    started.append(task_id)
                except SpeicherError as exc:
                    log = logging.getLogger(type(self).__module__)
                    log.warning("%s task %d did not start: %s", self.kind, task_id, exc.message)
        return started

    def _check_age(self, task_id: int, since: dt.datetime, limit: float, now: dt.datetime) -> None:
        if not limit or now - since <= dt.timedelta(**{self.late_unit: limit}):
            return
        with self._lock:
            if task_id in self._late:
                return
            self._late.add(task_id)
        age = (now - since).total_seconds() / dt.timedelta(**{self.late_unit: 1}).total_seconds()
        self.events.record(
            "error", f"{self.kind}.late", str(task_id), self._late_message(task_id, age, limit)
        )
