"""Backup tasks: a share backed up with restic on a schedule (docs/backup.md).

A run takes a read-only btrfs snapshot of the share, backs that up (never the live files, so
the backup is one consistent moment, dated by the snapshot), deletes the snapshot again, then
applies the task's retention (``restic forget --prune``) and, every ``check_days``, lets restic
read back ``check_percent`` of the data (``check --read-data-subset``). Failures are retried
with back-off; ``alert_after`` failures in a row, or no successful backup for ``alert_days``,
are error events (so alerts). Restores go to a new name in a share, never over live files.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import errno
import logging
import os
import re
import socket
import stat
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field

from speicher import schedule
from speicher.backup import restic
from speicher.backup.restic import Repository
from speicher.backup.targets import BackupTargets
from speicher.config import Settings
from speicher.db import BackupTarget, BackupTask, Database
from speicher.db.models import utcnow
from speicher.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    OperationFailed,
    SpeicherError,
    translated,
)
from speicher.events import EventService
from speicher.jobs import JobInfo, JobService
from speicher.jobs.scheduled import ScheduledTasks
from speicher.jobs.service import Progress
from speicher.protection.restore import RestoreService, clear_staging, open_folder, safe_relative
from speicher.storage import ShareService
from speicher.system import beneath, btrfs
from speicher.validation import Name, Request

log = logging.getLogger(__name__)

FROZEN = ".backup"  # <pool>/.backup/<task>/<share>: a run's snapshot of the share
_SNAPSHOT_ID = re.compile(r"^(latest|[0-9a-f]{8,64})$")


class BackupTaskCreate(Request):
    share: Name = Field(max_length=64, description="The share to back up.")
    target: Name = Field(max_length=64, description="The backup target it goes to.")
    schedule: str = Field(max_length=64, description="Cron (UTC), e.g. `0 1 * * *`.")
    keep_last: int = Field(0, ge=0, le=100_000, description="Keep the newest N backups.")
    keep_daily: int = Field(7, ge=0, le=100_000, description="...and the last of N days.")
    keep_weekly: int = Field(4, ge=0, le=100_000, description="...of N weeks.")
    keep_monthly: int = Field(12, ge=0, le=100_000, description="...of N months.")
    keep_yearly: int = Field(0, ge=0, le=100_000, description="...of N years.")
    check_days: float = Field(
        7, ge=0, le=3660, description="Read back part of the data this often; 0: never."
    )
    check_percent: float = Field(5, gt=0, le=100, description="How much of it, in percent.")
    alert_after: int = Field(3, ge=1, le=1000, description="Alert after this many failures.")
    alert_days: float = Field(
        2, ge=0, le=3660, description="Alert when no backup succeeded for N days; 0: never."
    )
    enabled: bool = True


class BackupTaskUpdate(Request):
    schedule: str | None = Field(None, max_length=64)
    keep_last: int | None = Field(None, ge=0, le=100_000)
    keep_daily: int | None = Field(None, ge=0, le=100_000)
    keep_weekly: int | None = Field(None, ge=0, le=100_000)
    keep_monthly: int | None = Field(None, ge=0, le=100_000)
    keep_yearly: int | None = Field(None, ge=0, le=100_000)
    check_days: float | None = Field(None, ge=0, le=3660)
    check_percent: float | None = Field(None, gt=0, le=100)
    alert_after: int | None = Field(None, ge=1, le=1000)
    alert_days: float | None = Field(None, ge=0, le=3660)
    enabled: bool | None = None


class BackupTaskInfo(BaseModel):
    id: int
    share: str
    target: str
    schedule: str
    keep_last: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    keep_yearly: int
    check_days: float
    check_percent: float
    alert_after: int
    alert_days: float
    enabled: bool
    last_run_at: dt.datetime | None
    last_ok_at: dt.datetime | None = Field(description="When the newest backup was made.")
    backup_age_seconds: float | None = Field(description="How old the newest backup is.")
    last_check_at: dt.datetime | None
    last_snapshot: str = Field(description="restic's id of the newest backup.")
    last_files: int
    last_bytes: int = Field(description="Bytes of the share the newest backup holds.")
    last_added: int = Field(description="Bytes it added to the repository.")
    last_seconds: float
    last_error: str
    failures: int = Field(description="Failed runs in a row.")
    next_run_at: dt.datetime | None


class BackupSnapshot(BaseModel):
    id: str
    short_id: str
    time: dt.datetime
    host: str
    tags: list[str]


class BackupRestore(Request):
    snapshot: str = Field(
        "latest", max_length=64, description="restic's id of the backup, or `latest`."
    )
    path: str = Field(
        "", max_length=4096, description="File or folder in the share; empty: the whole share."
    )
    to: str = Field(
        max_length=4096,
        description="`SHARE/PATH`: a new name, or an existing folder to restore into.",
    )


def host_name() -> str:
    """The name the box's backups carry in restic (its retention is per box and share)."""
    name = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name) or "speicher"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _drop(frozen: Path) -> None:
    if frozen.exists():
        with translated("removing a backup's snapshot"):
            btrfs.subvolume_delete(frozen)


