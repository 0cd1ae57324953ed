"""Pools: btrfs filesystems over disks, mounted by UUID at ``<mount_root>/<pool>``."""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from speicher import names
from speicher.config import Settings
from speicher.db import Database, Pool, PoolDisk
from speicher.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    OperationFailed,
    SpeicherError,
    Validator,
    translated,
)
from speicher.events import EventService
from speicher.faults import crash_point
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
class _Facts:
    """What the machine said about a pool at monotonic time ``at``."""

    at: float
    state: str  # the pool's state they were read in
    mounted: bool
    capacity: tuple[int, int, int]  # size, used, free as users can store
    devices: builtins.list[btrfs.FsDevice]
    names: dict[str, str]  # device path -> disk name


@dataclass(frozen=True)
class ProfileSpec:
    min_disks: int
    data: str
    metadata: str
    md_level: int | None = None
    tolerates: int = 0  # disks that may be missing with every byte still readable


PROFILES = {
    "single": ProfileSpec(1, "single", "dup"),
    "raid1": ProfileSpec(2, "raid1", "raid1", tolerates=1),
    "raid1c3": ProfileSpec(3, "raid1c3", "raid1c3", tolerates=2),
    # raid10 survives more only if the lost disks happen to hold different copies
    "raid10": ProfileSpec(4, "raid10", "raid10", tolerates=1),
    # btrfs's own RAID 5/6 has a write hole: md does the parity, btrfs the checksums
    "raid5": ProfileSpec(3, "single", "dup", md_level=5, tolerates=1),
    "raid6": ProfileSpec(4, "single", "dup", md_level=6, tolerates=2),
}


