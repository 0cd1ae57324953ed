"""Scrubs: btrfs reads every block of a pool and checks it against its checksum, repairing
from a good copy where the profile keeps one.

A scrub runs ``btrfs scrub start -B`` blocking in a job thread while another thread follows
``btrfs scrub status -R`` for the progress figure. Its counters come from the command's own
report; the files with lost data come from the kernel log, where btrfs names the logical
address of each block it could not repair (``btrfs inspect-internal logical-resolve`` turns
them into paths)."""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from speicher import names, schedule
from speicher.config import Settings
from speicher.db import Database, Job, Pool, ScrubRun
from speicher.db.models import utcnow
from speicher.errors import Conflict, InvalidInput, OperationFailed, SpeicherError, translated
from speicher.events import EventService
from speicher.jobs import JobInfo, JobService, Progress
from speicher.protection.models import ScrubInfo, ScrubScheduleInfo
from speicher.storage import PoolService
from speicher.system import btrfs
from speicher.system.run import CommandError

log = logging.getLogger(__name__)

MISSING = "<missing disk>"  # how btrfs names a device it cannot see


@dataclass(frozen=True)
class Outcome:
    """What a finished scrub found, ready to be stored and told."""

    stats: btrfs.ScrubStats
    files: list[str]
    by_disk: dict[str, btrfs.ScrubStats]
    skipped: list[str]  # disks that were missing, so not checked


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(outcome: Outcome) -> str:
    """One sentence: what the scrub checked and found."""
    st = outcome.stats
    text = f"{names.format_size(st.bytes_scrubbed)} checked"
    if st.errors_found == 0:
        text += ", no errors"
    else:
        text += f", {plural(st.errors_found, 'error')} found, {st.corrected} corrected"
        if st.uncorrectable:
            text += f", {st.uncorrectable} uncorrectable"
    if outcome.skipped:
        text += f" (missing, not checked: {', '.join(outcome.skipped)})"
    return text


def files_of(
    errors: builtins.list[btrfs.ScrubError],
    described: builtins.list[btrfs.ScrubErrorPath],
    resolve: dict[int, builtins.list[str]],
) -> builtins.list[str]:
    """The files behind the blocks a scrub could not repair. ``resolve`` maps a logical
    address to its paths (from ``logical-resolve``); where it has none, the kernel's own
    description (a path inside its subvolume) stands in, and failing that the address."""
    kernel = {d.logical: f"{d.path} (subvolume {d.root})" for d in described}
    out: builtins.list[str] = []
    for logical in sorted({e.logical for e in errors if not e.corrected}):
        found = resolve.get(logical) or (
            [kernel[logical]]
            if logical in kernel
            else [f"logical address {logical} (metadata, or a file since deleted)"]
        )
        out += [p for p in found if p not in out]
    return out


