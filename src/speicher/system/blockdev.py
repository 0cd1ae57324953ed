"""Block devices: ``lsblk``, ``blkid``, ``wipefs``."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speicher.system.run import CommandError, run


@dataclass(frozen=True)
class BlockDevice:
    name: str
    path: str
    size: int
    type: str
    model: str = ""
    serial: str = ""
    mountpoints: list[str] = field(default_factory=list)
    parent: str = ""
    read_only: bool = False
    children: list[str] = field(default_factory=list)


def _flatten(items: list[dict[str, Any]], parent: str, out: list[BlockDevice]) -> None:
    for item in items:
        children = item.get("children") or []
        out.append(
            BlockDevice(
                name=item["name"],
                path=item.get("path") or f"/dev/{item['name']}",
                size=int(item.get("size") or 0),
                type=item.get("type") or "",
                model=(item.get("model") or "").strip(),
                serial=(item.get("serial") or "").strip(),
                mountpoints=[m for m in (item.get("mountpoints") or []) if m],
                parent=parent,
                read_only=bool(item.get("ro")),
                children=[c.get("path") or f"/dev/{c['name']}" for c in children],
            )
        )
        _flatten(children, item.get("path") or f"/dev/{item['name']}", out)


def parse_lsblk(output: str) -> list[BlockDevice]:
    """Parse ``lsblk --json --bytes`` output into a flat list (children after parents)."""
    out: list[BlockDevice] = []
    _flatten(json.loads(output).get("blockdevices", []), "", out)
    return out


def list_devices() -> list[BlockDevice]:
    result = run(
        [
            "lsblk",
            "--json",
            "--bytes",
            "--output",
            "NAME,PATH,SIZE,TYPE,MODEL,SERIAL,MOUNTPOINTS,RO",
        ]
    )
    return parse_lsblk(result.stdout)


def parse_export(output: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines (``blkid -o export``, ``mdadm --export``)."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def probe(device: str) -> dict[str, str]:
    """What is on ``device`` according to its superblocks (no cache); empty if nothing."""
    try:
        result = run(["blkid", "--probe", "--output", "export", device], timeout=30)
    except CommandError as exc:
        if exc.returncode == 2:  # nothing found
            return {}
        raise
    return parse_export(result.stdout)


def size(device: str) -> int:
    return int(run(["blockdev", "--getsize64", device]).stdout.strip())


def wipe(device: str) -> None:
    """Erase every filesystem, RAID and partition-table signature on ``device``; never on a
    device the kernel holds (mounted, a member of a mounted filesystem or array)."""
    if busy(device):
        raise CommandError(
            ["wipefs", device], 16, "", f"{device} is in use (mounted or held by the kernel)"
        )
    run(["wipefs", "--all", "--force", device])


def device_number(path: str) -> int | None:
    """The device number (``st_rdev``) of block device ``path``, or None if it is not one.
    Devices are compared by this number, never by path strings: ``/dev/./loop1``,
    ``/dev//loop1`` and a ``/dev/disk/by-id`` link all name the same device."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else None


def busy(path: str) -> bool:
    """Whether the kernel holds ``path``: mounted, a member of a mounted btrfs filesystem or
    an md array, or otherwise claimed. Opening a block device with ``O_EXCL`` fails with
    EBUSY then, whatever path names it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        return exc.errno == errno.EBUSY
    os.close(fd)
    return False


def mounted_btrfs_members(sys_root: str = "/sys/fs/btrfs") -> dict[int, str]:
    """Device numbers of the members of every mounted btrfs filesystem -> its fsid."""
    members: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for fs in os.scandir(sys_root):
            devices = os.path.join(fs.path, "devices")
            if not os.path.isdir(devices):
                continue
            for dev in os.scandir(devices):
                with contextlib.suppress(OSError, ValueError):
                    text = Path(dev.path, "dev").read_text()
                    major, minor = text.strip().split(":")
                    members[os.makedev(int(major), int(minor))] = fs.name
    return members
