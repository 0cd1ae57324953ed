"""btrfs filesystems: ``mkfs.btrfs`` and the ``btrfs`` tool."""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from speicher.system import mount as mount_tool
from speicher.system.run import CommandError, run


@dataclass(frozen=True)
class Superblock:
    fsid: str
    label: str
    num_devices: int
    devid: int
    total_bytes: int


@dataclass(frozen=True)
class FsDevice:
    devid: int
    size: int
    used: int
    path: str
    missing: bool


@dataclass(frozen=True)
class Usage:
    """``btrfs filesystem usage -b``: raw figures (bytes over all disks) unless named
    otherwise; ``free`` and ``free_statfs`` are what files can still take (after the profile's
    copies), by btrfs's two estimates."""

    device_size: int
    device_missing: int
    used: int
    free: int
    data_ratio: float
    data_profile: str
    metadata_profile: str
    free_statfs: int | None = None  # "Free (statfs, df)"; None if btrfs-progs does not say
    unallocated: int = 0
    devices: int = 0
    unallocated_per_device: tuple[int, ...] = ()  # missing devices included
    data_size: int = 0  # logical bytes of the data chunks (one copy)
    data_used: int = 0
    metadata_ratio: float = 0.0
    metadata_size: int = 0  # logical bytes of the metadata chunks (one copy)
    metadata_used: int = 0
    global_reserve: int = 0


@dataclass(frozen=True)
class Qgroup:
    referenced: int
    exclusive: int
    max_referenced: int | None


def mkfs(devices: list[str], label: str, data: str, metadata: str) -> str:
    """Create a filesystem over ``devices``; return its UUID."""
    result = run(
        [
            "mkfs.btrfs",
            "--force",
            "--label",
            label,
            "--data",
            data,
            "--metadata",
            metadata,
            *devices,
        ],
        timeout=900,
    )
    match = re.search(r"^UUID:\s+(\S+)", result.stdout, re.MULTILINE)
    if not match:
        raise CommandError(["mkfs.btrfs"], 0, result.stdout, "no UUID in mkfs.btrfs output")
    return match.group(1)


def parse_dump_super(output: str) -> Superblock:
    values: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            values[parts[0]] = parts[1].strip()
    return Superblock(
        fsid=values.get("fsid", ""),
        label=values.get("label", ""),
        num_devices=int(values.get("num_devices", "0")),
        devid=int(values.get("dev_item.devid", "0")),
        total_bytes=int(values.get("dev_item.total_bytes", "0")),
    )


def superblock(device: str) -> Superblock:
    return parse_dump_super(run(["btrfs", "inspect-internal", "dump-super", device]).stdout)


_DEVID = re.compile(r"^\s*devid\s+(\d+)\s+size\s+(\d+)\s+used\s+(\d+)\s+path\s+(.*?)\s*$")


def parse_filesystem_show(output: str) -> list[FsDevice]:
    """Parse ``btrfs filesystem show --raw`` for one filesystem."""
    devices = []
    for line in output.splitlines():
        match = _DEVID.match(line)
        if match:
            path = match.group(4)
            missing = path.endswith("MISSING") or path.startswith("<missing")
            if missing:
                path = ""
            devices.append(
                FsDevice(
                    int(match.group(1)), int(match.group(2)), int(match.group(3)), path, missing
                )
            )
    return devices


def filesystem_show(mountpoint: Path) -> list[FsDevice]:
    return parse_filesystem_show(
        run(["btrfs", "filesystem", "show", "--raw", str(mountpoint)]).stdout
    )


