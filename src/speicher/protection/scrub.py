"""Scrubs: btrfs reads every block of a pool and checks it against its checksum, repairing
from a good copy where the profile keeps one.

A scrub runs ``btrfs scrub start -B`` blocking in a job thread while another thread follows
``btrfs scrub status -R`` for the progress figure. Its counters come from the command's own
report. The files with lost data are found in two steps. The kernel log names each block it
could not repair, but (since kernel 6.4) by the start of its 64 KiB scrub stripe, which may
lie in the file before; so every file with a block anywhere in a bad stripe is a suspect
(``logical-resolve`` of each sector), and a suspect is named only if reading those blocks of
it fails. Where the log is incomplete (the kernel rate-limits it to 10 lines in 5 s), every
file of the pool is read instead."""

from __future__ import annotations

import builtins
import datetime as dt
import errno
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable
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

MISSING = btrfs.MISSING_DEVICE
NO_FILE = "(no file fails to read: the damage is in metadata or in data no file uses any more)"


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


# a file under suspicion: (subvolume id, inode) -> the file offsets of its blocks in bad stripes
Suspects = dict[tuple[int, int], set[int]]


def lost_stripes(errors: builtins.list[btrfs.ScrubError]) -> builtins.list[int]:
    """The logical starts of the stripes (64 KiB) where a block could not be repaired."""
    return sorted({e.logical for e in errors if not e.corrected})


def suspects_of(
    start: int,
    refs: dict[int, builtins.list[btrfs.InodeRef]],
    described: Iterable[btrfs.ScrubErrorPath],
) -> Suspects:
    """The files with a block in the stripe at ``start``: what ``logical-resolve`` said of
    each of its sectors (``refs``), and what the kernel said of the stripe."""
    found: Suspects = {}
    for address in sorted(refs):
        if start <= address < start + btrfs.STRIPE_LEN:
            for ref in refs[address]:
                found.setdefault((ref.root, ref.inode), set()).add(ref.offset)
    for d in described:
        if d.logical == start:
            found.setdefault((d.root, d.inode), set()).add(d.offset)
    return found


def damaged_files(
    stripes: dict[int, Suspects],
    paths: Callable[[int, int], builtins.list[Path]],
    unreadable: Callable[[Path, int, set[int]], bool],
) -> builtins.list[str]:
    """The names of the files whose data is lost, stripe by stripe: each suspect's paths
    (``paths(root, inode)``), kept where ``unreadable(path, inode, offsets)`` confirms the
    damage. A stripe no file fails to read is named by its address."""
    out: builtins.list[str] = []
    checked: dict[tuple[Path, frozenset[int]], bool] = {}
    for start in sorted(stripes):
        named = False
        for (root, inode), offsets in sorted(stripes[start].items()):
            for path in paths(root, inode):
                key = (path, frozenset(offsets))
                if key not in checked:
                    checked[key] = unreadable(path, inode, offsets)
                if checked[key]:
                    named = True
                    if str(path) not in out:
                        out.append(str(path))
        if not named:
            out.append(f"logical address {start} (metadata, or data no file uses any more)")
    return out


