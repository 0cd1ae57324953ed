"""Pools: btrfs filesystems over disks, mounted by UUID at ``<mount_root>/<pool>``."""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from speicher import names
from speicher.config import Settings
from speicher.db import Database, Pool, PoolDisk
from speicher.errors import Conflict, InvalidInput, NotFound, OperationFailed, Validator, translated
from speicher.events import EventService
from speicher.hooks import POOL_DESTROYING, SHARES_CHANGED, Hooks
from speicher.jobs import JobInfo, JobService, Progress
from speicher.storage.disks import DiskService
from speicher.storage.models import PoolCreate, PoolDiskInfo, PoolInfo, PoolReplace
from speicher.system import blockdev, btrfs, mdadm, mount
from speicher.system.run import CommandError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolRef:
    id: int
    name: str
    profile: str
    md_uuid: str
    disks: builtins.list[str]


@dataclass(frozen=True)
class ProfileSpec:
    min_disks: int
    data: str
    metadata: str
    md_level: int | None = None


PROFILES = {
    "single": ProfileSpec(1, "single", "dup"),
    "raid1": ProfileSpec(2, "raid1", "raid1"),
    "raid1c3": ProfileSpec(3, "raid1c3", "raid1c3"),
    "raid10": ProfileSpec(4, "raid10", "raid10"),
    # btrfs's own RAID 5/6 has a write hole: md does the parity, btrfs the checksums
    "raid5": ProfileSpec(3, "single", "dup", md_level=5),
    "raid6": ProfileSpec(4, "single", "dup", md_level=6),
}


def metadata_profile(profile: str, disks: int) -> str:
    """Metadata is at least as safe as data: on several disks ``single`` keeps two copies."""
    spec = PROFILES[profile]
    if profile == "single" and disks > 1:
        return "raid1"
    return spec.metadata


def md_name(pool: str) -> str:
    return f"speicher-{pool}"


