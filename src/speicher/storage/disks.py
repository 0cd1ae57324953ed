"""Disks: the machine's block devices and Speicher's virtual disks."""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
from pathlib import Path

from sqlalchemy import select

from speicher import names
from speicher.config import Settings
from speicher.db import Database, Pool, PoolDisk, VirtualDisk
from speicher.errors import Conflict, NotFound, Validator, translated
from speicher.events import EventService
from speicher.storage.models import DiskInfo
from speicher.system import blockdev, loop

log = logging.getLogger(__name__)

MIN_DISK_SIZE = 1024**3
MAX_VIRTUAL_SIZE = 64 * 1024**4


class DiskService:
    def __init__(self, settings: Settings, db: Database, events: EventService) -> None:
        self.settings = settings
        self.db = db
        self.events = events

    # -- reading -----------------------------------------------------------------------------

    def list(self) -> list[DiskInfo]:
        """Every disk: physical block devices first, then virtual disks."""
        with self.db.session() as s:
            members = {d.disk: d.pool.name for d in s.scalars(select(PoolDisk))}
            virtual = list(s.scalars(select(VirtualDisk).order_by(VirtualDisk.name)))
        loops = {dev.backing_file: dev.device for dev in loop.list_devices()}
        devices = blockdev.list_devices()
        by_path = {d.path: d for d in devices}
        out = []
        for dev in devices:
            if dev.type not in ("disk", "part") or dev.name.startswith(("zram", "loop")):
                continue
            used = self._used_by(dev.path, members.get(dev.path), by_path)
            out.append(
                DiskInfo(
                    name=dev.path,
                    kind="physical",
                    device=dev.path,
                    size=dev.size,
                    model=dev.model,
                    serial=dev.serial,
                    used_by=used,
                    state="in-use" if used else "available",
                    backing_file="",
                )
            )
        for vd in virtual:
            device = loops.get(vd.path, "")
            pool = members.get(vd.name)
            used = (
                f"pool:{pool}" if pool else (self._used_by(device, None, by_path) if device else "")
            )
            state = "missing" if not device else ("in-use" if used else "available")
            out.append(
                DiskInfo(
                    name=vd.name,
                    kind="virtual",
                    device=device,
                    size=vd.size,
                    model="",
                    serial="",
                    used_by=used,
                    state=state,
                    backing_file=vd.path,
                )
            )
        return out

    def _used_by(
        self, path: str, pool: str | None, by_path: dict[str, blockdev.BlockDevice]
    ) -> str:
        if pool:
            return f"pool:{pool}"
        dev = by_path.get(path)
        if dev is not None:
            if dev.mountpoints:
                return f"mounted:{dev.mountpoints[0]}"
            if dev.children:
                return "partitions"
        signature = blockdev.probe(path)
        if signature.get("TYPE"):
            return f"filesystem:{signature['TYPE']}"
        return ""

    @staticmethod
    def canonical(ref: str) -> str:
        """How a disk is recorded: a virtual disk's name, or the real path of a device
        (``/dev/./loop1`` and ``/dev//loop1`` are ``/dev/loop1``)."""
        if ref.startswith("/"):
            return os.path.realpath(ref)
        return ref

    def devices_of(self, refs: builtins.list[str]) -> dict[str, str | None]:
        """:meth:`device_of` for many disks, with one query and one loop-device listing."""
        names = [r for r in refs if not r.startswith("/")]
        paths: dict[str, str] = {}
        if names:
            with self.db.session() as s:
                query = select(VirtualDisk).where(VirtualDisk.name.in_(names))
                paths = {vd.name: vd.path for vd in s.scalars(query)}
        loops = {dev.backing_file: dev.device for dev in loop.list_devices()} if paths else {}
        out: dict[str, str | None] = {}
        for ref in refs:
            if ref.startswith("/"):
                out[ref] = self.device_of(ref)
            else:
                out[ref] = loops.get(paths[ref]) if ref in paths else None
        return out

    def device_of(self, ref: str) -> str | None:
        """The block device a disk reference names now, or None (unknown or detached)."""
        if ref.startswith("/"):
            real = os.path.realpath(ref)
            return real if blockdev.device_number(real) is not None else None
        with self.db.session() as s:
            vd = s.scalars(select(VirtualDisk).where(VirtualDisk.name == ref)).first()
            path = vd.path if vd else None
        return loop.find(Path(path)) if path else None

    def name_of(self, device: str) -> str:
        """The disk reference for a block device: a virtual disk's name, else the path."""
        loops = {dev.device: dev.backing_file for dev in loop.list_devices()}
        backing = loops.get(device)
        if backing:
            with self.db.session() as s:
                vd = s.scalars(select(VirtualDisk).where(VirtualDisk.path == backing)).first()
                if vd:
                    return vd.name
        return device

    def members(self) -> dict[int, str]:
        """Device numbers of every disk a pool holds -> the pool's name: the disks Speicher's
        pools name, and the members of every mounted btrfs filesystem."""
        with self.db.session() as s:
            refs = [(d.disk, d.pool.name, d.pool.uuid) for d in s.scalars(select(PoolDisk))]
        found: dict[int, str] = {}
        by_uuid = {uuid: pool for _, pool, uuid in refs if uuid}
        for member, fsid in blockdev.mounted_btrfs_members().items():
            found[member] = by_uuid.get(fsid, f"a mounted btrfs filesystem ({fsid})")
        devices = self.devices_of([ref for ref, _, _ in refs])
        for ref, pool, _ in refs:
            device = devices[ref]
            number = blockdev.device_number(device) if device else None
            if number is not None:
                found[number] = pool
        return found

    def check_usable(self, ref: str, field: str, force: bool, v: Validator) -> str | None:
        """Check that disk ``ref`` may be given to a pool; return its device or add a problem.

        A disk is identified by its device number, not its path. ``force`` only allows wiping
        a disk that holds some other filesystem; it never overrides "member of a pool" or
        "mounted / held by the kernel"."""
        device = self.device_of(ref)
        if device is None:
            # each a whole sentence: the web console translates reasons by their templates
            v.add(
                field,
                f"disk '{ref}' does not exist or is not a block device"
                if ref.startswith("/")
                else f"disk '{ref}' does not exist or is not attached",
            )
            return None
        number = blockdev.device_number(device)
        owner = self.members().get(number) if number is not None else None
        if owner is not None:
            pool = owner if owner.startswith("a mounted") else f"pool '{owner}'"
            v.add(field, f"disk '{ref}' ({device}) is already used by {pool}")
            return None
        with self.db.session() as s:
            uuids = {p.uuid: p.name for p in s.scalars(select(Pool)) if p.uuid}
        signature = blockdev.probe(device)
        if signature.get("UUID") in uuids:
            v.add(field, f"disk '{ref}' holds pool '{uuids[signature['UUID']]}'")
            return None
        by_path = {d.path: d for d in blockdev.list_devices()}
        dev = by_path.get(device)
        if dev is not None and (dev.mountpoints or dev.children):
            v.add(field, f"disk '{ref}' is in use ({self._used_by(device, None, by_path)})")
            return None
        if blockdev.busy(device):
            v.add(field, f"disk '{ref}' ({device}) is in use: mounted or held by the kernel")
            return None
        if dev is not None and dev.read_only:
            v.add(field, f"disk '{ref}' is read-only")
            return None
        size = blockdev.size(device)
        if size < MIN_DISK_SIZE:
            v.add(field, f"disk '{ref}' is too small ({names.format_size(size)}; at least 1G)")
            return None
        kind = signature.get("TYPE")
        if kind and not force:
            v.add(
                field,
                f"disk '{ref}' holds a {kind} filesystem or RAID member; use force to wipe it",
            )
            return None
        return device

    # -- virtual disks -----------------------------------------------------------------------

    def create_virtual(self, name: str, size: str | int) -> DiskInfo:
        """Make a sparse file of ``size`` and attach it to a loop device."""
        v = Validator()
        if reason := names.disk_name(name):
            v.add("name", reason)
        nbytes = 0
        try:
            nbytes = names.parse_size(size)
        except ValueError as exc:
            v.add("size", str(exc))
        else:
            if nbytes < MIN_DISK_SIZE:
                v.add("size", "must be at least 1G")
            elif nbytes > MAX_VIRTUAL_SIZE:
                v.add("size", "must be at most 64T")
        v.check()
        path = self.settings.disks_dir / f"{name}.img"
        with self.db.session() as s:
            if s.scalars(select(VirtualDisk).where(VirtualDisk.name == name)).first():
                raise Conflict(f"virtual disk '{name}' already exists")
        self.settings.disks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            raise Conflict(f"virtual disk file {path} already exists") from None
        device = None
        try:
            os.ftruncate(fd, nbytes)
            os.close(fd)
            with translated("attaching the virtual disk"):
                device = loop.attach(path)
            with self.db.session() as s:
                s.add(VirtualDisk(name=name, size=nbytes, path=str(path)))
        except BaseException:
            if device:
                with contextlib.suppress(Exception):
                    loop.detach(device)
            path.unlink(missing_ok=True)
            raise
        self.events.record("info", "disk.created", name, f"virtual disk {name} created ({size})")
        return self.get(name)

    def get(self, name: str) -> DiskInfo:
        for disk in self.list():
            if disk.name == name:
                return disk
        raise NotFound(f"disk '{name}' does not exist")

    def delete_virtual(self, name: str) -> None:
        """Detach and delete a virtual disk that no pool uses."""
        with self.db.session() as s:
            vd = s.scalars(select(VirtualDisk).where(VirtualDisk.name == name)).first()
            if vd is None:
                raise NotFound(f"virtual disk '{name}' does not exist")
            member = s.scalars(select(PoolDisk).where(PoolDisk.disk == name)).first()
            if member is not None:
                raise Conflict(f"virtual disk '{name}' is used by pool '{member.pool.name}'")
            path = Path(vd.path)
            device = loop.find(path)
            if device:
                mount_users = [d for d in blockdev.list_devices() if d.path == device]
                if mount_users and mount_users[0].mountpoints:
                    raise Conflict(f"virtual disk '{name}' is mounted")
                with translated("detaching the virtual disk"):
                    loop.detach(device)
            path.unlink(missing_ok=True)
            s.delete(vd)
        self.events.record("info", "disk.deleted", name, f"virtual disk {name} deleted")

    def attach_all(self) -> builtins.list[str]:
        """Attach every virtual disk whose file exists; return the names of missing ones."""
        with self.db.session() as s:
            disks = [(vd.name, Path(vd.path)) for vd in s.scalars(select(VirtualDisk))]
        missing = []
        for name, path in disks:
            if not path.exists():
                missing.append(name)
                self.events.record(
                    "error", "disk.missing", name, f"virtual disk {name}: file {path} is missing"
                )
                continue
            if loop.find(path) is None:
                with translated(f"attaching virtual disk {name}"):
                    loop.attach(path)
        return missing
