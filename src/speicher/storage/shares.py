"""Shares: btrfs subvolumes with a quota, compression and grants."""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from speicher import names
from speicher.config import Settings
from speicher.db import Database, Grant, Pool, Share
from speicher.errors import Conflict, InvalidInput, NotFound, SpeicherError, Validator, translated
from speicher.events import EventService
from speicher.faults import crash_point
from speicher.hooks import SHARE_DELETING, SHARES_CHANGED, Hooks
from speicher.storage.models import (
    GrantInfo,
    ShareCreate,
    ShareInfo,
    ShareState,
    ShareUpdate,
    SmbOptions,
    SmbOptionsUpdate,
)
from speicher.storage.pools import PoolService
from speicher.system import acl, btrfs
from speicher.system.run import CommandError

log = logging.getLogger(__name__)


def share_path(settings: Settings, pool: str, share: str) -> Path:
    return settings.mount_root / pool / share


def snapshots_dir(settings: Settings, pool: str, share: str) -> Path:
    """Read-only snapshots of a share live here, named ``@GMT-YYYY.MM.DD-HH.MM.SS``."""
    return settings.mount_root / pool / ".snapshots" / share


def smb_options(share: Share) -> SmbOptions:
    return SmbOptions(
        enabled=share.smb_enabled,
        browseable=share.smb_browseable,
        access_based_enumeration=share.smb_abe,
        recycle=share.smb_recycle,
        recycle_days=share.smb_recycle_days,
        mac=share.smb_fruit,
        time_machine=share.smb_time_machine,
        time_machine_size=share.smb_time_machine_size,
        encrypt=share.smb_encrypt,
        guest=share.smb_guest,
    )


def _check_smb(req: SmbOptionsUpdate | None, v: Validator) -> int | None:
    """Validate SMB options; return the Time Machine size limit in bytes (None: unchanged or
    none)."""
    if req is None or req.time_machine_size is None:
        return None
    if req.time_machine_size.strip().lower() == "none":
        return None
    try:
        return names.parse_size(req.time_machine_size)
    except ValueError as exc:
        v.add("smb.time_machine_size", str(exc))
        return None


def _apply_smb(share: Share, req: SmbOptionsUpdate, tm_size: int | None) -> None:
    fields = {
        "enabled": "smb_enabled",
        "browseable": "smb_browseable",
        "access_based_enumeration": "smb_abe",
        "recycle": "smb_recycle",
        "recycle_days": "smb_recycle_days",
        "mac": "smb_fruit",
        "time_machine": "smb_time_machine",
        "encrypt": "smb_encrypt",
        "guest": "smb_guest",
    }
    for field, column in fields.items():
        value = getattr(req, field)
        if value is not None:
            setattr(share, column, value)
    if req.time_machine_size is not None:
        share.smb_time_machine_size = tm_size
    if share.smb_time_machine:
        share.smb_fruit = True  # Time Machine is a macOS feature: it needs vfs_fruit


def _apply_protocols(share: Share, req: ShareCreate | ShareUpdate) -> None:
    """WebDAV and SFTP on or off; null leaves a switch as it is."""
    if req.webdav is not None:
        share.webdav_enabled = req.webdav
    if req.sftp is not None:
        share.sftp_enabled = req.sftp
    if req.sync is not None:
        share.write_sync = req.sync
    if req.audit_reads is not None:
        share.audit_reads = req.audit_reads
    if isinstance(req, ShareUpdate) and req.read_only is not None:
        share.read_only = req.read_only
    if req.s3 is not None:
        why = names.bucket_name(share.name) if req.s3 else None
        if why is not None:
            raise InvalidInput(field="s3", reason=f"share '{share.name}' cannot be a bucket: {why}")
        share.s3_enabled = req.s3


