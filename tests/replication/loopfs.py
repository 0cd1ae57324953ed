"""Throw-away btrfs filesystems on loop devices, for the replication engine's tests and bench:
no daemon, no pool rows, only what ``btrfs send`` and ``btrfs receive`` need."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from speicher.system import loop

GiB = 1024 * 1024 * 1024


@contextlib.contextmanager
def filesystem(base: Path, name: str, size: int = GiB) -> Iterator[Path]:
    """A btrfs of ``size`` bytes mounted at ``base/name`` (its image beside it); unmounted and
    detached afterwards, also when the test fails."""
    image, mount = base / f"{name}.img", base / name
    with image.open("wb") as fh:
        fh.truncate(size)
    device = loop.attach(image)
    try:
        subprocess.run(["mkfs.btrfs", "-q", "-f", device], check=True, capture_output=True)
        mount.mkdir()
        subprocess.run(["mount", device, str(mount)], check=True, capture_output=True)
        try:
            yield mount
        finally:
            subprocess.run(["umount", str(mount)], check=True, capture_output=True)
    finally:
        loop.detach(device)