def parse_usage(output: str) -> Usage:
    """Parse ``btrfs filesystem usage -b``."""

    def number(label: str) -> str:
        match = re.search(rf"^\s*{re.escape(label)}:\s+([\d.]+)", output, re.MULTILINE)
        return match.group(1) if match else "0"

    data = re.search(r"^Data,([\w]+):", output, re.MULTILINE)
    meta = re.search(r"^Metadata,([\w]+):", output, re.MULTILINE)
    # during a profile conversion there is one line per profile
    meta_chunks = re.findall(r"^Metadata,\w+: Size:(\d+), Used:(\d+)", output, re.MULTILINE)
    data_chunks = re.findall(
        r"^Data(?:\+Metadata)?,\w+: Size:(\d+), Used:(\d+)", output, re.MULTILINE
    )
    unallocated = output.split("\nUnallocated:\n", 1)
    per_device = (
        tuple(int(n) for n in re.findall(r"^\s+\S.*\s(\d+)$", unallocated[1], re.MULTILINE))
        if len(unallocated) == 2
        else ()
    )
    statfs = re.search(r"^\s*Free \(statfs, df\):\s+(\d+)", output, re.MULTILINE)
    return Usage(
        device_size=int(number("Device size")),
        device_missing=int(number("Device missing")),
        used=int(number("Used")),
        free=int(number("Free (estimated)")),
        data_ratio=float(number("Data ratio")),
        data_profile=data.group(1).lower() if data else "",
        metadata_profile=meta.group(1).lower() if meta else "",
        free_statfs=int(statfs.group(1)) if statfs else None,
        unallocated=int(number("Device unallocated")),
        devices=len(per_device),
        unallocated_per_device=per_device,
        data_size=sum(int(size) for size, _ in data_chunks),
        data_used=sum(int(used) for _, used in data_chunks),
        metadata_ratio=float(number("Metadata ratio")),
        metadata_size=sum(int(size) for size, _ in meta_chunks),
        metadata_used=sum(int(used) for _, used in meta_chunks),
        global_reserve=int(number("Global reserve")),
    )


MIB = 1024 * 1024
RESERVED_PER_DEVICE = MIB  # the first MiB of every device, never allocated, counted unallocated
# what metadata needs beyond the global reserve to take another file: the kernel's statfs
# guesses 4 MiB; a pool of tiny files gave ENOSPC with 3.8 MiB left, so twice that
METADATA_SLACK = 8 * MIB


def metadata_exhausted(usage: Usage) -> bool:
    """Whether btrfs can take no more files because their metadata has no room: the metadata
    chunks are full but for the global reserve, and no disk space is left for a new one.
    (Many tiny files fill metadata first; data chunks may still look free.)"""
    if usage.metadata_size <= 0:  # mixed block groups: data and metadata share chunks
        return False
    room = usage.metadata_size - usage.metadata_used
    spare = usage.unallocated - RESERVED_PER_DEVICE * max(1, usage.devices)
    can_grow = spare >= usage.metadata_ratio * METADATA_SLACK
    return not can_grow and room < usage.global_reserve + METADATA_SLACK


COPIES = {"single": 1, "raid0": 1, "raid1": 2, "raid10": 2, "raid1c3": 3, "raid1c4": 4}