class ScrubService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        jobs: JobService,
        pools: PoolService,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.jobs = jobs
        self.pools = pools
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._unschedulable: dict[int, str] = {}  # pools whose stored schedule fails: told once

    # -- reading -------------------------------------------------------------------------------

    @staticmethod
    def _info(run: ScrubRun, pool: str) -> ScrubInfo:
        return ScrubInfo(
            id=run.id,
            pool=pool,
            job_id=run.job_id,
            state=run.state,
            started_at=run.started_at,
            finished_at=run.finished_at,
            bytes_checked=run.bytes_checked,
            errors_found=run.errors_found,
            errors_corrected=run.errors_corrected,
            errors_uncorrectable=run.errors_uncorrectable,
            uncorrectable_files=[p for p in run.uncorrectable_files.split("\n") if p],
        )

    def list(self, pool: str, limit: int = 50) -> builtins.list[ScrubInfo]:
        """A pool's scrubs, newest first."""
        self._fail_orphans()
        with self.db.session() as s:
            row = self._pool(s, pool)
            runs = s.scalars(
                select(ScrubRun)
                .where(ScrubRun.pool_id == row.id)
                .order_by(ScrubRun.id.desc())
                .limit(limit)
            )
            infos = [self._info(r, pool) for r in runs]
            jobs = {
                j.id: j for j in s.scalars(select(Job).where(Job.id.in_([i.job_id for i in infos])))
            }
        for info in infos:
            job = jobs.get(info.job_id) if info.job_id else None
            if job is not None:
                info.message = job.error or job.message
        return infos

    @staticmethod
    def _pool(s: Session, name: str) -> Pool:
        return PoolService.row(s, name)

    def _fail_orphans(self) -> None:
        """A scrub whose job no longer runs (the daemon stopped during it) did not finish."""
        stale = utcnow() - dt.timedelta(minutes=5)
        with self.db.session() as s:
            for run in s.scalars(select(ScrubRun).where(ScrubRun.state == "running")):
                job = s.get(Job, run.job_id) if run.job_id else None
                if job is not None and job.state != "running":
                    run.state = "failed"
                    run.finished_at = job.finished_at or utcnow()
                elif run.job_id is None and run.started_at < stale:  # stopped before its job
                    run.state = "failed"
                    run.finished_at = utcnow()

    # -- schedule ------------------------------------------------------------------------------

    def get_schedule(self, pool: str) -> ScrubScheduleInfo:
        with self.db.session() as s:
            row = self._pool(s, pool)
            cron, last = row.scrub_schedule, row.last_scrub_at
        following, problem = None, ""
        try:
            following = schedule.following(cron, utcnow()) if cron else None
        except schedule.Unschedulable as exc:  # stored before such schedules were refused
            problem = f"its schedule '{cron}' {exc}; set another one"
        return ScrubScheduleInfo(
            pool=pool, schedule=cron, last_scrub_at=last, next_scrub_at=following, problem=problem
        )

    def set_schedule(self, pool: str, cron: str) -> ScrubScheduleInfo:
        """Scrub ``pool`` on a cron schedule (UTC); an empty schedule turns scheduling off."""
        cron = " ".join(cron.split())
        if cron and (reason := schedule.check(cron)):
            raise InvalidInput(field="schedule", reason=reason)
        with self.db.session() as s:
            self._pool(s, pool).scrub_schedule = cron
        self.events.record(
            "info",
            "scrub.scheduled",
            pool,
            f"scrubs of {pool}: {cron}" if cron else f"scheduled scrubs of {pool} turned off",
        )
        return self.get_schedule(pool)

    def run_due(self, now: dt.datetime | None = None) -> builtins.list[JobInfo]:
        """Start the scrubs whose schedule says so (called by the daemon's scheduler). After
        downtime a missed scrub runs once; a pool that is busy or not mounted is tried again
        at the next call. Each pool is on its own: one whose scrub cannot start is an error
        event (so an alert), and the others still start."""
        now = now or utcnow()
        started = []
        for pool in self._due(now):
            try:
                started.append(self.start(pool, scheduled=True, now=now))
            except Conflict as exc:
                log.info("scheduled scrub of %s waits: %s", pool, exc.message)
            except SpeicherError as exc:
                message = f"scheduled scrub of {pool} failed: {exc.message}"
                self.events.record("error", "scrub.failed", pool, message)
            except Exception:
                log.exception("scheduled scrub of %s failed", pool)
                message = f"scheduled scrub of {pool} failed: internal error; see the daemon's log"
                self.events.record("error", "scrub.failed", pool, message)
        return started

    def _due(self, now: dt.datetime) -> builtins.list[str]:
        """The mounted pools whose scrub is due. A pool whose stored schedule cannot be
        evaluated is told once (until its schedule changes) and skipped."""
        with self.db.session() as s:
            rows = [
                (p.id, p.name, p.scrub_schedule, p.last_scrub_at, p.created_at)
                for p in s.scalars(select(Pool).where(Pool.state == "ready"))
                if p.scrub_schedule
            ]
        due = []
        for pool_id, pool, cron, last, created in rows:
            try:
                if schedule.due(cron, last, created, now):
                    due.append(pool)
            except schedule.Unschedulable as exc:
                if self._unschedulable.get(pool_id) != cron:
                    self._unschedulable[pool_id] = cron
                    message = (
                        f"scheduled scrubs of {pool} cannot run: the schedule '{cron}' {exc}; "
                        f"set another one with `speicher pool scrub-schedule {pool} ...`"
                    )
                    self.events.record("error", "scrub.failed", pool, message)
                continue
            self._unschedulable.pop(pool_id, None)
        return due

    # -- scrubbing -----------------------------------------------------------------------------

    def start(self, pool: str, scheduled: bool = False, now: dt.datetime | None = None) -> JobInfo:
        """Start a scrub of ``pool`` as a job."""
        self._fail_orphans()
        info = self.pools.get(pool)
        if info.state != "ready" or info.health == "unavailable":
            raise Conflict(f"pool '{pool}' is not mounted")
        mnt = self.pools.mountpoint(pool)
        with self._lock:
            if pool in self._running:
                raise Conflict(f"pool '{pool}' is being scrubbed already")
            self._running.add(pool)
        try:
            with translated("reading the scrub status"):
                if btrfs.scrub_status(mnt).status == "running":
                    raise Conflict(f"pool '{pool}' is being scrubbed already (outside Speicher)")
            # one structural operation at a time: no disk replaced or removed during a scrub
            self.pools.claim(pool)
        except BaseException:
            self.release(pool)
            raise
        try:
            with self.db.session() as s:
                row = self._pool(s, pool)
                row.last_scrub_at = now or utcnow()
                run = ScrubRun(pool_id=row.id, state="running")
                s.add(run)
                s.flush()
                run_id = run.id
            job = self.jobs.start(
                "pool.scrub", pool, lambda progress: self._work(pool, run_id, mnt, progress)
            )
        except BaseException:
            self.pools.release(pool)
            self.release(pool)
            raise
        with self.db.session() as s:
            stored = s.get(ScrubRun, run_id)
            if stored is not None:
                stored.job_id = job.id
        how = "scheduled" if scheduled else "started by hand"
        self.events.record("info", "scrub.started", pool, f"scrub of {pool} {how} (job {job.id})")
        return job

    def release(self, pool: str) -> None:
        with self._lock:
            self._running.discard(pool)

    def _work(self, pool: str, run_id: int, mnt: Path, progress: Progress) -> str:
        try:
            try:
                outcome = self._scrub(pool, mnt, progress)
            except BaseException as exc:
                self._finish(run_id, None)
                if isinstance(exc, CommandError):
                    raise OperationFailed(f"scrub failed: {exc.output}", detail=str(exc)) from None
                raise
            self._finish(run_id, outcome)
        finally:
            self.pools.release(pool)
            self.release(pool)
        self._tell(pool, outcome)
        return f"scrub of {pool}: {summary(outcome)}"

    def _scrub(self, pool: str, mnt: Path, progress: Progress) -> Outcome:
        progress(0, "checking every block")
        members = self.pools.get(pool).disks
        devices = {d.device for d in members if d.device}
        by_devid = {d.devid: d.disk for d in members if d.devid is not None}

        def disk_of(dev: btrfs.DeviceScrub) -> str:
            return by_devid.get(dev.devid, dev.device)

        total = max(1, btrfs.usage(mnt).used)  # raw bytes over all disks: what a scrub reads
        results: builtins.list[btrfs.ScrubResult] = []

        def measure() -> float:
            return min(99.0, 100.0 * btrfs.scrub_status(mnt).bytes_scrubbed / total)

        with btrfs.KernelLog() as kernel_log:
            self.pools.follow(
                "checking every block", lambda: results.append(btrfs.scrub(mnt)), measure, progress
            )
            messages = kernel_log.read()
        result = results[0]
        if result.returncode not in (0, 3) or not result.devices:  # 3: uncorrectable errors
            raise OperationFailed(
                f"scrub of {pool} failed: {result.messages or 'btrfs reported nothing'}"
            )
        stats = btrfs.scrub_total([d for d in result.devices if d.device != MISSING])
        skipped = [disk_of(d) for d in result.devices if d.device == MISSING]
        by_disk = {disk_of(d): d.stats for d in result.devices if d.device != MISSING}
        files: builtins.list[str] = []
        if stats.uncorrectable:
            progress(99, "naming the damaged files")
            files = self._damaged_files(mnt, devices, messages)
        return Outcome(stats, files, by_disk, skipped)

    @staticmethod
    def _damaged_files(
        mnt: Path, devices: set[str], messages: builtins.list[str] | None
    ) -> builtins.list[str]:
        if messages is None:
            return ["(the kernel log, where btrfs names the damaged blocks, cannot be read)"]
        errors, described = btrfs.parse_scrub_errors(messages, devices)
        bad = {e.logical for e in errors if not e.corrected}
        resolved = {logical: btrfs.logical_resolve(logical, mnt) for logical in sorted(bad)}
        files = files_of(errors, described, resolved)
        if not files:
            files = ["(btrfs logged no addresses; see the kernel log, `dmesg`)"]
        return files

    def _finish(self, run_id: int, outcome: Outcome | None) -> None:
        with self.db.session() as s:
            run = s.get(ScrubRun, run_id)
            if run is None:
                return
            run.finished_at = utcnow()
            if outcome is None:
                run.state = "failed"
                return
            st = outcome.stats
            run.state = "finished"
            run.bytes_checked = st.bytes_scrubbed
            run.errors_found = st.errors_found
            run.errors_corrected = st.corrected
            run.errors_uncorrectable = st.uncorrectable
            run.uncorrectable_files = "\n".join(outcome.files)

    def _tell(self, pool: str, outcome: Outcome) -> None:
        st = outcome.stats
        self.events.record("info", "scrub.finished", pool, f"scrub of {pool}: {summary(outcome)}")
        where = ", ".join(
            f"{disk}: {plural(s.errors_found, 'error')}"
            for disk, s in outcome.by_disk.items()
            if s.errors_found
        )
        if st.uncorrectable:
            shown = outcome.files[:10]
            more = f" and {len(outcome.files) - 10} more" if len(outcome.files) > 10 else ""
            self.events.record(
                "error",
                "scrub.uncorrectable",
                pool,
                f"scrub of {pool} found {plural(st.uncorrectable, 'damaged block')} without a "
                f"good copy ({where}); data is lost in: {'; '.join(shown)}{more}. Restore "
                "these files from a backup (a snapshot helps only if it holds an older "
                "version), and check the disks.",
            )
        elif st.errors_found:
            self.events.record(
                "warning",
                "scrub.errors",
                pool,
                f"scrub of {pool} found {plural(st.errors_found, 'error')} ({where}) and "
                f"corrected {st.corrected} from the good copy; no data was lost. Watch the disk: "
                "errors that come back mean it is failing.",
            )
