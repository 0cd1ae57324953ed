"""Snapshots: read-only btrfs snapshots of a share at
``<mount_root>/<pool>/.snapshots/<share>/@GMT-YYYY.MM.DD-HH.MM.SS``, the names Samba's
``shadow_copy2`` shows as Windows "Previous Versions". The filesystem is the record."""

from __future__ import annotations

import builtins
import datetime as dt
import re
from pathlib import Path

from speicher.config import Settings
from speicher.db import Database
from speicher.errors import Conflict, InvalidInput, NotFound, translated
from speicher.events import EventService
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


class SnapshotService:
    def __init__(
        self, settings: Settings, db: Database, events: EventService, shares: ShareService
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.shares = shares

    def _dir(self, share: str) -> Path:
        info = self.shares.get(share)
        return snapshots_dir(self.settings, info.pool, info.name)

    def create(
        self, share: str, name: str | None = None, now: dt.datetime | None = None
    ) -> SnapshotInfo:
        source = self.shares.path(share)
        name = name or (now or dt.datetime.now(dt.UTC)).strftime(FORMAT)
        if parse_name(name) is None:
            raise InvalidInput(field="name", reason="must look like @GMT-2026.01.31-23.59.59")
        directory = self._dir(share)
        target = directory / name
        if target.exists():
            raise Conflict(f"snapshot {name} of share '{share}' already exists")
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        with translated("taking the snapshot"):
            btrfs.snapshot(source, target)
        self.events.record("info", "snapshot.created", share, f"snapshot {name} of {share} taken")
        return self._info(share, target)

    def _info(self, share: str, path: Path) -> SnapshotInfo:
        time = parse_name(path.name)
        assert time is not None
        return SnapshotInfo(share=share, name=path.name, time=time, path=str(path))

    def list(self, share: str) -> builtins.list[SnapshotInfo]:
        """Snapshots of a share, oldest first."""
        directory = self._dir(share)
        if not directory.is_dir():
            return []
        return [
            self._info(share, p)
            for p in sorted(directory.iterdir())
            if parse_name(p.name) is not None and p.is_dir()
        ]

    def get(self, share: str, name: str) -> SnapshotInfo:
        target = self._dir(share) / name
        if parse_name(name) is None or not target.is_dir():
            raise NotFound(f"share '{share}' has no snapshot {name}")
        return self._info(share, target)

    def delete(self, share: str, name: str) -> None:
        snap = self.get(share, name)
        with translated("deleting the snapshot"):
            btrfs.subvolume_delete(Path(snap.path))
        self.events.record("info", "snapshot.deleted", share, f"snapshot {name} of {share} deleted")
