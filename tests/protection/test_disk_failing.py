"""A disk that fails: the health monitor sees its btrfs I/O error counters grow, calls the
disk failing and the pool degraded, and says so; the data is still served from the other copy.

The failing disk is a loop device (given to the pool by its path, like a physical disk)
over a file on a small ext4 filesystem. Shutting that ext4 down (``EXT4_IOC_SHUTDOWN``, as
``xfs_io -c shutdown`` does for XFS) makes every read and write of the file fail with EIO,
so the pool's I/O to that disk fails while the raid1 pool carries on on its other disk.
(Device-mapper's dm-error would be the classic tool; this kernel has no device-mapper. A
full tmpfs is no substitute: btrfs does not count ENOSPC of a loop device as an I/O error.)
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system


def wait_for(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def run(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout.strip()


def shut_down(mountpoint: Path) -> None:
    """From now on every read and write on this ext4 filesystem fails with EIO."""
    fd = os.open(mountpoint, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


@pytest.fixture
def flaky_disk(daemon: Daemon) -> Iterator[tuple[str, Path]]:
    """A loop device over a file on an ext4 filesystem that can be shut down."""
    image = daemon.base / "ext4.img"
    run("truncate", "-s", "1200M", str(image))
    run("mkfs.ext4", "-q", "-F", str(image))
    mountpoint = daemon.base / "flaky"
    mountpoint.mkdir()
    run("mount", "-o", "loop", str(image), str(mountpoint))
    backing = mountpoint / "flaky.img"
    run("truncate", "-s", "1G", str(backing))
    device = run("losetup", "--find", "--show", str(backing))
    try:
        yield device, mountpoint
    finally:
        # detach now (or, if the pool still holds it, as soon as the daemon's cleanup
        # unmounts the pool): once its filesystem is gone the daemon's cleanup cannot find
        # it by its backing file's path
        subprocess.run(["losetup", "--detach", device], check=False)
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)


def test_io_errors_make_a_disk_failing_and_the_pool_degraded(
    daemon: Daemon, flaky_disk: tuple[str, Path]
) -> None:
    api = daemon.api
    flaky, ext4 = flaky_disk

    assert api.post("/disks/virtual", json={"name": "g1", "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "frail", "profile": "raid1", "disks": ["g1", flaky]})
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    share = api.post("/shares", json={"name": "fragile", "pool": "frail"})
    assert share.status_code == 201, share.text
    health = {d["disk"]: d for d in api.get("/disks/health").json() if d["pool"] == "frail"}
    assert {d["state"] for d in health.values()} == {"ok"}, health
    assert health[flaky]["smart"] == "unsupported"  # a loop device, even named by its path

    # the disk fails: from here on its reads and writes fail; the pool's succeed
    shut_down(ext4)
    target = Path(share.json()["path"]) / "big.bin"
    data = os.urandom(32 * 1024 * 1024)
    target.write_bytes(data)
    os.sync()

    def failing() -> dict[str, Any] | None:
        disks = {d["disk"]: d for d in api.get("/disks/health").json() if d["pool"] == "frail"}
        return disks if disks[flaky]["state"] == "failing" else None

    disks = wait_for(failing)
    assert disks, api.get("/disks/health").json()
    assert disks[flaky]["counters"]["write_io_errs"] > 0
    assert "I/O errors" in disks[flaky]["problem"]
    assert disks["g1"]["state"] == "ok"
    assert api.get("/pools/frail").json()["health"] == "degraded"
    events = api.get("/events", params={"kind": "disk."}).json()
    assert any(e["kind"] == "disk.failing" and e["level"] == "error" for e in events), events
    assert any(e["kind"] == "disk.errors" and e["subject"] == flaky for e in events)
    pool_events = api.get("/events", params={"kind": "pool.degraded"}).json()
    assert any(e["subject"] == "frail" for e in pool_events)
    assert "failing" in daemon.cli("disk", "health").stdout

    # the pool still serves the data, from the good copy
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    assert target.read_bytes() == data

    # replacing the failing disk (its superblock no longer reads) makes the pool whole again
    assert api.post("/disks/virtual", json={"name": "g3", "size": "1G"}).status_code == 201
    job = api.post("/pools/frail/replace", json={"old": flaky, "new": "g3"})
    assert job.status_code == 202, job.text
    done = daemon.wait_job(job.json())
    assert done["state"] == "succeeded", done["error"]
    pool = api.get("/pools/frail").json()
    assert pool["health"] == "ok", pool
    assert sorted(d["disk"] for d in pool["disks"]) == ["g1", "g3"]
    assert target.read_bytes() == data
