"""Getting data back from a snapshot: one file or folder, a whole share (rollback), or a new
share made from a snapshot (clone)."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import re
import stat
import uuid
from pathlib import Path, PurePosixPath

from speicher.access import GrantService
from speicher.access.models import GrantRequest
from speicher.config import Settings
from speicher.errors import Conflict, InvalidInput, NotFound, OperationFailed, translated
from speicher.events import EventService
from speicher.faults import crash_point
from speicher.protection.models import RestoreResult, RollbackResult, SnapshotInfo
from speicher.protection.snapshots import FORMAT, SnapshotService, now_utc
from speicher.storage import ShareService
from speicher.storage.models import ShareCreate, ShareInfo
from speicher.system import beneath, btrfs, files

INTERNAL = files.INTERNAL
log = logging.getLogger(__name__)


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


def open_folder(root: int, rel: PurePosixPath, where: str) -> int:
    """Folder ``rel`` beneath the open folder ``root`` through real folders only (see
    :mod:`speicher.system.beneath`); a symbolic link on the way is refused, not followed."""
    try:
        return beneath.open_dir(root, rel)
    except FileNotFoundError:
        raise InvalidInput(
            field="path", reason=f"folder '{rel}' does not exist in {where}"
        ) from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
            raise InvalidInput(
                field="path",
                reason=f"'{rel}' in {where} is not a folder or leads through a symbolic link",
            ) from None
        raise


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

    def restore(
        self, share: str, snapshot: str, path: str, to: str, safety: bool = True
    ) -> RestoreResult:
        """Copy ``path`` from the snapshot into the live share: back in its place (replacing
        what is there now, after a safety snapshot of the share) or beside it, with the
        snapshot's time in its name. ``safety=False``: the caller has taken a snapshot of the
        share already (a ransomware incident's restore of many files takes none per file).

        Users may change the live share meanwhile, so nothing is done by path there: its top
        folder, the target's folder and the root-only staging folder are opened once and
        everything happens relative to them. ``cp -a`` copies into the staging folder only,
        and the copy is then renamed into place (atomically swapped with what was there)."""
        snap = self.snapshots.get(share, snapshot)
        rel = safe_relative(path)
        live = self.shares.path(share)
        with contextlib.ExitStack() as fds:

            def keep(fd: int) -> int:
                fds.callback(os.close, fd)
                return fd

            snap_top = keep(beneath.open_root(snap.path))
            source_dir = keep(open_folder(snap_top, rel.parent, f"snapshot {snapshot}"))
            source = beneath.lstat(source_dir, rel.name)
            if source is None:
                raise NotFound(f"'{rel}' is not in snapshot {snapshot}")
            live_top = keep(beneath.open_root(live))
            target_dir = keep(open_folder(live_top, rel.parent, f"share {share}"))
            name = rel.name
            if to == "beside":
                name = _beside_name(rel.name, stat.S_ISREG(source.st_mode), snap.time)
                if beneath.lstat(target_dir, name) is not None:
                    raise Conflict(f"'{rel.parent / name}' already exists")
            staging = keep(self.staging(share, live_top))
            tmp = uuid.uuid4().hex
            with translated("restoring"):
                files.copy(
                    beneath.proc_path(source_dir, rel.name),
                    beneath.proc_path(staging, tmp),
                    pass_fds=(source_dir, staging),
                )
            try:
                taken = self._put_in_place(
                    share, staging, tmp, target_dir, name, replace=to == "original", safety=safety
                )
            except OSError as exc:  # e.g. EXDEV: the folder is in a nested subvolume
                raise OperationFailed(
                    f"restoring failed: cannot move the copy into place ({exc.strerror})"
                ) from None
            finally:
                clear_staging(staging, tmp)
        result = str(rel.parent / name)
        saved = f"; what was there is in safety snapshot {taken}" if taken else ""
        self.events.record(
            "info",
            "snapshot.restored",
            share,
            f"'{rel}' restored from {snapshot} of {share} to '{result}'{saved}",
        )
        return RestoreResult(path=result, safety_snapshot=taken)

    def _put_in_place(
        self,
        share: str,
        staging: int,
        tmp: str,
        target_dir: int,
        name: str,
        *,
        replace: bool,
        safety: bool = True,
    ) -> str | None:
        """Move the copy ``tmp`` from staging to ``name``. With ``replace``, something already
        there is first kept in a safety snapshot of the share, then swapped out atomically (it
        lands in staging as ``tmp`` and is deleted with it). Returns the safety snapshot."""
        if beneath.lstat(target_dir, name) is None or not replace:
            try:
                beneath.rename(staging, tmp, target_dir, name, noreplace=True)
                return None
            except FileExistsError:
                if not replace:
                    raise Conflict(f"'{name}' appeared meanwhile; nothing was restored") from None
                # made meanwhile: it gets a safety snapshot like everything replaced
        taken = self.safety_snapshot(share).name if safety else None
        try:
            beneath.rename(staging, tmp, target_dir, name, exchange=True)
        except FileNotFoundError:  # deleted meanwhile
            beneath.rename(staging, tmp, target_dir, name, noreplace=True)
        return taken

    def staging(self, share: str, live_top: int) -> int:
        """The share's root-only staging folder ``.speicher/restore``, opened."""
        with beneath.opened(self._private_dir(share, live_top, INTERNAL)) as internal:
            return self._private_dir(share, internal, "restore")

    def _private_dir(self, share: str, parent: int, name: str) -> int:
        """Open folder ``name`` of ``parent`` as a real folder owned by root, mode 0700, no
        ACL. Users who may write the share's top folder can put anything at that name; what
        is not root's own folder (a symbolic link, a file, a user's folder) is moved aside to
        ``<name>.moved-<random>``, never followed or entered, and an event says so."""
        for _ in range(3):
            with contextlib.suppress(FileExistsError):
                beneath.mkdir(parent, name, 0o700)
            try:
                fd = beneath.open_dir(parent, name)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise
            else:
                st = os.fstat(fd)
                if st.st_uid == 0:
                    try:
                        _make_private(fd)
                    except BaseException:
                        os.close(fd)
                        raise
                    return fd
                os.close(fd)
            aside = f"{name}.moved-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(FileNotFoundError):
                beneath.rename(parent, name, parent, aside, noreplace=True)
                self.events.record(
                    "warning",
                    "share.internal-moved",
                    share,
                    f"'{name}' in share {share} was not Speicher's own folder (a user's file, "
                    f"folder or symbolic link); it was moved aside to '{aside}'",
                )
        raise Conflict(f"the internal folder '{name}' of share {share} keeps being replaced")

    def safety_snapshot(self, share: str, now: dt.datetime | None = None) -> SnapshotInfo:
        """A snapshot of the share as it is, named for now (or the next free second)."""
        when = now or now_utc()
        existing = {s.name for s in self.snapshots.list(share)}
        while when.strftime(FORMAT) in existing:
            when += dt.timedelta(seconds=1)
        return self.snapshots.create(share, when.strftime(FORMAT), now=when)

    def rollback(self, share: str, snapshot: str, now: dt.datetime | None = None) -> RollbackResult:
        """Make the share what it was at the snapshot. A safety snapshot of its state before
        is taken first, so the rollback itself can be undone."""
        snap = self.snapshots.get(share, snapshot)
        info = self.shares.get(share)
        safety = self.safety_snapshot(share, now)
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


def _beside_name(name: str, is_file: bool, when: dt.datetime) -> str:
    """``plan.txt`` -> ``plan (restored 2026-12-01 104500).txt``."""
    stamp = when.strftime("%Y-%m-%d %H%M%S")
    suffix = "".join(PurePosixPath(name).suffixes) if is_file else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    return f"{stem} (restored {stamp}){suffix}"


def _make_private(fd: int) -> None:
    """Root's alone: no ACL (an inherited one would let the share's users in), mode 0700."""
    for attribute in ("system.posix_acl_default", "system.posix_acl_access"):
        try:
            os.removexattr(fd, attribute)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise
    os.fchmod(fd, 0o700)


def clear_staging(staging: int, name: str) -> None:
    """Delete what a restore left in staging (the copy, or what it replaced). The restore
    itself is done by then: a failure here is logged, and the next restore's staging area
    still works, as every restore uses a fresh name."""
    try:
        files.remove_tree(staging, name)
    except OSError as exc:
        log.warning("could not delete %s from the restore staging folder: %s", name, exc)