def pairable(free: list[int], copies: int) -> int:
    """How many bytes of data fit in unallocated space ``free`` (per device) when each byte
    needs ``copies`` copies on different devices: a big disk cannot pair with itself. The
    bound for each j < copies: the space outside the j biggest disks, over copies - j."""
    ranked = sorted((max(0, f) for f in free), reverse=True)
    if copies <= 1:
        return sum(ranked)
    if len(ranked) < copies:
        return 0
    return min(sum(ranked[j:]) // (copies - j) for j in range(copies))


def free_for_data(usage: Usage) -> int:
    """What files can still take: room in the data chunks plus what the unallocated space
    of the disks holds in the data profile. btrfs's "Free (estimated)" divides unallocated
    space by the data ratio, which overrates disks of unequal sizes (a raid1 pool that took
    no more data still showed 270M there); "Free (statfs, df)" underrates pools whose disk
    was added (1.8G of 2.9G). Where the profile or the disks are unknown, the estimate."""
    spare = [f - RESERVED_PER_DEVICE for f in usage.unallocated_per_device]
    if usage.data_profile == "dup":  # both copies on one disk
        unallocated = sum(max(0, f) for f in spare) // 2
    elif usage.data_profile in COPIES and spare:
        unallocated = pairable(spare, COPIES[usage.data_profile])
    else:
        return usage.free
    return min(usage.free, max(0, usage.data_size - usage.data_used) + unallocated)


def capacity(usage: Usage) -> tuple[int, int, int]:
    """(size, used, free) of a pool in bytes users can store: what its files take and what
    they can still take, after the profile's copies. ``statvfs`` counts raw chunk space
    instead, so a full raid1 or single pool said 89 % used; here a full pool says 100 %.

    ``used`` is all space in use (data and metadata, every copy) divided by the data ratio:
    metadata takes room data could have had. ``free`` is :func:`free_for_data`, and nothing
    once metadata is exhausted. ``size`` is their sum."""
    ratio = usage.data_ratio if usage.data_ratio > 0 else 1.0
    used = round(usage.used / ratio)
    free = 0 if metadata_exhausted(usage) else free_for_data(usage)
    return used + free, used, free


def usage(mountpoint: Path) -> Usage:
    return parse_usage(run(["btrfs", "filesystem", "usage", "-b", str(mountpoint)]).stdout)


def parse_device_stats(output: str) -> dict[str, dict[str, int]]:
    """Parse ``btrfs device stats``: {device: {counter: value}}."""
    stats: dict[str, dict[str, int]] = {}
    for line in output.splitlines():
        match = re.match(r"^\[(.+)\]\.(\w+)\s+(\d+)", line)
        if match:
            stats.setdefault(match.group(1), {})[match.group(2)] = int(match.group(3))
    return stats


def device_stats(mountpoint: Path) -> dict[str, dict[str, int]]:
    # exit code 64 means "some counter is not zero", which is information, not failure
    result = run(["btrfs", "device", "stats", str(mountpoint)], check=False)
    if result.returncode not in (0, 64):
        raise CommandError(result.argv, result.returncode, result.stdout, result.stderr)
    return parse_device_stats(result.stdout)


def subvolume_create(path: Path) -> None:
    run(["btrfs", "subvolume", "create", str(path)])


def subvolume_delete(path: Path) -> None:
    run(["btrfs", "subvolume", "delete", "--commit-after", str(path)], timeout=900)


# what btrfs-progs' own test is (common/utils.c, test_issubvolume): the folder is on btrfs
# and has the inode number every subvolume's top folder has, BTRFS_FIRST_FREE_OBJECTID
_SUPER_MAGIC = 0x9123683E
_FIRST_FREE_OBJECTID = 256
_libc = ctypes.CDLL(None, use_errno=True)
_STATFS_SIZE = 256  # struct statfs is 120 bytes on 64-bit Linux; f_type is its first field


def is_subvolume(path: Path) -> bool:
    """``path`` is the top folder of a subvolume or snapshot (a symlink is not: it is not
    followed). Asked of the kernel, not of ``btrfs subvolume show``: a process per replica
    or snapshot was most of what listing the replicas of a share took."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_ino != _FIRST_FREE_OBJECTID:
            return False
        buf = ctypes.create_string_buffer(_STATFS_SIZE)
        if _libc.fstatfs(fd, buf) != 0:
            return False
        return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF == _SUPER_MAGIC
    finally:
        os.close(fd)


def quota_enable(mountpoint: Path) -> None:
    run(["btrfs", "quota", "enable", str(mountpoint)], timeout=900)


def qgroup_limit(path: Path, limit: int | None) -> None:
    run(["btrfs", "qgroup", "limit", "none" if limit is None else str(limit), str(path)])


def parse_qgroup_show(output: str) -> Qgroup:
    """Parse ``btrfs qgroup show --raw -re -f`` (one subvolume's row)."""
    for line in output.splitlines():
        parts = line.split()
        if parts and re.fullmatch(r"\d+/\d+", parts[0]) and len(parts) >= 4:
            limit = None if parts[3] == "none" else int(parts[3])
            return Qgroup(int(parts[1]), int(parts[2]), limit)
    raise ValueError("no qgroup row in output")


def parse_qgroups(output: str) -> dict[str, Qgroup]:
    """Parse ``btrfs qgroup show --raw -re MOUNTPOINT``: subvolume path -> its qgroup."""
    out: dict[str, Qgroup] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 6 and re.fullmatch(r"0/\d+", parts[0]) and parts[1].isdigit():
            limit = None if parts[3] == "none" else int(parts[3])
            out[" ".join(parts[5:])] = Qgroup(int(parts[1]), int(parts[2]), limit)
    return out


def qgroups(mountpoint: Path) -> dict[str, Qgroup]:
    """Every subvolume's qgroup of a filesystem, by path below the mountpoint: one command for
    all shares of a pool."""
    return parse_qgroups(run(["btrfs", "qgroup", "show", "--raw", "-re", str(mountpoint)]).stdout)


def qgroup_show(path: Path) -> Qgroup:
    return parse_qgroup_show(
        run(["btrfs", "qgroup", "show", "--raw", "-re", "-f", str(path)]).stdout
    )


def sync(mountpoint: Path) -> None:
    run(["btrfs", "filesystem", "sync", str(mountpoint)])


def set_compression(path: Path, algorithm: str | None) -> None:
    # an empty value resets the property; "none" would forbid compression even by mount option
    run(["btrfs", "property", "set", str(path), "compression", algorithm or ""])


def device_add(devices: list[str], mountpoint: Path) -> None:
    run(["btrfs", "device", "add", "--force", *devices, str(mountpoint)], timeout=900)


def device_remove(device: str, mountpoint: Path) -> None:
    """Remove a device (path, devid, or ``missing``); blocks until its data has moved."""
    run(["btrfs", "device", "remove", device, str(mountpoint)], timeout=24 * 3600)


def replace(source: str, target: str, mountpoint: Path) -> None:
    """Replace ``source`` (path or devid) with ``target``; blocks until the data is rebuilt.
    Follow it with :func:`replace_status` from another thread."""
    run(
        ["btrfs", "replace", "start", "-B", "-f", source, target, str(mountpoint)],
        timeout=7 * 24 * 3600,
    )


def parse_replace_status(output: str) -> tuple[str, float]:
    """(state, percent) from ``btrfs replace status -1``; state is ``running``, ``finished``,
    ``canceled``, ``never`` or ``unknown``."""
    text = output.strip()
    if match := re.search(r"([\d.]+)% done", text):
        return "running", float(match.group(1))
    if match := re.search(r"canceled on .* at ([\d.]+)%", text):
        return "canceled", float(match.group(1))
    if text.startswith("Started on") and "finished on" in text:
        return "finished", 100.0
    if "Never started" in text:
        return "never", 0.0
    return "unknown", 0.0


def replace_status(mountpoint: Path) -> tuple[str, float]:
    return parse_replace_status(run(["btrfs", "replace", "status", "-1", str(mountpoint)]).stdout)


def balance_start(mountpoint: Path, data: str | None = None, metadata: str | None = None) -> None:
    """Balance (restripe) the filesystem, converting to the given profiles; blocks."""
    argv = ["btrfs", "balance", "start", "--full-balance"]
    if data:
        argv += [f"-dconvert={data},soft"]
    if metadata:
        argv += [f"-mconvert={metadata},soft"]
    result = run([*argv, str(mountpoint)], check=False, timeout=24 * 3600)
    if result.returncode != 0:
        raise CommandError(result.argv, result.returncode, result.stdout, result.stderr)


def parse_balance_status(output: str) -> float | None:
    """Percent done of a running balance, or None when none runs."""
    match = re.search(r"(\d+) out of about (\d+) chunks balanced", output)
    if not match:
        return None
    done, total = int(match.group(1)), int(match.group(2))
    return 100.0 * done / total if total else 0.0


def balance_status(mountpoint: Path) -> float | None:
    return parse_balance_status(
        run(["btrfs", "balance", "status", str(mountpoint)], check=False).stdout
    )


def resize_max(mountpoint: Path) -> None:
    """Grow the filesystem to fill its (grown) device."""
    run(["btrfs", "filesystem", "resize", "max", str(mountpoint)])


def snapshot(source: Path, target: Path) -> None:
    """Make a read-only snapshot of subvolume ``source`` at ``target``."""
    run(["btrfs", "subvolume", "snapshot", "-r", str(source), str(target)])


def snapshot_writable(source: Path, target: Path) -> None:
    """A writable snapshot: a new subvolume sharing all data with ``source``."""
    run(["btrfs", "subvolume", "snapshot", str(source), str(target)])


# -- scrub -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScrubStats:
    """What a scrub read and found, from the raw counters of ``btrfs scrub ... -R``."""

    status: str  # running, finished, aborted, interrupted; "never" when no scrub ran
    data_bytes: int = 0
    tree_bytes: int = 0
    read_errors: int = 0
    csum_errors: int = 0
    verify_errors: int = 0
    super_errors: int = 0
    corrected: int = 0
    uncorrectable: int = 0
    unverified: int = 0

    @property
    def bytes_scrubbed(self) -> int:
        return self.data_bytes + self.tree_bytes

    @property
    def errors_found(self) -> int:
        """Every error the scrub met: unreadable blocks, bad checksums, bad tree blocks."""
        return self.read_errors + self.csum_errors + self.verify_errors + self.super_errors


MISSING_DEVICE = "<missing disk>"  # how btrfs names a device it cannot see


@dataclass(frozen=True)
class DeviceScrub:
    """One device's part of a scrub; ``device`` is ``<missing disk>`` for a missing one."""

    device: str
    devid: int
    stats: ScrubStats


_SCRUB_FIELDS = {
    "data_bytes_scrubbed": "data_bytes",
    "tree_bytes_scrubbed": "tree_bytes",
    "read_errors": "read_errors",
    "csum_errors": "csum_errors",
    "verify_errors": "verify_errors",
    "super_errors": "super_errors",
    "corrected_errors": "corrected",
    "uncorrectable_errors": "uncorrectable",
    "unverified_errors": "unverified",
}


def _scrub_stats(block: str) -> ScrubStats:
    values: dict[str, int] = {}
    for match in re.finditer(r"^\s*(\w+):\s+(\d+)\s*$", block, re.MULTILINE):
        field = _SCRUB_FIELDS.get(match.group(1))
        if field:
            values[field] = int(match.group(2))
    status = re.search(r"^Status:\s+(\w+)", block, re.MULTILINE)
    if status:
        state = status.group(1)
    elif "no stats available" in block:
        state = "never"
    else:
        state = "unknown"
    return ScrubStats(state, **values)


def parse_scrub_status(output: str) -> ScrubStats:
    """Parse ``btrfs scrub status -R``: the totals of the last (or running) scrub."""
    return _scrub_stats(output)


# a missing disk is "<missing disk>", or nothing at all once the kernel forgot its path
# ("Scrub device  (id 2) canceled", after ``btrfs device scan --forget``)
_SCRUB_DEVICE = re.compile(r"^Scrub device (.*?) ?\(id (\d+)\) \w+", re.MULTILINE)


def parse_scrub_start(output: str) -> list[DeviceScrub]:
    """Parse ``btrfs scrub start -B -d -R``: each device's counters."""
    heads = list(_SCRUB_DEVICE.finditer(output))
    devices = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(output)
        block = output[head.end() : end]
        device = head.group(1).strip() or MISSING_DEVICE
        devices.append(DeviceScrub(device, int(head.group(2)), _scrub_stats(block)))
    return devices


def scrub_total(devices: list[DeviceScrub]) -> ScrubStats:
    """The sum of every device's counters."""
    sums = {
        field: sum(getattr(d.stats, field) for d in devices) for field in _SCRUB_FIELDS.values()
    }
    states = {d.stats.status for d in devices}
    status = "finished" if states <= {"finished"} else "aborted"
    return ScrubStats(status, **sums)


@dataclass(frozen=True)
class ScrubResult:
    returncode: int  # 0 clean or corrected, 3 uncorrectable errors, else the scrub failed
    devices: list[DeviceScrub]
    messages: str  # what btrfs printed on stderr


def mount(devices: list[str], target: Path, options: list[str]) -> None:
    """Mount the filesystem on ``devices`` at ``target``. When the kernel answers "busy", a
    stale registration of one of the devices (a loop device reused after another filesystem
    on it was unmounted and the device detached) can be the cause: the devices are forgotten
    (``btrfs device scan --forget``, which leaves mounted ones alone) and the mount tried
    once more."""
    try:
        mount_tool.mount(devices[0], target, "btrfs", options)
    except CommandError as exc:
        if "busy" not in exc.output:
            raise
        for device in devices:
            run(["btrfs", "device", "scan", "--forget", device], check=False)
        mount_tool.mount(devices[0], target, "btrfs", options)


def set_scrub_speed(uuid: str, devids: Iterable[int], bytes_per_second: int) -> None:
    """Limit the scrub of each device of filesystem ``uuid`` (0: no limit); the kernel reads
    the limit as the scrub goes (``/sys/fs/btrfs/<uuid>/devinfo/<devid>/scrub_speed_max``,
    Linux 5.14 and later). Raises OSError where the kernel has no such file."""
    base = Path("/sys/fs/btrfs") / uuid / "devinfo"
    for devid in devids:
        (base / str(devid) / "scrub_speed_max").write_text(f"{bytes_per_second}\n")


def scrub(mountpoint: Path) -> ScrubResult:
    """Scrub the whole filesystem; blocks until done. Follow it with :func:`scrub_status`."""
    result = run(
        ["btrfs", "scrub", "start", "-B", "-d", "-R", str(mountpoint)],
        check=False,
        timeout=20 * 24 * 3600,  # poll() takes at most ~24 days
    )
    return ScrubResult(result.returncode, parse_scrub_start(result.stdout), result.stderr.strip())


def scrub_status(mountpoint: Path) -> ScrubStats:
    return parse_scrub_status(run(["btrfs", "scrub", "status", "-R", str(mountpoint)]).stdout)


@dataclass(frozen=True)
class InodeRef:
    """A file's use of a block: inode ``inode`` of subvolume ``root`` at byte ``offset``."""

    inode: int
    offset: int
    root: int


def parse_logical_resolve(output: str) -> list[InodeRef]:
    """Parse ``btrfs inspect-internal logical-resolve -P`` (inodes, not paths)."""
    return [
        InodeRef(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"^inode (\d+) offset (\d+) root (\d+)$", output, re.MULTILINE)
    ]


def logical_refs(logical: int, mountpoint: Path) -> list[InodeRef]:
    """The files (inodes per subvolume) that use the block at byte ``logical`` of the
    filesystem's address space; empty for metadata, free space or a file since deleted."""
    result = run(
        ["btrfs", "inspect-internal", "logical-resolve", "-P", str(logical), str(mountpoint)],
        check=False,
    )
    return parse_logical_resolve(result.stdout) if result.returncode == 0 else []


def subvolume_path(root: int, mountpoint: Path) -> Path | None:
    """Where subvolume ``root`` is (the pool is mounted at its top level, subvolume 5)."""
    if root == 5:
        return mountpoint
    found = run(
        ["btrfs", "inspect-internal", "subvolid-resolve", str(root), str(mountpoint)], check=False
    )
    name = found.stdout.strip()
    return mountpoint / name if found.returncode == 0 and name else None


def inode_paths(inode: int, subvolume: Path) -> list[Path]:
    """Every path (hard link) of inode ``inode`` of the subvolume at ``subvolume``.
    (``logical-resolve`` of btrfs-progs 6.2 cannot name files inside subvolumes, "could not
    be accessed: not mounted"; so callers resolve inodes themselves.)"""
    found = run(
        ["btrfs", "inspect-internal", "inode-resolve", str(inode), str(subvolume)], check=False
    )
    if found.returncode != 0:
        return []
    return [Path(p) for p in dict.fromkeys(found.stdout.splitlines()) if p.strip()]


STRIPE_LEN = 64 * 1024  # what a scrub reads and checks as one piece (BTRFS_STRIPE_LEN)


def sector_size(mountpoint: Path) -> int:
    """The filesystem's sector size: the unit of checksums (btrfs's statfs block size)."""
    return os.statvfs(mountpoint).f_bsize


# -- what scrubs tell the kernel log -------------------------------------------------------------


@dataclass(frozen=True)
class ScrubError:
    """An error a scrub wrote to the kernel log."""

    logical: int
    device: str
    corrected: bool


@dataclass(frozen=True)
class ScrubErrorPath:
    """The kernel's own description of a bad data block (root-relative path)."""

    logical: int
    device: str
    root: int
    inode: int
    path: str
    offset: int = 0  # in the file


# kernel 6.x: "scrub: fixed up error at logical 137756672 on dev /dev/loop2 physical 116785152";
# older kernels lack the "scrub: " prefix and the physical address. One line per bad sector,
# rate-limited (10 in 5 s), and since 6.4 the address is the start of the 64 KiB scrub stripe
# holding the sector, not the sector (so is the "checksum error ... (path: ...)" line's file)
_FIXUP = re.compile(
    r"(?P<what>fixed up|unable to fixup \(regular\)) error at logical (?P<logical>\d+) "
    r"on dev (?P<dev>.+?)(?: physical \d+)?$"
)
_CSUM_PATH = re.compile(
    r"error at logical (?P<logical>\d+) on dev (?P<dev>.+?), physical \d+,? root (?P<root>\d+),? "
    r"inode (?P<inode>\d+),? offset (?P<offset>\d+),? length \d+,? links \d+ "
    r"\(path: (?P<path>.*)\)$"
)


def parse_kmsg_record(record: str) -> str:
    """The message of one ``/dev/kmsg`` record (``prio,seq,time,flags;message``)."""
    first = record.split("\n", 1)[0]
    message = first.split(";", 1)[1] if ";" in first else first
    if "\\x" not in message:
        return message
    # the kernel writes unprintable bytes (and every byte of a UTF-8 file name) as \xNN
    raw = re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), message)
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


