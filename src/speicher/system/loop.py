"""Loop devices (``losetup``): virtual disks are sparse files attached to them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from speicher.system.run import CommandError, run


@dataclass(frozen=True)
class LoopDevice:
    device: str
    backing_file: str


def parse_list(output: str) -> list[LoopDevice]:
    """Parse ``losetup --list --json --output NAME,BACK-FILE``."""
    if not output.strip():
        return []
    data = json.loads(output)
    return [
        LoopDevice(item["name"], (item.get("back-file") or "").removesuffix(" (deleted)"))
        for item in data.get("loopdevices", [])
    ]


def list_devices() -> list[LoopDevice]:
    return parse_list(run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"]).stdout)


def find(backing_file: Path) -> str | None:
    """The loop device that backs ``backing_file``, if one does."""
    target = str(backing_file)
    for dev in list_devices():
        if dev.backing_file == target:
            return dev.device
    return None


def attach(backing_file: Path) -> str:
    """Attach ``backing_file`` to a free loop device and return the device path."""
    last: CommandError | None = None
    for attempt in range(5):  # another process may take the same free device between find and set
        try:
            return run(["losetup", "--find", "--show", str(backing_file)]).stdout.strip()
        except CommandError as exc:
            last = exc
            time.sleep(0.2 * (attempt + 1))
    assert last is not None
    raise last


def detach(device: str) -> None:
    run(["losetup", "--detach", device])