class BackupTasks(ScheduledTasks[BackupTask, BackupTaskInfo, BackupTaskCreate, BackupTaskUpdate]):
    kind = "backup"
    late_unit = "days"
    model = BackupTask
    target_model = BackupTarget

    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        jobs: JobService,
        shares: ShareService,
        restore: RestoreService,
        targets: BackupTargets,
    ) -> None:
        super().__init__(db, events, jobs)
        self.settings = settings
        self.shares = shares
        self.restorer = restore
        self.targets = targets

    # -- what it says and shows --------------------------------------------------------------

    def _info(self, task: BackupTask, now: dt.datetime) -> BackupTaskInfo:
        following = schedule.next_try(task.schedule, now, task.failures, task.last_run_at)
        return BackupTaskInfo(
            id=task.id,
            share=task.share.name,
            target=task.target.name,
            schedule=task.schedule,
            keep_last=task.keep_last,
            keep_daily=task.keep_daily,
            keep_weekly=task.keep_weekly,
            keep_monthly=task.keep_monthly,
            keep_yearly=task.keep_yearly,
            check_days=task.check_days,
            check_percent=task.check_percent,
            alert_after=task.alert_after,
            alert_days=task.alert_days,
            enabled=task.enabled,
            last_run_at=task.last_run_at,
            last_ok_at=task.last_ok_at,
            backup_age_seconds=(now - task.last_ok_at).total_seconds() if task.last_ok_at else None,
            last_check_at=task.last_check_at,
            last_snapshot=task.last_snapshot,
            last_files=task.last_files,
            last_bytes=task.last_bytes,
            last_added=task.last_added,
            last_seconds=task.last_seconds,
            last_error=task.last_error,
            failures=task.failures,
            next_run_at=following if task.enabled else None,
        )

    def _unknown(self, task_id: int) -> NotFound:
        return NotFound(f"no backup task {task_id}")

    def _unknown_target(self, target: str) -> NotFound:
        return NotFound(f"no backup target named '{target}'")

    def _taken(self, share: str, target: str) -> Conflict:
        return Conflict(f"share '{share}' has a backup task to '{target}' already", "share")

    def _busy(self, task_id: int) -> Conflict:
        return Conflict(f"backup task {task_id} is busy")

    def _age_limit(self, task: BackupTask) -> float:
        return task.alert_days

    def _late_message(self, task_id: int, age: float, allowed: float) -> str:
        return (
            f"backup task {task_id}: no successful backup for {age:.1f} days (allowed: {allowed:g})"
        )

    # -- running -----------------------------------------------------------------------------

    def run(self, task_id: int) -> JobInfo:
        """Back up now, in a job (409 while the task is busy)."""
        info = self.get(task_id)
        return self._start(
            task_id,
            "backup.task",
            f"{info.share} to {info.target}",
            lambda progress: self._run(task_id, progress),
            "taking a snapshot",
        )

    def _run(self, task_id: int, progress: Progress) -> str:
        started, clock = utcnow(), time.monotonic()
        try:
            info = self.get(task_id)
            repo = self.targets.repository(info.target)
            summary = self._backup(info, repo, progress)
            with self.db.session() as s:
                task = s.get(BackupTask, task_id)
                if task is not None:
                    task.last_run_at = started
                    task.last_ok_at = started
                    task.last_snapshot = str(summary.get("snapshot_id", ""))[:64]
                    task.last_files = int(summary.get("total_files_processed", 0))
                    task.last_bytes = int(summary.get("total_bytes_processed", 0))
                    task.last_added = int(summary.get("data_added", 0))
                    task.last_error = ""
                    task.failures = 0
            self._on_time(task_id)
            progress(96, "applying the retention")
            self._forget(info, repo)
            checked = ""
            if info.check_days and (
                info.last_check_at is None
                or utcnow() - info.last_check_at >= dt.timedelta(days=info.check_days)
            ):
                progress(98, f"checking {info.check_percent:g} % of the data")
                self._check(info, repo)
                checked = f"; {info.check_percent:g} % of the data read back and checked"
            with self.db.session() as s:
                task = s.get(BackupTask, task_id)
                if task is not None:
                    task.last_seconds = time.monotonic() - clock
                    if checked:
                        task.last_check_at = utcnow()
        except SpeicherError as exc:
            self._failed(task_id, started, exc.message)
            raise
        except Exception as exc:
            self._failed(task_id, started, f"internal error: {exc}")
            raise
        return (
            f"backed up {summary.get('total_files_processed', 0)} files, "
            f"{_size(int(summary.get('total_bytes_processed', 0)))} "
            f"({_size(int(summary.get('data_added', 0)))} new) as restic snapshot "
            f"{str(summary.get('snapshot_id', ''))[:8]}{checked}"
        )

    def _backup(self, info: BackupTaskInfo, repo: Repository, progress: Progress) -> dict[str, Any]:
        """Back up a new snapshot of the share; restic's summary."""
        what = f"backup of share {info.share}"
        restic.run(repo, ["unlock"], what, timeout=300)  # locks of a restic that was killed
        share = self.shares.get(info.share)
        frozen = self.frozen(share.pool, info.id, info.share)
        _drop(frozen)  # what a killed run left
        restic.ensure_dir(frozen.parent)
        taken = utcnow()
        with translated(f"{what}: taking its snapshot"):
            btrfs.snapshot(Path(share.path), frozen)
        summary: dict[str, Any] = {}

        def message(m: dict[str, Any]) -> None:
            if m.get("message_type") == "status":
                done, total = int(m.get("bytes_done", 0)), int(m.get("total_bytes", 0))
                eta = m.get("seconds_remaining")
                text = f"{_size(done)} of {_size(total)}" if total else "reading the snapshot"
                if eta is not None:
                    text += f", {int(eta)} s left"
                progress(
                    float(m.get("percent_done", 0)) * 95,
                    text,
                    done=done,
                    total=total,
                    eta=float(eta) if eta is not None else None,
                )
            elif m.get("message_type") == "summary":
                summary.update(m)
                total = int(m.get("total_bytes_processed", 0))
                progress(95, f"{_size(total)} backed up", done=total, total=total, eta=0)

        try:
            progress(0, "backing up")
            restic.run(
                repo,
                ["backup", "--json", "--tag", f"share:{info.share}", "--host", host_name(),
                 "--time", taken.strftime("%Y-%m-%d %H:%M:%S"), "."],
                what,
                on_message=message,
                cwd=frozen,
                ok=(0, 3),
            )  # fmt: skip
        finally:
            _drop(frozen)
        if not summary.get("snapshot_id"):
            raise OperationFailed(f"{what}: restic made no snapshot")
        return summary

    def frozen(self, pool: str, task_id: int, share: str) -> Path:
        """Where a run's snapshot of the share is: the same path every time (restic's
        parent), one per task (two tasks of a share may run at once); root's only."""
        return self.settings.mount_root / pool / FROZEN / str(task_id) / share

    def recover(self) -> None:
        """At start: remove the snapshots of runs a stop or crash cut off."""
        for pool in self.settings.mount_root.glob(f"*/{FROZEN}"):
            for left in pool.glob("*/*"):
                log.info("backup: removing %s, left by a run that was cut off", left)
                _drop(left)

    def _forget(self, info: BackupTaskInfo, repo: Repository) -> None:
        keep = [
            (f"--keep-{kind}", str(n))
            for kind, n in (
                ("last", info.keep_last),
                ("daily", info.keep_daily),
                ("weekly", info.keep_weekly),
                ("monthly", info.keep_monthly),
                ("yearly", info.keep_yearly),
            )
            if n
        ]
        if not keep:
            return  # no rule: every backup stays
        args = ["forget", "--tag", f"share:{info.share}", "--host", host_name(),
                "--group-by", "host,tags", "--prune"]  # fmt: skip
        for option, n in keep:
            args += [option, n]
        restic.run(repo, args, f"retention of share {info.share}", timeout=None)

    def _check(self, info: BackupTaskInfo, repo: Repository) -> None:
        restic.run(
            repo,
            ["check", f"--read-data-subset={info.check_percent:g}%"],
            f"check of the backups of share {info.share}",
        )

    # -- reading back --------------------------------------------------------------------------

    def backups(self, task_id: int) -> builtins.list[BackupSnapshot]:
        """The task's backups in its repository, oldest first."""
        info = self.get(task_id)
        repo = self.targets.repository(info.target)
        found = restic.run_json(
            repo,
            ["snapshots", "--tag", f"share:{info.share}", "--host", host_name()],
            f"the backups of share {info.share}",
            timeout=300,
        )
        return [
            BackupSnapshot(
                id=item["id"],
                short_id=item.get("short_id", item["id"][:8]),
                time=dt.datetime.fromisoformat(item["time"]),
                host=item.get("hostname", ""),
                tags=item.get("tags") or [],
            )
            for item in found or []
        ]

    def restore(self, task_id: int, req: BackupRestore) -> JobInfo:
        """Restore a file, folder or the whole share from a backup, in a job. ``to`` is
        ``SHARE/PATH``: an existing folder (what is restored goes into it, under its own
        name) or a new name in an existing folder; nothing that exists is replaced."""
        info = self.get(task_id)
        if not _SNAPSHOT_ID.match(req.snapshot):
            raise InvalidInput(field="snapshot", reason="give restic's id (hex) or 'latest'")
        source = None if req.path.strip("/") == "" else safe_relative(req.path.strip("/"))
        share, _, rest = req.to.strip("/").partition("/")
        self.shares.get(share.lower())  # NotFound for an unknown share
        dest = None if not rest else safe_relative(rest)
        what = f"'{source}'" if source else f"share {info.share}"
        return self._start(
            task_id,
            "backup.restore",
            f"{what} to {req.to}",
            lambda progress: self._restore(info, req.snapshot, source, share.lower(), dest),
            "restoring",
        )

    def _restore(
        self,
        info: BackupTaskInfo,
        snapshot: str,
        source: PurePosixPath | None,
        share: str,
        dest: PurePosixPath | None,
    ) -> str:
        repo = self.targets.repository(info.target)
        # restic puts the share's files at the top of what it restores (it read them from
        # "." in the snapshot's folder)
        name = source.name if source else info.share
        with contextlib.ExitStack() as fds:

            def keep(fd: int) -> int:
                fds.callback(os.close, fd)
                return fd

            top = keep(beneath.open_root(self.shares.path(share)))
            at = PurePosixPath(".")
            if dest is not None:
                there = beneath.lstat(
                    keep(open_folder(top, dest.parent, f"share {share}")), dest.name
                )
                if there is not None and stat.S_ISDIR(there.st_mode):
                    at = dest
                else:
                    at, name = dest.parent, dest.name
            folder = keep(open_folder(top, at, f"share {share}"))
            shown = f"{share}/{at / name}".replace("/./", "/")
            if beneath.lstat(folder, name) is not None:
                raise Conflict(f"{shown} exists; nothing was restored")
            staging = keep(self.restorer.staging(share, top))
            tmp = uuid.uuid4().hex
            try:
                args = ["restore", snapshot, "--target", beneath.proc_path(staging, tmp)]
                if snapshot == "latest":
                    args += ["--tag", f"share:{info.share}", "--host", host_name()]
                if source is not None:
                    args += ["--include", f"/{source}"]
                restic.run(repo, args, f"restore from backup {snapshot}", pass_fds=(staging,))
                if source is None:
                    with beneath.opened(beneath.open_dir(staging, tmp)) as restored:
                        _like(restored, folder)
                    beneath.rename(staging, tmp, folder, name, noreplace=True)
                else:
                    try:
                        restored = keep(
                            beneath.open_dir(staging, PurePosixPath(tmp) / source.parent)
                        )
                    except (FileNotFoundError, NotADirectoryError):
                        restored = -1
                    if restored < 0 or beneath.lstat(restored, source.name) is None:
                        raise NotFound(f"'{source}' is not in backup {snapshot}")
                    beneath.rename(restored, source.name, folder, name, noreplace=True)
            except FileExistsError:
                raise Conflict(f"{shown} appeared meanwhile; nothing was restored") from None
            finally:
                clear_staging(staging, tmp)
        result = shown
        self.events.record(
            "info",
            "backup.restored",
            share,
            f"{'/' + str(source) if source else 'share ' + info.share} restored from backup "
            f"{snapshot} to {result}",
        )
        return f"restored to {result}"


def _like(restored: int, folder: int) -> None:
    """Give a restored share's top folder (restic keeps no record of it) the owner, mode and
    ACLs of the folder it is restored into, so the users who may enter one enter the other."""
    st = os.fstat(folder)
    os.fchown(restored, st.st_uid, st.st_gid)
    os.fchmod(restored, stat.S_IMODE(st.st_mode))
    for attribute in ("system.posix_acl_access", "system.posix_acl_default"):
        try:
            os.setxattr(restored, attribute, os.getxattr(folder, attribute))
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                raise