class PoolService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        jobs: JobService,
        disks: DiskService,
        hooks: Hooks,
    ) -> None:
        self.settings = settings
        self.hooks = hooks
        self.db = db
        self.events = events
        self.jobs = jobs
        self.disks = disks
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._health: dict[str, str] = {}
        # disks another service found failing (SMART, I/O errors): pool -> disk -> reason
        self._disk_problems: dict[str, dict[str, str]] = {}

    def mountpoint(self, name: str) -> Path:
        return self.settings.mount_root / name

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[None]:
        """One structural change per pool at a time."""
        self.claim(name)
        try:
            yield
        finally:
            self.release(name)

    def claim(self, name: str) -> None:
        with self._lock:
            if name in self._busy:
                raise Conflict(f"pool '{name}' is busy with another operation; try again later")
            self._busy.add(name)

    def release(self, name: str) -> None:
        with self._lock:
            self._busy.discard(name)

    def set_disk_problem(self, pool: str, disk: str, reason: str | None) -> None:
        """Mark a disk of a pool as failing (the pool is then ``degraded``), or clear it."""
        with self._lock:
            problems = self._disk_problems.setdefault(pool, {})
            if reason:
                problems[disk] = reason
            else:
                problems.pop(disk, None)

    def _failing(self, pool: str, refs: builtins.list[str]) -> bool:
        with self._lock:
            problems = self._disk_problems.get(pool, {})
            return any(ref in problems for ref in refs)

    # -- reading -----------------------------------------------------------------------------

    def list(self) -> list[PoolInfo]:
        with self.db.session() as s:
            rows = list(s.scalars(select(Pool).order_by(Pool.name)))
            return [self._info(p) for p in rows]

    def get(self, name: str) -> PoolInfo:
        with self.db.session() as s:
            return self._info(self.row(s, name))

    @staticmethod
    def row(s: Session, name: str) -> Pool:
        pool = s.scalars(select(Pool).where(Pool.name == name)).first()
        if pool is None:
            raise NotFound(f"pool '{name}' does not exist")
        return pool

    def is_mounted(self, name: str) -> bool:
        found = mount.mounted_at(self.mountpoint(name))
        return found is not None and found.fstype == "btrfs"

    def _info(self, pool: Pool) -> PoolInfo:
        mnt = self.mountpoint(pool.name)
        mounted = pool.state != "creating" and self.is_mounted(pool.name)
        size = used = free = 0
        disks: builtins.list[PoolDiskInfo] = []
        health = "unavailable"
        refs = [d.disk for d in pool.disks]
        if mounted:
            size, used, free = btrfs.capacity(btrfs.usage(mnt))  # statvfs: 89 % when full
            disks, degraded = self._disk_states(pool, refs)
            health = "degraded" if degraded or self._failing(pool.name, refs) else "ok"
        else:
            disks = [
                PoolDiskInfo(
                    disk=r,
                    device=self.disks.device_of(r) or "",
                    devid=None,
                    size=0,
                    used=0,
                    state="online" if self.disks.device_of(r) else "missing",
                )
                for r in refs
            ]
        return PoolInfo(
            name=pool.name,
            uuid=pool.uuid,
            profile=pool.profile,
            state=pool.state,
            health=health,
            mountpoint=str(mnt),
            size=size,
            used=used,
            free=free,
            disks=disks,
            shares=[sh.name for sh in pool.shares],
            created_at=pool.created_at,
        )

    def _disk_states(
        self, pool: Pool, refs: builtins.list[str]
    ) -> tuple[builtins.list[PoolDiskInfo], bool]:
        """Per-disk state of a mounted pool, and whether it is degraded."""
        if PROFILES[pool.profile].md_level is not None:
            return self._md_disk_states(pool, refs)
        fs_devices = btrfs.filesystem_show(self.mountpoint(pool.name))
        # devid 0 is the target of a running replace, not yet a member
        fs_devices = [d for d in fs_devices if d.devid != 0]
        online = {self.disks.name_of(d.path): d for d in fs_devices if not d.missing}
        missing_devids = [d for d in fs_devices if d.missing]
        out = []
        for ref in refs:
            dev = online.get(ref)
            if dev is not None:
                out.append(
                    PoolDiskInfo(
                        disk=ref,
                        device=dev.path,
                        devid=dev.devid,
                        size=dev.size,
                        used=dev.used,
                        state="online",
                    )
                )
            else:
                gone = missing_devids.pop(0) if missing_devids else None
                out.append(
                    PoolDiskInfo(
                        disk=ref,
                        device="",
                        devid=gone.devid if gone else None,
                        size=0,
                        used=0,
                        state="missing",
                    )
                )
        degraded = any(d.missing for d in fs_devices) or any(d.state == "missing" for d in out)
        return out, degraded

    def _md_disk_states(
        self, pool: Pool, refs: builtins.list[str]
    ) -> tuple[builtins.list[PoolDiskInfo], bool]:
        detail = mdadm.detail(md_name(pool.name))
        members = {
            v for k, v in detail.items() if k.startswith("MD_DEVICE_") and k.endswith("_DEV")
        }
        out = []
        for ref in refs:
            device = self.disks.device_of(ref) or ""
            state = "online" if device and device in members else "missing"
            size = blockdev.size(device) if state == "online" else 0
            out.append(
                PoolDiskInfo(disk=ref, device=device, devid=None, size=size, used=0, state=state)
            )
        degraded = detail.get("MD_DEGRADED", "0") != "0" or any(d.state == "missing" for d in out)
        return out, degraded

    # -- creating ----------------------------------------------------------------------------

    def create(self, req: PoolCreate) -> JobInfo:
        """Check everything, reserve the name and disks, then build the pool in a job."""
        v = Validator()
        if reason := names.pool_name(req.name):
            v.add("name", reason)
        spec = PROFILES[req.profile]
        if len(req.disks) < spec.min_disks:
            v.add(
                "disks",
                f"profile {req.profile} needs at least {spec.min_disks} disks, "
                f"got {len(req.disks)}",
            )
        if len(set(req.disks)) != len(req.disks):
            v.add("disks", "a disk is named twice")
        if spec.md_level is not None and not mdadm.available():
            v.add(
                "profile",
                f"{req.profile} needs Linux md RAID, which this kernel does not "
                "provide (no /proc/mdstat)",
            )
        devices = [self.disks.check_usable(d, "disks", req.force, v) for d in req.disks]
        with self.db.session() as s:
            if s.scalars(select(Pool).where(Pool.name == req.name)).first():
                v.add("name", f"pool '{req.name}' already exists")
        v.check()
        self.claim(req.name)
        try:
            with self.db.session() as s:
                pool = Pool(name=req.name, profile=req.profile, state="creating")
                pool.disks = [PoolDisk(disk=d) for d in req.disks]
                s.add(pool)
        except IntegrityError:
            self.release(req.name)
            raise Conflict(f"pool '{req.name}' or one of its disks was just taken") from None
        devs = [d for d in devices if d]

        def work(progress: Progress) -> str:
            try:
                self._build(req.name, req.profile, devs, progress)
            except BaseException:
                self._rollback_create(req.name, devs)
                raise
            finally:
                self.release(req.name)
            return f"pool {req.name} created"

        return self.jobs.start("pool.create", req.name, work, "checking disks")

    def _build(
        self, name: str, profile: str, devices: builtins.list[str], progress: Progress
    ) -> None:
        spec = PROFILES[profile]
        progress(5, "wiping disks")
        with translated("wiping the disks"):
            for dev in devices:
                blockdev.wipe(dev)
        md_uuid = ""
        fs_devices = devices
        if spec.md_level is not None:
            progress(15, "creating md RAID array")
            with translated("creating the md RAID array"):
                md_dev = mdadm.create(md_name(name), spec.md_level, devices)
                md_uuid = mdadm.detail(md_name(name)).get("MD_UUID", "")
            fs_devices = [md_dev]
        progress(30, "creating btrfs filesystem")
        with translated("creating the btrfs filesystem"):
            uuid = btrfs.mkfs(
                fs_devices, f"speicher-{name}", spec.data, metadata_profile(profile, len(devices))
            )
        progress(60, "mounting")
        with self.db.session() as s:
            pool = self.row(s, name)
            pool.uuid = uuid
            pool.md_uuid = md_uuid
        mnt = self.mountpoint(name)
        mnt.mkdir(parents=True, exist_ok=True)
        with translated("mounting the pool"):
            mount.mount(fs_devices[0], mnt, "btrfs", self._options(fs_devices, degraded=False))
        progress(80, "enabling quotas")
        with translated("enabling quotas"):
            btrfs.quota_enable(mnt)
        (mnt / ".snapshots").mkdir(mode=0o755, exist_ok=True)
        with self.db.session() as s:
            self.row(s, name).state = "ready"
        self._health[name] = "ok"
        self.events.record(
            "info", "pool.created", name, f"pool {name} created ({profile}, {len(devices)} disks)"
        )

    def _rollback_create(self, name: str, devices: builtins.list[str]) -> None:
        """Undo a half-made pool: no mount without its row, no row without its filesystem."""
        mnt = self.mountpoint(name)
        if self.is_mounted(name):
            with contextlib.suppress(CommandError):
                mount.umount(mnt)
        with contextlib.suppress(OSError):
            mnt.rmdir()
        if Path(mdadm.device_path(md_name(name))).exists():
            with contextlib.suppress(CommandError):
                mdadm.stop(md_name(name))
        for dev in devices:
            with contextlib.suppress(CommandError):
                blockdev.wipe(dev)  # also erases an md superblock
        with self.db.session() as s:
            pool = s.scalars(select(Pool).where(Pool.name == name)).first()
            if pool is not None:
                s.delete(pool)

    @staticmethod
    def _options(devices: builtins.list[str], degraded: bool) -> builtins.list[str]:
        options = ["noatime", *(f"device={d}" for d in devices)]
        if degraded:
            options.append("degraded")
        return options

    # -- mounting at start -------------------------------------------------------------------

    def _find_devices(self, pool: Pool) -> builtins.list[str]:
        """Block devices that carry this pool's filesystem (or md array), found by UUID."""
        want_md = bool(pool.md_uuid)
        key, value = ("MD_UUID", pool.md_uuid) if want_md else ("UUID", pool.uuid)
        candidates = [self.disks.device_of(d.disk) for d in pool.disks]
        found = [c for c in candidates if c and self._carries(c, key, value, want_md)]
        if len(found) < len(pool.disks):  # a disk may have a new name: look at every device
            seen = set(found)
            for dev in blockdev.list_devices():
                if (
                    dev.path not in seen
                    and dev.type in ("disk", "part", "loop")
                    and (self._carries(dev.path, key, value, want_md))
                ):
                    found.append(dev.path)
        return found

    @staticmethod
    def _carries(device: str, key: str, value: str, md: bool) -> bool:
        try:
            info = mdadm.examine(device) if md else blockdev.probe(device)
        except CommandError:
            return False
        return bool(value) and info.get(key, "").replace(":", "") == value.replace(":", "")

    def mount_all(self) -> None:
        """Finish what a stopped daemon left half-done, then mount every pool by UUID."""
        with self.db.session() as s:
            pools = list(s.scalars(select(Pool)))
            pending = [(p.name, p.state) for p in pools]
        for name, state in pending:
            if state == "creating":
                log.warning("pool %s was being created when the daemon stopped; removing it", name)
                with self.db.session() as s:
                    pool = self.row(s, name)
                    devs = [d for d in (self.disks.device_of(x.disk) for x in pool.disks) if d]
                self._rollback_create(name, devs)
                self.events.record(
                    "warning",
                    "pool.create-interrupted",
                    name,
                    f"creation of pool {name} was interrupted and undone",
                )
            elif state == "destroying":
                self._finish_destroy(name)
            else:
                try:
                    self._mount(name)
                except OperationFailed as exc:
                    self._health[name] = "unavailable"
                    self.events.record("error", "pool.unavailable", name, exc.message)

    def _mount(self, name: str) -> None:
        if self.is_mounted(name):
            self.check_health(name)
            return
        with self.db.session() as s:
            pool = self.row(s, name)
            devices = self._find_devices(pool)
            md = bool(pool.md_uuid)
            md_uuid = pool.md_uuid
            expected = len(pool.disks)
        if md:
            if not devices:
                raise OperationFailed(f"pool {name}: none of its disks is present")
            with translated(f"assembling the md array of pool {name}"):
                fs_devices = [mdadm.assemble(md_name(name), md_uuid, devices)]
            missing = 0
        else:
            if not devices:
                raise OperationFailed(f"pool {name}: none of its disks is present")
            with translated(f"reading the superblock of pool {name}"):
                expected = btrfs.superblock(devices[0]).num_devices
            fs_devices = devices
            missing = expected - len(devices)
        mnt = self.mountpoint(name)
        mnt.mkdir(parents=True, exist_ok=True)
        with translated(f"mounting pool {name}"):
            mount.mount(fs_devices[0], mnt, "btrfs", self._options(fs_devices, missing > 0))
        log.info("mounted pool %s at %s (%d of %d disks)", name, mnt, len(devices), expected)
        self.check_health(name)

    def check_health(self, name: str) -> str:
        """Compute a pool's health and record an event when it changes."""
        health = self.get(name).health
        before = self._health.get(name)
        self._health[name] = health
        if health != before:
            if health == "degraded":
                self.events.record(
                    "warning",
                    "pool.degraded",
                    name,
                    f"pool {name} is degraded: a disk is missing or failing",
                )
            elif health == "unavailable":
                self.events.record("error", "pool.unavailable", name, f"pool {name} is not mounted")
            elif before is not None:
                self.events.record("info", "pool.ok", name, f"pool {name} is healthy again")
        return health

    def check_all(self) -> None:
        for pool in self.list():
            if pool.state == "ready":
                self.check_health(pool.name)

    # -- changing disks ----------------------------------------------------------------------

    def _ready(self, name: str) -> PoolRef:
        """A snapshot of a mounted pool's row, for use outside a session."""
        with self.db.session() as s:
            pool = self.row(s, name)
            if pool.state != "ready" or not self.is_mounted(name):
                raise Conflict(f"pool '{name}' is not mounted")
            return PoolRef(
                pool.id, pool.name, pool.profile, pool.md_uuid, [d.disk for d in pool.disks]
            )

    def add_disk(self, name: str, disk: str, force: bool = False) -> JobInfo:
        """Add a disk to a pool; its space becomes usable at once."""
        pool = self._ready(name)
        v = Validator()
        device = self.disks.check_usable(disk, "disk", force, v)
        v.check()
        assert device is not None
        self.claim(name)
        try:
            with self.db.session() as s:
                s.add(PoolDisk(pool_id=pool.id, disk=disk))
        except IntegrityError:
            self.release(name)
            raise Conflict(f"disk '{disk}' was just taken") from None
        mnt = self.mountpoint(name)

        def work(progress: Progress) -> str:
            try:
                progress(10, "wiping the disk")
                with translated("wiping the disk"):
                    blockdev.wipe(device)
                progress(40, "adding the disk")
                if pool.md_uuid:
                    with translated("growing the md array"):
                        mdadm.add(md_name(name), device)
                        mdadm.grow(md_name(name), len(pool.disks) + 1)
                        btrfs.resize_max(mnt)
                else:
                    with translated("adding the disk"):
                        btrfs.device_add([device], mnt)
            except BaseException:
                with self.db.session() as s:
                    row = s.scalars(select(PoolDisk).where(PoolDisk.disk == disk)).first()
                    if row is not None:
                        s.delete(row)
                raise
            finally:
                self.release(name)
            self.events.record("info", "pool.disk-added", name, f"disk {disk} added to {name}")
            return f"disk {disk} added to pool {name}"

        return self.jobs.start("pool.add-disk", name, work, "starting")

    def remove_disk(self, name: str, disk: str) -> JobInfo:
        """Move a disk's data to the others, then release it."""
        pool = self._ready(name)
        refs = pool.disks
        if disk not in refs:
            raise InvalidInput(field="disk", reason=f"disk '{disk}' is not part of pool '{name}'")
        spec = PROFILES[pool.profile]
        if spec.md_level is not None:
            raise InvalidInput(
                field="disk",
                reason=f"a disk cannot be removed from a {pool.profile} pool; replace it instead",
            )
        if len(refs) - 1 < spec.min_disks:
            raise InvalidInput(
                field="disk",
                reason=f"profile {pool.profile} needs at least "
                f"{spec.min_disks} disks; replace the disk instead",
            )
        info = self.get(name)
        entry = next(d for d in info.disks if d.disk == disk)
        target = entry.device if entry.state == "online" else "missing"
        self.claim(name)
        mnt = self.mountpoint(name)

        def work(progress: Progress) -> str:
            try:
                progress(1, "moving data off the disk")
                self.follow(
                    "moving data off the disk",
                    lambda: btrfs.device_remove(target, mnt),
                    lambda: _removal_progress(mnt, entry.devid, entry.used),
                    progress,
                )
                with self.db.session() as s:
                    row = s.scalars(select(PoolDisk).where(PoolDisk.disk == disk)).first()
                    if row is not None:
                        s.delete(row)
                if entry.device:
                    with contextlib.suppress(CommandError):
                        blockdev.wipe(entry.device)
            finally:
                self.release(name)
            self.events.record(
                "info", "pool.disk-removed", name, f"disk {disk} removed from {name}"
            )
            self.check_health(name)
            return f"disk {disk} removed from pool {name}"

        return self.jobs.start("pool.remove-disk", name, work, "starting")

    def replace_disk(self, name: str, req: PoolReplace) -> JobInfo:
        """Rebuild a pool's data from ``old`` (present or missing) onto ``new``."""
        pool = self._ready(name)
        v = Validator()
        refs = pool.disks
        if req.old not in refs:
            v.add("old", f"disk '{req.old}' is not part of pool '{name}'")
        device = self.disks.check_usable(req.new, "new", req.force, v)
        v.check()
        assert device is not None
        info = self.get(name)
        entry = next(d for d in info.disks if d.disk == req.old)
        if entry.size and blockdev.size(device) < entry.size:
            raise InvalidInput(
                field="new",
                reason=f"disk '{req.new}' is smaller than "
                f"'{req.old}' ({names.format_size(entry.size)})",
            )
        was_degraded = info.health == "degraded"
        self.claim(name)
        mnt = self.mountpoint(name)

        def work(progress: Progress) -> str:
            try:
                progress(1, "preparing the new disk")
                with translated("wiping the new disk"):
                    blockdev.wipe(device)
                if pool.md_uuid:
                    with translated("rebuilding the md array"):
                        if entry.state == "online":
                            mdadm.replace(md_name(name), entry.device, device)
                        else:
                            mdadm.add(md_name(name), device)
                else:
                    # by devid: a failing disk's superblock may not even read (EIO)
                    source = str(entry.devid)
                    self.follow(
                        "rebuilding onto the new disk",
                        lambda: btrfs.replace(source, device, mnt),
                        lambda: min(btrfs.replace_status(mnt)[1], 94.0),
                        progress,
                    )
                    if was_degraded:
                        progress(95, "restoring redundancy of data written while degraded")
                        spec = PROFILES[pool.profile]
                        with translated("restoring redundancy"):
                            btrfs.balance_start(
                                mnt, spec.data, metadata_profile(pool.profile, len(refs))
                            )
                with self.db.session() as s:
                    row = s.scalars(select(PoolDisk).where(PoolDisk.disk == req.old)).one()
                    row.disk = req.new
                if entry.state == "online" and entry.device:
                    with contextlib.suppress(CommandError):
                        blockdev.wipe(entry.device)
            finally:
                self.release(name)
            self.events.record(
                "info",
                "pool.disk-replaced",
                name,
                f"disk {req.old} of {name} replaced by {req.new}",
            )
            self.check_health(name)
            return f"disk {req.old} replaced by {req.new} in pool {name}"

        return self.jobs.start("pool.replace-disk", name, work, "starting")

    @staticmethod
    def follow(
        action: str,
        run: Callable[[], None],
        measure: Callable[[], float],
        progress: Progress,
    ) -> None:
        """Run blocking ``run()`` in a thread while reporting ``measure()`` as progress."""
        done = threading.Event()
        errors: builtins.list[BaseException] = []

        def runner() -> None:
            try:
                run()
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=runner, daemon=True).start()
        while not done.wait(1.0):
            with contextlib.suppress(Exception):
                progress(measure(), action)
        if errors:
            exc = errors[0]
            if isinstance(exc, CommandError):
                raise OperationFailed(f"{action} failed: {exc.output}", detail=str(exc)) from None
            raise exc

    # -- destroying --------------------------------------------------------------------------

    def destroy(self, name: str) -> None:
        """Unmount a pool, wipe its disks and forget it and its shares."""
        with self._exclusive(name):
            with self.db.session() as s:
                shares = [sh.name for sh in self.row(s, name).shares]
            self.hooks.emit(POOL_DESTROYING, pool=name, shares=shares)
            with self.db.session() as s:
                pool = self.row(s, name)
                pool.state = "destroying"
            try:
                if self.is_mounted(name):
                    mount.umount(self.mountpoint(name))
            except CommandError as exc:
                with self.db.session() as s:
                    self.row(s, name).state = "ready"
                raise Conflict(
                    f"pool '{name}' is in use and cannot be unmounted: {exc.output}"
                ) from None
            self._finish_destroy(name)

    def _finish_destroy(self, name: str) -> None:
        with self.db.session() as s:
            pool = self.row(s, name)
            refs = [d.disk for d in pool.disks]
            md = bool(pool.md_uuid)
        if self.is_mounted(name):
            with translated(f"unmounting pool {name}"):
                mount.umount(self.mountpoint(name))
        if md and Path(mdadm.device_path(md_name(name))).exists():
            with translated("stopping the md array"):
                mdadm.stop(md_name(name))
        for ref in refs:
            device = self.disks.device_of(ref)
            if device:
                with contextlib.suppress(CommandError):
                    if md:
                        mdadm.zero_superblock(device)
                    blockdev.wipe(device)
        with contextlib.suppress(OSError):
            (self.mountpoint(name)).rmdir()
        with self.db.session() as s:
            pool = self.row(s, name)
            for share in list(pool.shares):
                s.delete(share)
            s.delete(pool)
        self.hooks.emit(SHARES_CHANGED)
        self._health.pop(name, None)
        with self._lock:
            self._disk_problems.pop(name, None)
        self.events.record("info", "pool.destroyed", name, f"pool {name} destroyed")


def _removal_progress(mnt: Path, devid: int | None, initial: int) -> float:
    if devid is None or not initial:
        return 50.0
    for dev in btrfs.filesystem_show(mnt):
        if dev.devid == devid:
            return max(1.0, min(99.0, 100.0 * (1 - dev.used / initial)))
    return 99.0
