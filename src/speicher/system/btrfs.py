"""btrfs filesystems: ``mkfs.btrfs`` and the ``btrfs`` tool."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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
    device_size: int
    device_missing: int
    used: int
    free: int
    data_ratio: float
    data_profile: str
    metadata_profile: str


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
    return Usage(
        device_size=int(number("Device size")),
        device_missing=int(number("Device missing")),
        used=int(number("Used")),
        free=int(number("Free (estimated)")),
        data_ratio=float(number("Data ratio")),
        data_profile=data.group(1).lower() if data else "",
        metadata_profile=meta.group(1).lower() if meta else "",
    )


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


def is_subvolume(path: Path) -> bool:
    return run(["btrfs", "subvolume", "show", str(path)], check=False).returncode == 0


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
