"""Linux md RAID (``mdadm``), used under btrfs for RAID 5 and 6."""

from __future__ import annotations

from pathlib import Path

from speicher.system.blockdev import parse_export
from speicher.system.run import CommandError, run


def available() -> bool:
    """Whether this kernel has the md driver."""
    return Path("/proc/mdstat").exists()


def device_path(name: str) -> str:
    return f"/dev/md/{name}"


def create(name: str, level: int, devices: list[str]) -> str:
    """Create array ``name`` over ``devices``; return its path. The resync runs in the kernel."""
    run(
        [
            "mdadm",
            "--create",
            device_path(name),
            "--run",
            "--metadata=1.2",
            f"--level={level}",
            f"--raid-devices={len(devices)}",
            "--homehost=any",
            f"--name={name}",
            "--bitmap=internal",
            *devices,
        ],
        timeout=600,
    )
    return device_path(name)


def examine(device: str) -> dict[str, str]:
    """The md superblock of a member device (``MD_UUID``, ``MD_NAME``...), empty if none."""
    try:
        return parse_export(run(["mdadm", "--examine", "--export", device]).stdout)
    except CommandError:
        return {}


def detail(name: str) -> dict[str, str]:
    """State of a running array (``MD_DEGRADED``, ``MD_DEVICES``...)."""
    return parse_export(run(["mdadm", "--detail", "--export", device_path(name)]).stdout)


def assemble(name: str, uuid: str, devices: list[str]) -> str:
    """Assemble array ``name`` from the members found; start it degraded if some are missing."""
    run(["mdadm", "--assemble", device_path(name), f"--uuid={uuid}", "--run", *devices])
    return device_path(name)


def stop(name: str) -> None:
    run(["mdadm", "--stop", device_path(name)])


def add(name: str, device: str) -> None:
    run(["mdadm", "--manage", device_path(name), "--add", device])


def grow(name: str, raid_devices: int) -> None:
    run(["mdadm", "--grow", device_path(name), f"--raid-devices={raid_devices}"], timeout=600)


def replace(name: str, old: str, new: str) -> None:
    add(name, new)
    run(["mdadm", "--manage", device_path(name), "--replace", old, "--with", new])


def zero_superblock(device: str) -> None:
    run(["mdadm", "--zero-superblock", device], check=False)
