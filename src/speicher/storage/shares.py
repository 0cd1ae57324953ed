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
from speicher.storage.models import GrantInfo, ShareCreate, ShareInfo, ShareUpdate
from speicher.storage.pools import PoolService
from speicher.system import acl, btrfs
from speicher.system.run import CommandError

log = logging.getLogger(__name__)


def share_path(settings: Settings, pool: str, share: str) -> Path:
    return settings.mount_root / pool / share


class ShareService:
    def __init__(
        self, settings: Settings, db: Database, events: EventService, pools: PoolService
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.pools = pools

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
        used = 0
        if self.pools.is_mounted(share.pool.name):
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
            created_at=share.created_at,
        )

    # -- changing ----------------------------------------------------------------------------

    def create(self, req: ShareCreate) -> ShareInfo:
        """Make the subvolume, set quota and compression, lock it down to root, then record it."""
        v = Validator()
        if reason := names.share_name(req.name):
            v.add("name", reason)
        quota = _quota(req.quota, v)
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
                btrfs.subvolume_create(path)
                btrfs.set_compression(path, req.compression)
                if quota is not None:
                    btrfs.qgroup_limit(path, quota)
                acl.set_root(path, [])
            with self.db.session() as s:
                s.add(
                    Share(
                        name=req.name,
                        pool_id=pool.id,
                        quota=quota,
                        compression=req.compression,
                        description=req.description,
                    )
                )
        except IntegrityError:
            _remove_subvolume(path)
            raise Conflict(f"share '{req.name}' already exists") from None
        except BaseException:
            _remove_subvolume(path)
            raise
        self.events.record(
            "info", "share.created", req.name, f"share {req.name} created on pool {req.pool}"
        )
        return self.get(req.name)

    def update(self, name: str, req: ShareUpdate) -> ShareInfo:
        v = Validator()
        clear_quota = req.quota is not None and req.quota.strip().lower() == "none"
        quota = None if clear_quota else _quota(req.quota, v)
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
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete a share and every file in it."""
        path = self.path(name)
        if path.exists():
            with translated("deleting the subvolume"):
                btrfs.subvolume_delete(path)
        with self.db.session() as s:
            s.delete(self._row(s, name))
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
