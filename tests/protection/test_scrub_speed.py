"""A scrub speed limit (``scrub_speed_limit_mib``) reaches the kernel for every disk of the
pool; without one, the kernel's own value (an admin's, in sysfs) is left alone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import _base
from speicher_testing import Daemon

pytestmark = pytest.mark.system


@pytest.fixture
def limited() -> Iterator[Daemon]:
    d = Daemon(_base())
    d.env["SPEICHER_SCRUB_SPEED_LIMIT_MIB"] = "3"
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


def limits(uuid: str) -> dict[str, int]:
    base = Path("/sys/fs/btrfs") / uuid / "devinfo"
    return {p.name: int((p / "scrub_speed_max").read_text()) for p in base.iterdir()}


def test_the_limit_is_set_on_every_disk_and_only_then(limited: Daemon) -> None:
    daemon = limited
    for name in ("s1", "s2"):
        assert (
            daemon.api.post("/disks/virtual", json={"name": name, "size": "1G"}).status_code == 201
        )
    job = daemon.api.post(
        "/pools", json={"name": "slow", "profile": "raid1", "disks": ["s1", "s2"]}
    )
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    uuid = daemon.api.get("/pools/slow").json()["uuid"]
    assert set(limits(uuid).values()) == {0}  # nothing set before the first scrub
    assert daemon.api.post("/shares", json={"name": "data", "pool": "slow"}).status_code == 201
    with (daemon.mount_root / "slow" / "data" / "f.bin").open("wb") as fh:
        fh.write(os.urandom(5 * 1024 * 1024 + 17))
    os.sync()

    job = daemon.api.post("/pools/slow/scrub")
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    assert limits(uuid) == {"1": 3 * 1024 * 1024, "2": 3 * 1024 * 1024}

    daemon.stop()
    daemon.env["SPEICHER_SCRUB_SPEED_LIMIT_MIB"] = "0"
    daemon.start()
    by_hand = Path("/sys/fs/btrfs") / uuid / "devinfo" / "1" / "scrub_speed_max"
    by_hand.write_text(str(50 * 1024 * 1024))
    job = daemon.api.post("/pools/slow/scrub")
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    assert limits(uuid)["1"] == 50 * 1024 * 1024