def open_beneath(top: Path, path: Path) -> int:
    """Open ``path`` for reading, one component at a time from ``top``, following no symlink
    (root must not be led outside a share); a FIFO does not block."""
    parts = path.relative_to(top).parts
    if not parts or ".." in parts:
        raise OSError(errno.EINVAL, "not beneath the pool", str(path))
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            inner = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = inner
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        return os.open(parts[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)


def read_fails(fd: int, ranges: Iterable[tuple[int, int]]) -> bool:
    """Whether btrfs refuses to hand out a byte range of the open file (EIO: no copy has
    the right checksum). The file's cached pages are dropped first, so a good copy in memory
    does not hide a bad one on disk."""
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    for start, length in ranges:
        position, end = start, start + length
        try:
            while position < end:
                got = len(os.pread(fd, min(end - position, 1024 * 1024), position))
                if got == 0:  # the file is shorter now
                    break
                position += got
        except OSError as exc:
            if exc.errno == errno.EIO:
                return True
            raise
    return False


def unreadable_blocks(top: Path, sector: int) -> Callable[[Path, int, set[int]], bool]:
    """``unreadable(path, inode, offsets)`` for :func:`damaged_files`: the sector at each
    offset of the regular file ``path`` (still inode ``inode``) fails to read."""

    def unreadable(path: Path, inode: int, offsets: set[int]) -> bool:
        try:
            fd = open_beneath(top, path)
        except (OSError, ValueError):
            return False  # gone, renamed, or a symlink now: nothing to confirm
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_ino != inode:
                return False
            return read_fails(fd, [(o - o % sector, sector) for o in sorted(offsets)])
        except OSError:
            return False
        finally:
            os.close(fd)

    return unreadable


def unreadable_files(top: Path) -> builtins.list[str]:
    """Every regular file under ``top`` (snapshots included) that fails to read, found by
    reading them all; symlinks are not followed."""
    out: builtins.list[str] = []
    for folder, _dirs, files, dirfd in os.fwalk(top, follow_symlinks=False):
        for name in sorted(files):
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            try:
                fd = os.open(name, flags, dir_fd=dirfd)
            except OSError:
                continue  # a symlink, or gone
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode) and read_fails(fd, [(0, st.st_size)]):
                    out.append(os.path.join(folder, name))
            except OSError:
                continue
            finally:
                os.close(fd)
    return sorted(out)


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

    def _limit_speed(self, pool: str, uuid: str, devids: builtins.list[int]) -> None:
        """Set every disk's scrub speed to the setting; without one (0), leave the kernel's
        value as it is (an admin may have set it in sysfs). A kernel without the knob scrubs
        at full speed, with an event."""
        limit = self.settings.scrub_speed_limit_mib * 1024 * 1024
        if not limit:
            return
        try:
            btrfs.set_scrub_speed(uuid, devids, limit)
        except OSError as exc:
            self.events.record(
                "warning",
                "scrub.unlimited",
                pool,
                f"scrub of {pool} runs at full speed: the kernel took no limit ({exc})",
            )

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
        info = self.pools.get(pool)
        members = info.disks
        devices = {d.device for d in members if d.device}
        by_devid = {d.devid: d.disk for d in members if d.devid is not None}

        def disk_of(dev: btrfs.DeviceScrub) -> str:
            return by_devid.get(dev.devid, dev.device)

        self._limit_speed(
            pool, info.uuid, [d.devid for d in members if d.devid is not None and d.device]
        )
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
        # missing: as btrfs says, or as the pool's record says (btrfs may still print a
        # path the kernel remembers for a disk that is gone)
        gone = {d.devid for d in members if d.devid is not None and not d.device}
        present = [d for d in result.devices if d.device != MISSING and d.devid not in gone]
        stats = btrfs.scrub_total(present)
        skipped = [disk_of(d) for d in result.devices if d not in present]
        by_disk = {disk_of(d): d.stats for d in present}
        files: builtins.list[str] = []
        if stats.uncorrectable:
            progress(99, "naming the damaged files")
            files = self._damaged_files(mnt, devices, messages, stats.uncorrectable)
        return Outcome(stats, files, by_disk, skipped)

    @staticmethod
    def _damaged_files(
        mnt: Path, devices: set[str], messages: builtins.list[str] | None, uncorrectable: int
    ) -> builtins.list[str]:
        if messages is None:
            log.warning("the kernel log cannot be read: reading every file of %s", mnt)
            return unreadable_files(mnt) or [NO_FILE]
        errors, described = btrfs.parse_scrub_errors(messages, devices)
        logged = sum(1 for e in errors if not e.corrected)
        if logged < uncorrectable:  # one line per bad sector, but rate-limited
            log.warning(
                "the kernel logged %d of %d damaged blocks: reading every file of %s",
                logged,
                uncorrectable,
                mnt,
            )
            return unreadable_files(mnt) or [NO_FILE]
        sector = btrfs.sector_size(mnt)
        stripes: dict[int, Suspects] = {}
        for start in lost_stripes(errors):
            refs = {
                address: btrfs.logical_refs(address, mnt)
                for address in range(start, start + btrfs.STRIPE_LEN, sector)
            }
            stripes[start] = suspects_of(start, refs, described)
        subvolumes: dict[int, Path | None] = {}
        kernel = {(d.root, d.inode): d.path for d in described}

        def paths(root: int, inode: int) -> builtins.list[Path]:
            if root not in subvolumes:
                subvolumes[root] = btrfs.subvolume_path(root, mnt)
            subvolume = subvolumes[root]
            if subvolume is None:
                return []
            found = btrfs.inode_paths(inode, subvolume)
            if not found and (root, inode) in kernel:  # the kernel's own name of the file
                found = [subvolume / kernel[root, inode]]
            return found

        log.info("naming the files of %d damaged stripes of %s", len(stripes), mnt)
        return damaged_files(stripes, paths, unreadable_blocks(mnt, sector))

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