@dataclass(frozen=True)
class _Row:
    """What a listing needs of a share row, read in one short session."""

    name: str
    pool: str
    state: str
    quota: int | None
    compression: str
    description: str
    grants: builtins.list[GrantInfo]
    smb: SmbOptions
    webdav: bool
    sftp: bool
    sync: str
    s3: bool
    audit_reads: bool
    read_only: bool
    created_at: dt.datetime


def _row_of(share: Share) -> _Row:
    return _Row(
        name=share.name,
        pool=share.pool.name,
        state=share.state,
        quota=share.quota,
        compression=share.compression,
        description=share.description,
        grants=[
            GrantInfo(
                principal="user" if g.user else "group",
                name=g.user.name if g.user else g.group.name if g.group else "",
                access=g.access,
            )
            for g in share.grants
        ],
        smb=smb_options(share),
        webdav=share.webdav_enabled,
        sftp=share.sftp_enabled,
        sync=share.write_sync,
        s3=share.s3_enabled,
        audit_reads=share.audit_reads,
        read_only=share.read_only,
        created_at=share.created_at,
    )


class ShareService:
    """Shares. Creating and deleting one are recorded first (``state``): a start after a crash
    undoes a half-made share and finishes a half-deleted one (:meth:`recover`)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        pools: PoolService,
        hooks: Hooks,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.pools = pools
        self.hooks = hooks
        # pool -> (monotonic time, subvolume path -> referenced bytes): listings of many shares
        # by many clients cost one btrfs command per pool and refresh period
        self._usage: dict[str, tuple[float, dict[str, int]]] = {}
        self._usage_lock = threading.Lock()

    def used(self, pool: str, share: str) -> int:
        """The bytes ``share`` takes (btrfs's qgroup figure, at most 5 s old): what file
        protocols report as used against a quota (``ShareFS``)."""
        return self._used(pool, share, 5.0)

    def _used(self, pool: str, share: str, max_age: float) -> int:
        now = time.monotonic()
        cached = self._usage.get(pool)
        if cached is None or now - cached[0] > max_age:
            with self._usage_lock:
                cached = self._usage.get(pool)
                if cached is None or now - cached[0] > max_age:
                    try:
                        found = btrfs.qgroups(self.pools.mountpoint(pool))
                    except CommandError:
                        found = {}
                    used = {path: q.referenced for path, q in found.items()}
                    cached = (time.monotonic(), used)
                    self._usage[pool] = cached
        return cached[1].get(share, 0)

    @staticmethod
    def _row(s: Session, name: str) -> Share:
        share = s.scalars(select(Share).where(Share.name == names.normalize(name))).first()
        if share is None or share.state == "creating":
            raise NotFound(f"share '{name}' does not exist")
        return share

    def path(self, name: str) -> Path:
        with self.db.session() as s:
            share = self._row(s, name)
            return share_path(self.settings, share.pool.name, share.name)

    # -- reading -----------------------------------------------------------------------------

    def names(self) -> builtins.list[str]:
        """The shares' names, sorted (one query: for choosers and pages of a long list)."""
        with self.db.session() as s:
            found = s.scalars(
                select(Share.name).where(Share.state != "creating").order_by(Share.name)
            )
            return builtins.list(found)

    def list(
        self, pool: str | None = None, only: Collection[str] | None = None
    ) -> builtins.list[ShareInfo]:
        """The shares (of ``pool``; only those named in ``only``), by name."""
        with self.db.session() as s:
            query = (
                select(Share)
                .where(Share.state != "creating")
                .order_by(Share.name)
                # three queries for any number of shares, not three per share
                .options(
                    joinedload(Share.pool),
                    selectinload(Share.grants).joinedload(Grant.user),
                    selectinload(Share.grants).joinedload(Grant.group),
                )
            )
            if pool:
                query = query.join(Pool).where(Pool.name == pool)
            if only is not None:
                query = query.where(Share.name.in_(builtins.list(only)))
            rows = [_row_of(sh) for sh in s.scalars(query)]
        mounted: dict[str, bool] = {}  # a pool's mount is looked at once, not once per share
        return [self._info(r, self.pools.fact_age, mounted) for r in rows]

    def get(self, name: str, max_age: float = 0.0) -> ShareInfo:
        """The share; ``max_age``: how many seconds old its usage may be (0: read now, one
        ``btrfs qgroup show`` of its pool)."""
        with self.db.session() as s:
            row = _row_of(self._row(s, name))
        return self._info(row, max_age)

    def locate(self, name: str) -> tuple[str, str]:
        """The pool and the (normalized) name of a share, from the database only: for what
        needs to know where a share lives, not how full it is."""
        with self.db.session() as s:
            share = self._row(s, name)
            return share.pool.name, share.name

    def _info(self, row: _Row, max_age: float, mounted: dict[str, bool] | None = None) -> ShareInfo:
        """A share as users see it; runs no database session (it may run btrfs).
        ``mounted``: pools whose mount was looked at already (by :meth:`list`)."""
        path = share_path(self.settings, row.pool, row.name)
        state: ShareState = row.state  # type: ignore[assignment]
        problem = ""
        used = 0
        if state == "ready":
            seen = mounted if mounted is not None else {}
            if row.pool not in seen:
                seen[row.pool] = os.path.ismount(self.pools.mountpoint(row.pool))
            if not seen[row.pool]:
                state = "unavailable"
                problem = f"pool {row.pool} is not mounted"
                if reason := self.pools.problem(row.pool):
                    problem += f": {reason}"
            elif not path.is_dir():
                state, problem = "unavailable", f"its folder {path} is missing"
            else:
                used = self._used(row.pool, row.name, max_age)
        return ShareInfo(
            name=row.name,
            pool=row.pool,
            state=state,
            problem=problem,
            path=str(path),
            quota=row.quota,
            used=used,
            compression=row.compression,
            description=row.description,
            grants=row.grants,
            smb=row.smb,
            webdav=row.webdav,
            sftp=row.sftp,
            sync=row.sync,
            s3=row.s3,
            audit_reads=row.audit_reads,
            read_only=row.read_only,
            snapshots_dir=str(snapshots_dir(self.settings, row.pool, row.name)),
            created_at=row.created_at,
        )

    # -- changing ----------------------------------------------------------------------------

    def create(self, req: ShareCreate, from_snapshot: Path | None = None) -> ShareInfo:
        """Record the share as ``creating``, make the subvolume, set quota and compression, lock
        it down to root, then mark it ready; a failure undoes every step."""
        name, pool_name = names.normalize(req.name), names.normalize(req.pool)
        v = Validator()
        if reason := names.share_name(name):
            v.add("name", reason)
        quota = _quota(req.quota, v)
        tm_size = _check_smb(req.smb, v)
        with self.db.session() as s:
            pool = s.scalars(select(Pool).where(Pool.name == pool_name)).first()
            pool_ready = pool is not None and pool.state == "ready"
            exists = s.scalars(select(Share).where(Share.name == name)).first() is not None
        if pool is None:
            v.add("pool", f"pool '{pool_name}' does not exist")
        elif not pool_ready or not self.pools.is_mounted(pool_name):
            v.add("pool", f"pool '{pool_name}' is not mounted")
        else:
            _check_sizes(self.pools.get(pool_name).size, pool_name, quota, tm_size, v)
        why = names.bucket_name(name) if req.s3 else None
        if why is not None:
            v.add("s3", f"share '{name}' cannot be a bucket: {why}")
        v.check()
        assert pool is not None
        if exists:
            raise Conflict(f"share '{name}' already exists", field="name")
        path = share_path(self.settings, pool_name, name)
        if os.path.lexists(path):
            raise Conflict(f"{path} already exists on the pool", field="name")
        try:
            with self.db.session() as s:
                share = Share(
                    name=name,
                    pool_id=pool.id,
                    state="creating",
                    quota=quota,
                    compression=req.compression,
                    description=req.description,
                )
                if req.smb is not None:
                    _apply_smb(share, req.smb, tm_size)
                _apply_protocols(share, req)
                s.add(share)
        except IntegrityError:
            raise Conflict(f"share '{name}' already exists", field="name") from None
        try:
            crash_point("share.create.recorded")
            _make_subvolume(path, req.compression, quota, from_snapshot)
            crash_point("share.create.subvolume")
            with self.db.session() as s:
                s.scalars(select(Share).where(Share.name == name)).one().state = "ready"
        except BaseException:
            self._undo_create(name, path)
            raise
        self.hooks.emit(SHARES_CHANGED, share=name)
        self.events.record(
            "info", "share.created", name, f"share {name} created on pool {pool_name}"
        )
        return self.get(name)

    def _undo_create(self, name: str, path: Path) -> None:
        _remove_subvolume(path)
        with self.db.session() as s:
            row = s.scalars(select(Share).where(Share.name == name)).first()
            if row is not None:
                s.delete(row)

    def update(self, name: str, req: ShareUpdate) -> ShareInfo:
        v = Validator()
        clear_quota = req.quota is not None and req.quota.strip().lower() == "none"
        quota = None if clear_quota else _quota(req.quota, v)
        tm_size = _check_smb(req.smb, v)
        v.check()
        with self.db.session() as s:
            row = self._row(s, name)
            name, pool, old_quota = row.name, row.pool.name, row.quota
            tm_on = (
                row.smb_time_machine
                if req.smb is None or req.smb.time_machine is None
                else (req.smb.time_machine)
            )
        if quota is not None or (tm_size is not None and tm_on):
            _check_sizes(
                self.pools.get(pool).size,
                pool,
                quota,
                tm_size if tm_on else None,
                v,
                limit=quota if quota is not None else (None if clear_quota else old_quota),
            )
            v.check()
        path = self.path(name)
        if quota is not None:
            with translated("reading the share's usage"):
                btrfs.sync(path)
                used = btrfs.qgroup_show(path).referenced
            if quota < used:
                raise InvalidInput(
                    field="quota",
                    reason=f"{names.format_size(quota)} is below "
                    f"what the share uses now ({names.format_size(used)})",
                )
        with translated("changing the share"):
            if quota is not None or clear_quota:
                btrfs.qgroup_limit(path, quota)
            if req.compression is not None:
                btrfs.set_compression(path, req.compression)
        with self.db.session() as s:
            share = self._row(s, name)
            if quota is not None or clear_quota:
                share.quota = quota
            if req.compression is not None:
                share.compression = req.compression
            if req.description is not None:
                share.description = req.description
            if req.smb is not None:
                _apply_smb(share, req.smb, tm_size)
            _apply_protocols(share, req)
        self.hooks.emit(SHARES_CHANGED, share=name)
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete a share, its snapshots and every file in it. The intent is recorded first;
        SMB stops offering the share before its files go."""
        with self.db.session() as s:
            name = self._row(s, name).name
        self.hooks.emit(SHARE_DELETING, share=name)
        with self.db.session() as s:
            self._row(s, name).state = "deleting"
        crash_point("share.delete.recorded")
        self.hooks.emit(SHARES_CHANGED)
        self._finish_delete(name)

    def _finish_delete(self, name: str) -> None:
        with self.db.session() as s:
            share = s.scalars(select(Share).where(Share.name == name)).one()
            pool = share.pool.name
        if not os.path.ismount(self.pools.mountpoint(pool)):
            raise Conflict(f"share '{name}' cannot be deleted while pool {pool} is not mounted")
        path = share_path(self.settings, pool, name)
        snaps = snapshots_dir(self.settings, pool, name)
        if snaps.is_dir() and not snaps.is_symlink():
            with translated("deleting the share's snapshots"):
                for snap in sorted(snaps.iterdir()):
                    if btrfs.is_subvolume(snap):
                        btrfs.subvolume_delete(snap)
            with contextlib.suppress(OSError):
                snaps.rmdir()
        crash_point("share.delete.snapshots")
        if os.path.lexists(path):
            with translated("deleting the subvolume"):
                btrfs.subvolume_delete(path)
        crash_point("share.delete.subvolume")
        with self.db.session() as s:
            row = s.scalars(select(Share).where(Share.name == name)).first()
            if row is not None:
                s.delete(row)
        self.hooks.emit(SHARES_CHANGED)
        self.events.record("info", "share.deleted", name, f"share {name} deleted")

    def recover(self) -> None:
        """Undo half-made shares and finish half-deleted ones (after a crash), for pools that
        are mounted; the others wait for their pool."""
        with self.db.session() as s:
            pending = [
                (sh.name, sh.pool.name, sh.state)
                for sh in s.scalars(select(Share).where(Share.state != "ready"))
            ]
        for name, pool, state in pending:
            if not os.path.ismount(self.pools.mountpoint(pool)):
                continue
            try:
                if state == "creating":
                    log.warning("share %s was being created when the daemon stopped", name)
                    self._undo_create(name, share_path(self.settings, pool, name))
                    self.events.record(
                        "warning",
                        "share.create-interrupted",
                        name,
                        f"creation of share {name} was interrupted and undone",
                    )
                elif state == "deleting":
                    log.warning("share %s was being deleted when the daemon stopped", name)
                    self._finish_delete(name)
            except SpeicherError as exc:
                self.events.record("error", "share.recover-failed", name, exc.message)

    def check_all(self) -> builtins.list[str]:
        """Names of shares whose subvolume is gone from a mounted pool (an event each)."""
        missing = []
        for share in self.list():
            if share.state == "unavailable" and share.problem.startswith("its folder"):
                missing.append(share.name)
                self.events.record(
                    "error", "share.missing", share.name, f"share {share.name}: {share.problem}"
                )
        return missing


def _make_subvolume(
    path: Path, compression: str, quota: int | None, from_snapshot: Path | None
) -> None:
    """The share's subvolume, locked down to root until grants open it. A clone starts from
    the snapshot's files, and its top folder is locked down too: the grants copied next open
    it again, so a crash in between leaves no access the database does not know of."""
    with translated("creating the subvolume"):
        if from_snapshot is None:
            btrfs.subvolume_create(path)
        else:
            btrfs.snapshot_writable(from_snapshot, path)
        acl.set_root(path, [])
        btrfs.set_compression(path, compression)
        if quota is not None:
            btrfs.qgroup_limit(path, quota)


def _check_sizes(
    pool_size: int,
    pool: str,
    quota: int | None,
    tm_size: int | None,
    v: Validator,
    limit: int | None = None,
) -> None:
    """A quota cannot be larger than the pool, nor a Time Machine size than what the share
    may hold (its quota, else the pool)."""
    limit = quota if limit is None else limit
    if quota is not None and pool_size and quota > pool_size:
        v.add(
            "quota",
            f"{names.format_size(quota)} is larger than pool {pool} "
            f"({names.format_size(pool_size)} usable)",
        )
    room = limit if limit is not None else pool_size
    if tm_size is not None and room and tm_size > room:
        tm, free = names.format_size(tm_size), names.format_size(room)
        # each a whole sentence: the web console translates reasons by their templates
        v.add(
            "smb.time_machine_size",
            f"{tm} is larger than the share's quota ({free})"
            if limit is not None
            else f"{tm} is larger than pool {pool} ({free})",
        )


def _quota(text: str | None, v: Validator) -> int | None:
    if text is None:
        return None
    try:
        size = names.parse_size(text)
    except ValueError as exc:
        v.add("quota", str(exc))
        return None
    if size < 1024**2:
        v.add("quota", "must be at least 1M")
        return None
    return size


def _remove_subvolume(path: Path) -> None:
    if path.exists():
        with contextlib.suppress(CommandError):
            btrfs.subvolume_delete(path)
