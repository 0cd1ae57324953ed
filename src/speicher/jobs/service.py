"""Running jobs in worker threads and keeping their record in the database."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import select, update

from speicher.db import Database, Job
from speicher.db.models import utcnow
from speicher.errors import NotFound, SpeicherError
from speicher.events import EventService
from speicher.jobs.models import JobInfo

log = logging.getLogger(__name__)


class Progress:
    """Handed to a job's function: ``progress(percent, message)`` records how far it is."""

    def __init__(self, db: Database, job_id: int) -> None:
        self._db = db
        self.job_id = job_id
        self._last = 0.0
        self._message = ""

    def __call__(
        self,
        percent: float,
        message: str = "",
        *,
        done: int | None = None,
        total: int | None = None,
        eta: float | None = None,
    ) -> None:
        """``done`` and ``total``: bytes, for a job that moves data; ``eta``: seconds left."""
        now = time.monotonic()
        if now - self._last < 0.2 and percent < 100 and message in ("", self._message):
            return  # at most five writes a second for a busy loop (each one a commit)
        self._last = now
        self._message = message or self._message
        values: dict[str, object] = {"progress": max(0.0, min(100.0, percent))}
        if message:
            values["message"] = message
        for column, value in (("bytes_done", done), ("bytes_total", total), ("eta_seconds", eta)):
            if value is not None:
                values[column] = value
        with self._db.quiet_session() as s:
            s.execute(update(Job).where(Job.id == self.job_id).values(**values))


JobFunction = Callable[[Progress], str | None]


class JobService:
    def __init__(self, db: Database, events: EventService | None = None) -> None:
        self.db = db
        self.events = events  # records `job.failed`
        self._threads: dict[int, threading.Thread] = {}

    def start(self, kind: str, target: str, fn: JobFunction, message: str = "") -> JobInfo:
        """Record a job and run ``fn`` in a thread; its return value is the final message."""
        with self.db.session() as s:
            job = Job(kind=kind, target=target, state="running", message=message or "starting")
            s.add(job)
            s.flush()
            info = JobInfo.model_validate(job)
        thread = threading.Thread(
            target=self._run, args=(info.id, fn), name=f"job-{info.id}", daemon=True
        )
        self._threads[info.id] = thread
        thread.start()
        return info

    def _run(self, job_id: int, fn: JobFunction) -> None:
        progress = Progress(self.db, job_id)
        try:
            message = fn(progress)
        except SpeicherError as exc:
            self._finish(job_id, "failed", error=exc.message)
        except Exception as exc:
            log.exception("job %d failed", job_id)
            self._finish(job_id, "failed", error=f"internal error: {exc}")
        else:
            self._finish(job_id, "succeeded", message=message or "done", progress=100.0)
        finally:
            self._threads.pop(job_id, None)

    def _finish(
        self,
        job_id: int,
        state: str,
        *,
        message: str = "",
        error: str = "",
        progress: float | None = None,
    ) -> None:
        values: dict[str, object] = {"state": state, "finished_at": utcnow(), "error": error}
        if message:
            values["message"] = message
        if progress is not None:
            values["progress"] = progress
        if error:
            values["message"] = "failed"
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(**values))
            job = s.get(Job, job_id)
            kind, target = (job.kind, job.target) if job else ("job", "")
        if state == "failed" and self.events is not None:
            self.events.record(
                "error", "job.failed", target, f"job {job_id} ({kind} {target}) failed: {error}"
            )

    def get(self, job_id: int) -> JobInfo:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} does not exist")
            return JobInfo.model_validate(job)

    def list(self, limit: int = 50, state: str | None = None) -> list[JobInfo]:
        with self.db.session() as s:
            query = select(Job).order_by(Job.id.desc()).limit(limit)
            if state:
                query = query.where(Job.state == state)
            return [JobInfo.model_validate(j) for j in s.scalars(query)]

    def running(self, target: str) -> JobInfo | None:
        """The job that works on ``target`` now, if any."""
        with self.db.session() as s:
            job = s.scalars(select(Job).where(Job.target == target, Job.state == "running")).first()
            return JobInfo.model_validate(job) if job else None

    def wait(self, job_id: int, timeout: float | None = None) -> JobInfo:
        """Block until the job ends (for callers inside the daemon)."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.get(job_id)

    def fail_interrupted(self) -> int:
        """Mark jobs a previous daemon left running as failed; return how many."""
        error = "interrupted: the daemon stopped while it ran"
        with self.db.session() as s:
            jobs = [
                (j.id, j.kind, j.target)
                for j in s.scalars(select(Job).where(Job.state == "running"))
            ]
            s.execute(
                update(Job)
                .where(Job.id.in_([j[0] for j in jobs]))
                .values(state="failed", message="failed", error=error, finished_at=utcnow())
            )
        for job_id, kind, target in jobs:
            if self.events is not None:
                self.events.record(
                    "error", "job.failed", target, f"job {job_id} ({kind} {target}) failed: {error}"
                )
        return len(jobs)