def parse_scrub_errors(
    messages: list[str], devices: set[str]
) -> tuple[list[ScrubError], list[ScrubErrorPath]]:
    """The errors scrubs logged for ``devices`` (device paths, as btrfs names them)."""
    errors: list[ScrubError] = []
    paths: list[ScrubErrorPath] = []
    for message in messages:
        if "BTRFS" not in message:
            continue
        if match := _FIXUP.search(message):
            if match.group("dev") in devices:
                errors.append(
                    ScrubError(
                        int(match.group("logical")),
                        match.group("dev"),
                        match.group("what") == "fixed up",
                    )
                )
        elif (match := _CSUM_PATH.search(message)) and match.group("dev") in devices:
            paths.append(
                ScrubErrorPath(
                    int(match.group("logical")),
                    match.group("dev"),
                    int(match.group("root")),
                    int(match.group("inode")),
                    match.group("path"),
                    int(match.group("offset")),
                )
            )
    return errors, paths


class KernelLog:
    """The kernel messages written from now on (``/dev/kmsg``, what ``dmesg`` shows). btrfs
    names the blocks a scrub could not repair only there. Use as a context manager."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def __enter__(self) -> KernelLog:
        try:
            self._fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            self.close()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> list[str] | None:
        """Messages since entering (or the last read); None if the log cannot be read."""
        if self._fd is None:
            return None
        messages = []
        while True:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # the ring buffer overwrote records we had not read
                continue
            except OSError:
                break
            if not record:
                break
            messages.append(parse_kmsg_record(record.decode("utf-8", "replace")))
        return messages
