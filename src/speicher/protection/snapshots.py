"""Snapshots: read-only btrfs snapshots of a share at
``<mount_root>/<pool>/.snapshots/<share>/@GMT-YYYY.MM.DD-HH.MM.SS``, the names Samba's
``shadow_copy2`` shows as Windows "Previous Versions". The filesystem says which exist; the
database adds what it cannot: locks and the policy that took a snapshot.

A locked snapshot cannot be deleted through Speicher before its time, by anyone: the API,
the CLI, a retention run, deleting its share or destroying its pool all ask here first.
"""

from __future__ import annotations

import builtins
import datetime as dt
import re
from pathlib import Path

from sqlalchemy import select

from speicher.config import Settings
from speicher.db import Database, Share, SnapshotMeta, SnapshotPolicy
from speicher.errors import Conflict, Forbidden, InvalidInput, NotFound, translated
from speicher.events import EventService
from speicher.hooks import POOL_DESTROYING, SHARE_DELETING, Hooks
from speicher.protection.models import SnapshotInfo
from speicher.storage import ShareService
from speicher.storage.shares import snapshots_dir
from speicher.system import btrfs

FORMAT = "@GMT-%Y.%m.%d-%H.%M.%S"
_NAME = re.compile(r"@GMT-\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}")


def parse_name(name: str) -> dt.datetime | None:
    """The UTC time a snapshot name stands for, or None if it is not one."""
    if not _NAME.fullmatch(name):
        return None
    try:
        return dt.datetime.strptime(name, FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SnapshotService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        shares: ShareService,
        hooks: Hooks,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.shares = shares
        hooks.subscribe(SHARE_DELETING, self._refuse_if_locked)
        hooks.subscribe(POOL_DESTROYING, self._refuse_pool_if_locked)

    def directory(self, share: str) -> Path:
        pool, name = self.shares.locate(share)
        return snapshots_dir(self.settings, pool, name)

    # -- reading -------------------------------------------------------------------------------

    def _meta(self, share: str) -> dict[str, tuple[dt.datetime | None, str | None]]:
        with self.db.session() as s:
            rows = s.execute(
                select(SnapshotMeta.name, SnapshotMeta.locked_until, SnapshotPolicy.name)
                .join(Share, Share.id == SnapshotMeta.share_id)
                .outerjoin(SnapshotPolicy, SnapshotPolicy.id == SnapshotMeta.policy_id)
                .where(Share.name == share)
            ).all()
        return {name: (until, policy) for name, until, policy in rows}

    def _info(
        self,
        share: str,
        path: Path,
        meta: tuple[dt.datetime | None, str | None] | None,
        exclusive: bool = False,
    ) -> SnapshotInfo:
        time = parse_name(path.name)
        assert time is not None
        until, policy = meta or (None, None)
        size = None
        if exclusive:
            try:
                size = btrfs.qgroup_show(path).exclusive
            except (ValueError, Exception):
                size = None
        return SnapshotInfo(
            share=share,
            name=path.name,
            time=time,
            path=str(path),
            locked_until=until,
            policy=policy,
            exclusive=size,
        )

    def list(self, share: str) -> builtins.list[SnapshotInfo]:
        """Snapshots of a share, oldest first."""
        directory = self.directory(share)
        if not directory.is_dir():
            return []
        meta = self._meta(share)
        return [
            self._info(share, p, meta.get(p.name))
            for p in sorted(directory.iterdir())
            if parse_name(p.name) is not None and p.is_dir()
        ]

    def get(self, share: str, name: str, exclusive: bool = False) -> SnapshotInfo:
        target = self.directory(share) / name
        if parse_name(name) is None or not target.is_dir():
            raise NotFound(f"share '{share}' has no snapshot {name}")
        return self._info(share, target, self._meta(share).get(name), exclusive)

    # -- changing ------------------------------------------------------------------------------

    def create(
        self,
        share: str,
        name: str | None = None,
        locked_until: dt.datetime | None = None,
        policy_id: int | None = None,
        now: dt.datetime | None = None,
    ) -> SnapshotInfo:
        source = self.shares.path(share)
        self.check_lock(locked_until, "locked_until", now)
        directory = self.directory(share)
        if name is None:
            # names have one-second steps: a second snapshot within the same second (a
            # safety snapshot right after a manual one) takes the next free second
            when = now or now_utc()
            while (directory / when.strftime(FORMAT)).exists():
                when += dt.timedelta(seconds=1)
            name = when.strftime(FORMAT)
        if parse_name(name) is None:
            raise InvalidInput(field="name", reason="must look like @GMT-2026.01.31-23.59.59")
        target = directory / name
        if target.exists():
            raise Conflict(f"snapshot {name} of share '{share}' already exists")
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        directory.parent.chmod(0o755)
        with translated("taking the snapshot"):
            btrfs.snapshot(source, target)
        if locked_until is not None or policy_id is not None:
            with self.db.session() as s:
                share_id = s.scalars(select(Share.id).where(Share.name == share)).one()
                s.add(
                    SnapshotMeta(
                        share_id=share_id, name=name, policy_id=policy_id, locked_until=locked_until
                    )
                )
        lock = f", locked until {locked_until:%Y-%m-%d %H:%M} UTC" if locked_until else ""
        self.events.record("info", "snapshot.created", share, f"snapshot {name} of {share}{lock}")
        return self.get(share, name)

    def check_lock(
        self, until: dt.datetime | None, field: str, now: dt.datetime | None = None
    ) -> None:
        """A lock may not reach further than the configured maximum (``max_lock_days``): a
        leaked token must not be able to lock data for centuries."""
        if until is None:
            return
        until = until if until.tzinfo else until.replace(tzinfo=dt.UTC)
        latest = (now or now_utc()) + dt.timedelta(days=self.settings.max_lock_days)
        if until > latest:
            raise InvalidInput(
                field=field,
                reason=f"may be at most {self.settings.max_lock_days} days from now "
                f"(until {latest:%Y-%m-%d}); the limit is the setting max_lock_days",
            )

    def lock(self, share: str, name: str, until: dt.datetime) -> SnapshotInfo:
        """Lock a snapshot until ``until``. Locks can be extended, never shortened."""
        snap = self.get(share, name)
        until = until if until.tzinfo else until.replace(tzinfo=dt.UTC)
        self.check_lock(until, "until")
        if snap.locked_until and until < snap.locked_until:
            raise Forbidden(
                f"snapshot {name} is locked until {snap.locked_until:%Y-%m-%d %H:%M} UTC; "
                "a lock can be extended, not shortened"
            )
        with self.db.session() as s:
            share_id = s.scalars(select(Share.id).where(Share.name == share)).one()
            meta = s.scalars(
                select(SnapshotMeta).where(
                    SnapshotMeta.share_id == share_id, SnapshotMeta.name == name
                )
            ).first() or SnapshotMeta(share_id=share_id, name=name)
            meta.locked_until = until
            s.add(meta)
        self.events.record(
            "info",
            "snapshot.locked",
            share,
            f"snapshot {name} of {share} locked until {until:%Y-%m-%d %H:%M} UTC",
        )
        return self.get(share, name)

    def delete(self, share: str, name: str, now: dt.datetime | None = None) -> None:
        snap = self.get(share, name)
        self._check_unlocked(snap, now or now_utc())
        with translated("deleting the snapshot"):
            btrfs.subvolume_delete(Path(snap.path))
        with self.db.session() as s:
            share_id = s.scalars(select(Share.id).where(Share.name == share)).one()
            for meta in s.scalars(
                select(SnapshotMeta).where(
                    SnapshotMeta.share_id == share_id, SnapshotMeta.name == name
                )
            ):
                s.delete(meta)
        self.events.record("info", "snapshot.deleted", share, f"snapshot {name} of {share} deleted")

    @staticmethod
    def _check_unlocked(snap: SnapshotInfo, now: dt.datetime) -> None:
        if snap.locked_until and snap.locked_until > now:
            raise Forbidden(
                f"snapshot {snap.name} of {snap.share} is locked until "
                f"{snap.locked_until:%Y-%m-%d %H:%M} UTC"
            )

    def _refuse_if_locked(self, share: str, **_: object) -> None:
        now = now_utc()
        locked = [s for s in self.list(share) if s.locked_until and s.locked_until > now]
        if locked:
            last = max(s.locked_until for s in locked if s.locked_until)
            raise Forbidden(
                f"share '{share}' has {len(locked)} locked snapshot(s) (until "
                f"{last:%Y-%m-%d %H:%M} UTC); it cannot be deleted before"
            )

    def _refuse_pool_if_locked(self, pool: str, shares: builtins.list[str], **_: object) -> None:
        for share in shares:
            try:
                self._refuse_if_locked(share)
            except Forbidden as exc:
                raise Forbidden(f"pool '{pool}' cannot be destroyed: {exc.message}") from None
