"""Shares: btrfs subvolumes with a quota, compression and grants."""

from __future__ import annotations

import builtins
import contextlib
import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from speicher import names
from speicher.config import Settings
from speicher.db import Database, Pool, Share
from speicher.errors import Conflict, InvalidInput, NotFound, Validator, translated
from speicher.events import EventService
from speicher.hooks import SHARE_DELETING, SHARES_CHANGED, Hooks
from speicher.storage.models import (
    GrantInfo,
    ShareCreate,
    ShareInfo,
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


class ShareService:
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

    @staticmethod
    def _row(s: Session, name: str) -> Share:
        share = s.scalars(select(Share).where(Share.name == name)).first()
        if share is None:
            raise NotFound(f"share '{name}' does not exist")
        return share

    def path(self, name: str) -> Path:
        with self.db.session() as s:
            share = self._row(s, name)
            return share_path(self.settings, share.pool.name, share.name)

    # -- reading -----------------------------------------------------------------------------

    def list(self, pool: str | None = None) -> list[ShareInfo]:
        with self.db.session() as s:
            query = select(Share).order_by(Share.name)
            if pool:
                query = query.join(Pool).where(Pool.name == pool)
            return [self._info(sh) for sh in s.scalars(query)]

    def get(self, name: str) -> ShareInfo:
        with self.db.session() as s:
            return self._info(self._row(s, name))

    def _info(self, share: Share) -> ShareInfo:
        path = share_path(self.settings, share.pool.name, share.name)
        used = 0  # also when the pool is not mounted: then the path is not a subvolume
        with contextlib.suppress(CommandError, ValueError):
            used = btrfs.qgroup_show(path).referenced
        grants = [
            GrantInfo(
                principal="user" if g.user else "group",
                name=g.user.name if g.user else g.group.name if g.group else "",
                access=g.access,
            )
            for g in share.grants
        ]
        return ShareInfo(
            name=share.name,
            pool=share.pool.name,
            path=str(path),
            quota=share.quota,
            used=used,
            compression=share.compression,
            description=share.description,
            grants=grants,
            smb=smb_options(share),
            snapshots_dir=str(snapshots_dir(self.settings, share.pool.name, share.name)),
            created_at=share.created_at,
        )

    # -- changing ----------------------------------------------------------------------------

    def create(self, req: ShareCreate, from_snapshot: Path | None = None) -> ShareInfo:
        """Make the subvolume, set quota and compression, lock it down to root, then record it."""
        v = Validator()
        if reason := names.share_name(req.name):
            v.add("name", reason)
        quota = _quota(req.quota, v)
        tm_size = _check_smb(req.smb, v)
        with self.db.session() as s:
            if s.scalars(select(Share).where(Share.name == req.name)).first():
                v.add("name", f"share '{req.name}' already exists")
            pool = s.scalars(select(Pool).where(Pool.name == req.pool)).first()
            if pool is None:
                v.add("pool", f"pool '{req.pool}' does not exist")
            elif pool.state != "ready" or not self.pools.is_mounted(req.pool):
                v.add("pool", f"pool '{req.pool}' is not mounted")
        v.check()
        assert pool is not None
        path = share_path(self.settings, req.pool, req.name)
        if path.exists():
            raise Conflict(f"{path} already exists on the pool")
        try:
            with translated("creating the subvolume"):
                if from_snapshot is None:
                    btrfs.subvolume_create(path)
                    acl.set_root(path, [])
                else:  # a clone: the snapshot's files, folders and permissions
                    btrfs.snapshot_writable(from_snapshot, path)
                btrfs.set_compression(path, req.compression)
                if quota is not None:
                    btrfs.qgroup_limit(path, quota)
            with self.db.session() as s:
                share = Share(
                    name=req.name,
                    pool_id=pool.id,
                    quota=quota,
                    compression=req.compression,
                    description=req.description,
                )
                if req.smb is not None:
                    _apply_smb(share, req.smb, tm_size)
                s.add(share)
        except IntegrityError:
            _remove_subvolume(path)
            raise Conflict(f"share '{req.name}' already exists") from None
        except BaseException:
            _remove_subvolume(path)
            raise
        self.hooks.emit(SHARES_CHANGED, share=req.name)
        self.events.record(
            "info", "share.created", req.name, f"share {req.name} created on pool {req.pool}"
        )
        return self.get(req.name)

    def update(self, name: str, req: ShareUpdate) -> ShareInfo:
        v = Validator()
        clear_quota = req.quota is not None and req.quota.strip().lower() == "none"
        quota = None if clear_quota else _quota(req.quota, v)
        tm_size = _check_smb(req.smb, v)
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
        self.hooks.emit(SHARES_CHANGED, share=name)
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete a share, its snapshots and every file in it."""
        self.hooks.emit(SHARE_DELETING, share=name)
        path = self.path(name)
        info = self.get(name)
        snaps = snapshots_dir(self.settings, info.pool, name)
        if snaps.is_dir():
            with translated("deleting the share's snapshots"):
                for snap in sorted(snaps.iterdir()):
                    btrfs.subvolume_delete(snap)
            snaps.rmdir()
        if path.exists():
            with translated("deleting the subvolume"):
                btrfs.subvolume_delete(path)
        with self.db.session() as s:
            s.delete(self._row(s, name))
        self.hooks.emit(SHARES_CHANGED)
        self.events.record("info", "share.deleted", name, f"share {name} deleted")

    def check_all(self) -> builtins.list[str]:
        """Names of shares whose subvolume is gone from a mounted pool."""
        missing = []
        for share in self.list():
            if self.pools.is_mounted(share.pool) and not Path(share.path).is_dir():
                missing.append(share.name)
                self.events.record(
                    "error",
                    "share.missing",
                    share.name,
                    f"share {share.name}: {share.path} is missing",
                )
        return missing


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
