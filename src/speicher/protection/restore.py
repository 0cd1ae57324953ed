"""Getting data back from a snapshot: one file or folder, a whole share (rollback), or a new
share made from a snapshot (clone)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import uuid
from pathlib import Path, PurePosixPath

from speicher.access import GrantService
from speicher.access.models import GrantRequest
from speicher.config import Settings
from speicher.errors import Conflict, InvalidInput, NotFound, translated
from speicher.events import EventService
from speicher.faults import crash_point
from speicher.protection.models import RestoreResult, RollbackResult
from speicher.protection.snapshots import FORMAT, SnapshotService, now_utc
from speicher.storage import ShareService
from speicher.storage.models import ShareCreate, ShareInfo
from speicher.system import btrfs, files

INTERNAL = ".speicher"


def safe_relative(path: str) -> PurePosixPath:
    """A path inside a share, as the user gave it; refuse anything that could leave it."""
    if "\x00" in path:
        raise InvalidInput(field="path", reason="must not contain NUL characters")
    if path.startswith("/"):
        raise InvalidInput(field="path", reason="must be relative to the share's top folder")
    rel = PurePosixPath(path.rstrip("/"))
    if not rel.parts or rel == PurePosixPath("."):
        raise InvalidInput(field="path", reason="name a file or folder inside the share")
    if any(part in ("..", ".") for part in rel.parts) or rel.parts[0] == INTERNAL:
        raise InvalidInput(field="path", reason="must not contain '..' or name internal data")
    return rel


def inside(root: Path, rel: PurePosixPath) -> Path:
    """``root/rel``, where every folder on the way is a real folder inside ``root`` (no
    symbolic link leads out). The last part may itself be a link: it is copied as a link."""
    parent = Path(os.path.realpath(root / rel.parent))
    real_root = Path(os.path.realpath(root))
    if parent != real_root and real_root not in parent.parents:
        raise InvalidInput(field="path", reason="leads outside the share")
    return parent / rel.name


class RestoreService:
    def __init__(
        self,
        settings: Settings,
        events: EventService,
        shares: ShareService,
        snapshots: SnapshotService,
        grants: GrantService,
    ) -> None:
        self.settings = settings
        self.events = events
        self.shares = shares
        self.snapshots = snapshots
        self.grants = grants

    def restore(self, share: str, snapshot: str, path: str, to: str) -> RestoreResult:
        """Copy ``path`` from the snapshot into the live share: back in its place (replacing
        what is there now) or beside it, with the snapshot's time in its name."""
        snap = self.snapshots.get(share, snapshot)
        rel = safe_relative(path)
        source = inside(Path(snap.path), rel)
        if not os.path.lexists(source):
            raise NotFound(f"'{rel}' is not in snapshot {snapshot}")
        live = self.shares.path(share)
        target = inside(live, rel)
        if to == "beside":
            stamp = snap.time.strftime("%Y-%m-%d %H%M%S")
            suffix = "".join(PurePosixPath(rel.name).suffixes) if source.is_file() else ""
            stem = rel.name[: len(rel.name) - len(suffix)] if suffix else rel.name
            target = target.with_name(f"{stem} (restored {stamp}){suffix}")
            if os.path.lexists(target):
                raise Conflict(f"'{target.relative_to(live)}' already exists")
        if not target.parent.is_dir():
            raise InvalidInput(field="path", reason=f"folder '{rel.parent}' no longer exists")
        staging = live / INTERNAL / "restore"
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / uuid.uuid4().hex
        old = staging / uuid.uuid4().hex
        with translated("restoring"):
            files.copy(source, tmp)
            if os.path.lexists(target):
                os.rename(target, old)
            os.rename(tmp, target)
            if os.path.lexists(old):
                files.remove_tree(old)
        result = str(target.relative_to(live))
        self.events.record(
            "info",
            "snapshot.restored",
            share,
            f"'{rel}' restored from {snapshot} of {share} to '{result}'",
        )
        return RestoreResult(path=result)

    def rollback(self, share: str, snapshot: str, now: dt.datetime | None = None) -> RollbackResult:
        """Make the share what it was at the snapshot. A safety snapshot of its state before
        is taken first, so the rollback itself can be undone."""
        snap = self.snapshots.get(share, snapshot)
        info = self.shares.get(share)
        when = now or now_utc()
        existing = {s.name for s in self.snapshots.list(share)}
        while when.strftime(FORMAT) in existing:
            when += dt.timedelta(seconds=1)
        safety = self.snapshots.create(share, when.strftime(FORMAT), now=when)
        live = Path(info.path)
        parked = live.parent / f".rollback-{share}-{uuid.uuid4().hex[:8]}"
        with translated("rolling the share back"):
            os.rename(live, parked)
            crash_point("share.rollback.parked")
            try:
                btrfs.snapshot_writable(Path(snap.path), live)
            except BaseException:
                os.rename(parked, live)
                raise
            crash_point("share.rollback.snapshot")
            if info.quota is not None:
                btrfs.qgroup_limit(live, info.quota)
            btrfs.subvolume_delete(parked)
        self.events.record(
            "warning",
            "share.rolled-back",
            share,
            f"share {share} rolled back to {snapshot}; its state before is snapshot {safety.name}",
        )
        return RollbackResult(safety_snapshot=safety.name)

    def clone(self, share: str, snapshot: str, name: str) -> ShareInfo:
        """A new, writable share on the same pool with the snapshot's files and the original
        share's grants; it shares all data with the snapshot until it changes."""
        snap = self.snapshots.get(share, snapshot)
        info = self.shares.get(share)
        clone = self.shares.create(
            ShareCreate(
                name=name,
                pool=info.pool,
                compression=info.compression,
                description=f"clone of {share} at {snapshot}",
            ),
            from_snapshot=Path(snap.path),
        )
        crash_point("share.clone.created")
        for g in info.grants:
            who = {"user": g.name} if g.principal == "user" else {"group": g.name}
            with contextlib.suppress(NotFound):
                self.grants.grant(clone.name, GrantRequest(access=g.access, **who))
        self.events.record(
            "info", "share.cloned", name, f"share {name} cloned from {snapshot} of {share}"
        )
        return self.shares.get(name)


_PARKED = re.compile(r"^\.rollback-(?P<share>.+)-[0-9a-f]{8}$")


def recover_rollbacks(restore: RestoreService) -> None:
    """Finish or undo rollbacks a stopped daemon left half done. A rollback first renames the
    live subvolume to ``<pool>/.rollback-<share>-<id>`` (that name is its record of intent):
    if the share's folder is missing, the parked subvolume goes back (undone); if the new one is
    in place, its quota is set and the parked one deleted (finished)."""
    for share in restore.shares.list():
        live = Path(share.path)
        pool_root = live.parent
        if not os.path.ismount(pool_root):
            continue
        for parked in pool_root.iterdir():
            match = _PARKED.match(parked.name)
            if not match or match.group("share") != share.name or parked.is_symlink():
                continue
            with translated(f"recovering the rollback of {share.name}"):
                if not os.path.lexists(live):
                    os.rename(parked, live)
                    what = "undone: the share is as it was before"
                else:
                    if share.quota is not None:
                        btrfs.qgroup_limit(live, share.quota)
                    btrfs.subvolume_delete(parked)
                    what = "finished"
            restore.events.record(
                "warning",
                "share.rollback-interrupted",
                share.name,
                f"a rollback of share {share.name} was interrupted and is now {what}",
            )