def tolerance(profile: str) -> str:
    """What a profile survives, in words."""
    n = PROFILES[profile].tolerates
    if n == 0:
        return f"{profile} keeps no second copy: every disk is needed"
    return f"{profile} keeps all data with at most {n} missing disk{'s' if n > 1 else ''}"


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
        self._facts: dict[str, _Facts] = {}
        self._fact_locks: dict[str, threading.Lock] = {}
        # how old the facts behind a listing may be (the monitor refreshes them)
        self.fact_age = max(10.0, 2 * settings.monitor_interval)
        # why a pool could not be mounted, in words a user can act on
        self._problems: dict[str, str] = {}
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

    def _failing(self, pool: str, refs: builtins.list[str]) -> dict[str, str]:
        with self._lock:
            problems = self._disk_problems.get(pool, {})
            return {ref: problems[ref] for ref in refs if ref in problems}

    def problem(self, name: str) -> str:
        """Why a pool could not be mounted at its last try; empty if it could."""
        return self._problems.get(name, "")

    # -- reading -----------------------------------------------------------------------------

    def list(self) -> list[PoolInfo]:
        """Every pool. The rows are read in one short session; what the machine says comes
        from facts the monitor refreshes, so a crowd of clients runs no commands."""
        with self.db.session() as s:
            query = select(Pool).options(selectinload(Pool.disks), selectinload(Pool.shares))
            rows = list(s.scalars(query.order_by(Pool.name)))
        return [self._info(p, max_age=self.fact_age) for p in rows]

    def get(self, name: str) -> PoolInfo:
        """One pool, read afresh from the machine."""
        with self.db.session() as s:
            pool = self.row(s, name)
            pool.disks, pool.shares  # noqa: B018 - loaded now, used after the session
        return self._info(pool, max_age=0)

    def _facts_of(self, pool: Pool, max_age: float) -> _Facts:
        """What btrfs and the mount table say about a pool, at most ``max_age`` seconds old.
        One caller refreshes at a time; the others take the last facts meanwhile."""
        now = time.monotonic()
        facts = self._facts.get(pool.name)
        if facts is not None and facts.state != pool.state:
            facts = None
        if facts is not None and now - facts.at <= max_age:
            return facts
        lock = self._fact_locks.setdefault(pool.name, threading.Lock())
        if not lock.acquire(blocking=facts is None or max_age == 0):
            assert facts is not None
            return facts
        try:
            mounted = pool.state != "creating" and self.is_mounted(pool.name)
            capacity = (0, 0, 0)
            if mounted:
                try:
                    capacity = btrfs.capacity(btrfs.usage(self.mountpoint(pool.name)))
                except CommandError as exc:
                    log.warning("reading the usage of pool %s: %s", pool.name, exc)
            devices: builtins.list[btrfs.FsDevice] = []
            if mounted and PROFILES[pool.profile].md_level is None:
                devices = [
                    d for d in btrfs.filesystem_show(self.mountpoint(pool.name)) if d.devid != 0
                ]
            names = {d.path: self.disks.name_of(d.path) for d in devices if not d.missing}
            facts = _Facts(time.monotonic(), pool.state, mounted, capacity, devices, names)
            self._facts[pool.name] = facts
            return facts
        finally:
            lock.release()

    def forget_facts(self, name: str) -> None:
        """After a change: the next reading goes to the machine."""
        self._facts.pop(name, None)

    @staticmethod
    def row(s: Session, name: str) -> Pool:
        pool = s.scalars(select(Pool).where(Pool.name == name)).first()
        if pool is None:
            raise NotFound(f"pool '{name}' does not exist")
        return pool

    def is_mounted(self, name: str) -> bool:
        found = mount.mounted_at(self.mountpoint(name))
        return found is not None and found.fstype == "btrfs"

    def _info(self, pool: Pool, max_age: float) -> PoolInfo:
        """A pool as users see it; runs outside any database session."""
        mnt = self.mountpoint(pool.name)
        facts = self._facts_of(pool, max_age)
        mounted = facts.mounted
        size = used = free = 0
        disks: builtins.list[PoolDiskInfo] = []
        health = "unavailable"
        refs = [d.disk for d in pool.disks]
        problem = ""
        if mounted:
            size, used, free = facts.capacity  # btrfs's own figures: statvfs says 89 % when full
            disks, degraded = self._disk_states(pool, refs, facts)
            failing = self._failing(pool.name, refs)
            health = "degraded" if degraded or failing else "ok"
            gone = [d.disk for d in disks if d.state == "missing"]
            reasons = []
            if gone:
                reasons.append(
                    f"missing: {', '.join(gone)} ({tolerance(pool.profile)}); "
                    "replace the missing disk"
                )
            reasons += [f"{disk} is failing: {why}" for disk, why in failing.items()]
            problem = "; ".join(reasons)
        else:
            present = self.disks.devices_of(refs)
            disks = [
                PoolDiskInfo(
                    disk=r,
                    device=present[r] or "",
                    devid=None,
                    size=0,
                    used=0,
                    state="online" if present[r] else "missing",
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
            problem=problem
            or (
                (self._problems.get(pool.name) or "not mounted")
                if health == "unavailable" and pool.state == "ready"
                else ""
            ),
        )

    def _disk_states(
        self, pool: Pool, refs: builtins.list[str], facts: _Facts
    ) -> tuple[builtins.list[PoolDiskInfo], bool]:
        """Per-disk state of a mounted pool, and whether it is degraded."""
        if PROFILES[pool.profile].md_level is not None:
            return self._md_disk_states(pool, refs)
        # devid 0 (the target of a running replace, not yet a member) is left out already
        fs_devices = facts.devices
        by_devid = {d.devid: d for d in fs_devices}
        online = {facts.names[d.path]: d for d in fs_devices if not d.missing}
        known = {d.devid for d in pool.disks if d.devid is not None}
        unclaimed = [d for d in fs_devices if d.missing and d.devid not in known]
        out = []
        for row in pool.disks:
            dev = by_devid.get(row.devid) if row.devid is not None else online.get(row.disk)
            if dev is None and row.devid is None and unclaimed:
                dev = unclaimed.pop(0)  # a row from before devids were recorded
            if dev is not None and not dev.missing:
                out.append(
                    PoolDiskInfo(
                        disk=row.disk,
                        device=dev.path,
                        devid=dev.devid,
                        size=dev.size,
                        used=dev.used,
                        state="online",
                    )
                )
            else:
                out.append(
                    PoolDiskInfo(
                        disk=row.disk,
                        device="",
                        devid=dev.devid if dev is not None else row.devid,
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
        refs = [self.disks.canonical(d) for d in req.disks]
        if len(set(refs)) != len(refs):
            v.add("disks", "a disk is named twice")
        if spec.md_level is not None and not mdadm.available():
            v.add(
                "profile",
                f"{req.profile} needs Linux md RAID, which this kernel does not "
                "provide (no /proc/mdstat)",
            )
        devices = [self.disks.check_usable(d, "disks", req.force, v) for d in refs]
        numbers = {blockdev.device_number(d) for d in devices if d}
        if len(numbers) != len([d for d in devices if d]):
            v.add("disks", "two of the names are the same disk")
        v.check()
        with self.db.session() as s:
            if s.scalars(select(Pool).where(Pool.name == req.name)).first():
                raise Conflict(f"pool '{req.name}' already exists", field="name")
        self.claim(req.name)
        try:
            with self.db.session() as s:
                pool = Pool(name=req.name, profile=req.profile, state="creating")
                pool.disks = [PoolDisk(disk=d) for d in refs]
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
        crash_point("pool.create.mkfs")
        progress(60, "mounting")
        with self.db.session() as s:
            pool = self.row(s, name)
            pool.uuid = uuid
            pool.md_uuid = md_uuid
        mnt = self.mountpoint(name)
        mnt.mkdir(parents=True, exist_ok=True)
        with translated("mounting the pool"):
            btrfs.mount(fs_devices, mnt, self._options(fs_devices, degraded=False))
        crash_point("pool.create.mounted")
        progress(80, "enabling quotas")
        with translated("enabling quotas"):
            btrfs.quota_enable(mnt)
        (mnt / ".snapshots").mkdir(mode=0o755, exist_ok=True)
        self.sync_members(name)  # the devids btrfs gave the disks
        with self.db.session() as s:
            self.row(s, name).state = "ready"
        self._health[name] = "ok"
        self.events.record(
            "info", "pool.created", name, f"pool {name} created ({profile}, {len(devices)} disks)"
        )

    def _rollback_create(self, name: str, devices: builtins.list[str]) -> None:
        """Undo a half-made pool: no mount without its row, no row without its filesystem."""
        self.forget_facts(name)
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
                    self._problems[name] = exc.message
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
        try:
            btrfs.mount(fs_devices, mnt, self._options(fs_devices, missing > 0))
        except CommandError as exc:
            raise OperationFailed(
                self._unmountable(name, len(devices), expected), detail=str(exc)
            ) from None
        self._problems.pop(name, None)
        log.info("mounted pool %s at %s (%d of %d disks)", name, mnt, len(devices), expected)
        self.sync_members(name)
        self.check_health(name)

    def _unmountable(self, name: str, present: int, expected: int) -> str:
        """Why a pool cannot be mounted, in words: what is missing, what its profile
        tolerates, what to do."""
        with self.db.session() as s:
            pool = self.row(s, name)
            profile, refs = pool.profile, [d.disk for d in pool.disks]
        absent = [r for r in refs if self.disks.device_of(r) is None]
        missing = max(expected - present, len(absent))
        if missing <= 0:
            return (
                f"pool {name} cannot be mounted although all {expected} disks are present; "
                "the kernel log (dmesg) says why"
            )
        which = f" ({', '.join(absent)})" if absent else ""
        return (
            f"pool {name} cannot be mounted: {missing} of its {expected} disks "
            f"{'is' if missing == 1 else 'are'} missing{which}, and {tolerance(profile)}. "
            "Attach the missing disks again; its shares are unavailable until then"
        )

    def check_health(self, name: str) -> str:
        """Read the pool's members back from btrfs, compute its health and record an event
        when it changes."""
        self._sync_quietly(name)
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

    def sync_members(self, name: str) -> bool:
        """Correct the pool's disks in the database from what btrfs says (the machine is the
        truth), after every disk operation, succeeded, failed or interrupted, and at every
        start. A member is identified by its btrfs devid; a missing one keeps its recorded
        disk name. Returns whether anything changed (an event says what)."""
        self.forget_facts(name)
        with self.db.session() as s:
            pool = self.row(s, name)
            if pool.md_uuid or pool.state != "ready":
                return False
        if not self.is_mounted(name):
            return False
        fs = [d for d in btrfs.filesystem_show(self.mountpoint(name)) if d.devid != 0]
        present = {d.devid: self.disks.name_of(d.path) for d in fs if not d.missing}
        missing = [d.devid for d in fs if d.missing]
        with self.db.session() as s:
            pool = self.row(s, name)
            rows = list(pool.disks)
            before = sorted((r.devid or 0, r.disk) for r in rows)
            by_devid = {r.devid: r for r in rows if r.devid is not None}
            legacy = [r for r in rows if r.devid is None and r.disk not in present.values()]
            wanted: dict[int, str] = dict(present)
            for devid in missing:
                if devid in by_devid:
                    wanted[devid] = by_devid[devid].disk
                elif legacy:
                    wanted[devid] = legacy.pop(0).disk
                else:
                    wanted[devid] = f"missing-devid-{devid}"
            if before == sorted(wanted.items()):
                return False
            for row in rows:
                pool.disks.remove(row)
            s.flush()
            for devid, ref in sorted(wanted.items()):
                pool.disks.append(PoolDisk(disk=ref, devid=devid))
        after = ", ".join(f"{ref} (devid {devid})" for devid, ref in sorted(wanted.items()))
        if before and all(devid for devid, _ in before):
            # rows that all had devids and still differ: the database was wrong (a crash, or a
            # step that failed half-way); the first reading of the devids is no news
            self.events.record(
                "warning",
                "pool.members",
                name,
                f"disks of pool {name} corrected from what btrfs says: {after}",
            )
        return True

    def _sync_quietly(self, name: str) -> None:
        self.forget_facts(name)
        try:
            self.sync_members(name)
        except (SpeicherError, CommandError) as exc:
            log.warning("reading the members of pool %s: %s", name, exc)

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
        disk = self.disks.canonical(disk)
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
                    crash_point("pool.add-disk.added")
            except BaseException:
                with self.db.session() as s:
                    row = s.scalars(select(PoolDisk).where(PoolDisk.disk == disk)).first()
                    if row is not None:
                        s.delete(row)
                raise
            finally:
                self._sync_quietly(name)
                self.release(name)
            self.events.record("info", "pool.disk-added", name, f"disk {disk} added to {name}")
            return f"disk {disk} added to pool {name}"

        return self.jobs.start("pool.add-disk", name, work, "starting")

    def remove_disk(self, name: str, disk: str) -> JobInfo:
        """Move a disk's data to the others, then release it."""
        pool = self._ready(name)
        disk = self.disks.canonical(disk)
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
                crash_point("pool.remove-disk.removed")
                with self.db.session() as s:
                    row = s.scalars(select(PoolDisk).where(PoolDisk.disk == disk)).first()
                    if row is not None:
                        s.delete(row)
                if entry.device:
                    with contextlib.suppress(CommandError):
                        blockdev.wipe(entry.device)
            finally:
                self._sync_quietly(name)
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
        req = PoolReplace(
            old=self.disks.canonical(req.old), new=self.disks.canonical(req.new), force=req.force
        )
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
        if entry.devid is None and not pool.md_uuid:
            raise InvalidInput(field="old", reason=f"btrfs's device id of '{req.old}' is unknown")
        was_degraded = info.health == "degraded"
        self.claim(name)

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
                    self._rebuild(name, pool, entry, req, device, was_degraded, progress)
                if pool.md_uuid:
                    with self.db.session() as s:
                        row = s.scalars(select(PoolDisk).where(PoolDisk.disk == req.old)).one()
                        row.disk = req.new
                if entry.state == "online" and entry.device:
                    with contextlib.suppress(CommandError):
                        blockdev.wipe(entry.device)
            finally:
                self._sync_quietly(name)
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

    def _rebuild(
        self,
        name: str,
        pool: PoolRef,
        entry: PoolDiskInfo,
        req: PoolReplace,
        device: str,
        was_degraded: bool,
        progress: Progress,
    ) -> None:
        """btrfs's part of a replace: rebuild by devid (a failing disk's superblock may not
        even read), read the members back, and restore redundancy once no disk is missing."""
        mnt = self.mountpoint(name)
        source = str(entry.devid)
        self.follow(
            "rebuilding onto the new disk",
            lambda: btrfs.replace(source, device, mnt),
            lambda: min(btrfs.replace_status(mnt)[1], 94.0),
            progress,
        )
        crash_point("pool.replace-disk.rebuilt")
        with self.db.session() as s:  # the new disk took the old one's devid
            row = s.scalars(
                select(PoolDisk).where(PoolDisk.pool_id == pool.id, PoolDisk.devid == entry.devid)
            ).first()
            if row is not None:
                row.disk = req.new
        self._sync_quietly(name)
        still_missing = [d for d in btrfs.filesystem_show(mnt) if d.missing]
        if still_missing:
            more = len(still_missing)
            self.events.record(
                "warning",
                "pool.degraded",
                name,
                f"disk {req.old} of {name} replaced by {req.new}; {more} more "
                f"disk{'s are' if more > 1 else ' is'} missing: replace "
                f"{'them' if more > 1 else 'it'} too to restore redundancy",
            )
        elif was_degraded:
            progress(95, "restoring redundancy of data written while degraded")
            spec = PROFILES[pool.profile]
            with translated("restoring redundancy"):
                btrfs.balance_start(mnt, spec.data, metadata_profile(pool.profile, len(pool.disks)))

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
            crash_point("pool.destroy.recorded")
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
        self.forget_facts(name)
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
