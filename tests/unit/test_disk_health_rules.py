"""DiskHealthService's decisions with the machine faked: SMART verdicts and error counters go
in, failing disks, events and the pool hook come out. (The real thing, with a disk whose
I/O fails, is tests/protection/test_disk_failing.py.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from speicher.config import Settings
from speicher.db import Database
from speicher.events import EventService
from speicher.hooks import Hooks
from speicher.jobs import JobService
from speicher.protection.health import DiskHealthService
from speicher.storage import DiskService, PoolService
from speicher.storage.models import PoolDiskInfo, PoolInfo
from speicher.system import btrfs, smart

T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ZERO = {
    "write_io_errs": 0,
    "read_io_errs": 0,
    "flush_io_errs": 0,
    "corruption_errs": 0,
    "generation_errs": 0,
}


@dataclass
class Machine:
    disks: dict[str, str] = field(default_factory=lambda: {"sda": "/dev/sda", "v1": "/dev/loop1"})
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    verdicts: dict[str, smart.SmartHealth] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def pool(self) -> PoolInfo:
        return PoolInfo(
            name="tank",
            uuid="u",
            profile="raid1",
            state="ready",
            health="ok",
            mountpoint="/srv/tank",
            size=0,
            used=0,
            free=0,
            disks=[
                PoolDiskInfo(disk=n, device=d, devid=i, size=0, used=0, state="online")
                for i, (n, d) in enumerate(self.disks.items(), 1)
            ],
            shares=[],
            created_at=T,
        )

    def smart_health(self, device: str) -> smart.SmartHealth:
        self.asked.append(device)
        return self.verdicts.get(device, smart.SmartHealth("passed", "PASSED"))


@dataclass
class World:
    machine: Machine
    events: EventService
    pools: PoolService
    health: DiskHealthService


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    db.migrate()
    settings = Settings(state_dir=tmp_path, mount_root=tmp_path / "mnt")
    events = EventService(db)
    jobs = JobService(db)
    disks = DiskService(settings, db, events)
    pools = PoolService(settings, db, events, jobs, disks, Hooks())
    machine = Machine()
    machine.stats = {d: dict(ZERO) for d in machine.disks.values()}
    monkeypatch.setattr(pools, "list", lambda: [machine.pool()])
    monkeypatch.setattr(pools, "check_health", machine.checked.append)
    monkeypatch.setattr(btrfs, "device_stats", lambda _mnt: machine.stats)
    monkeypatch.setattr(smart, "health", machine.smart_health)
    monkeypatch.setattr(smart, "available", lambda: True)
    health = DiskHealthService(settings, db, events, pools, disks)
    try:
        yield World(machine, events, pools, health)
    finally:
        db.close()


def states(world: World) -> dict[str, tuple[str, str]]:
    return {d.disk: (d.state, d.smart) for d in world.health.report()}


def test_smart_is_asked_for_physical_disks_only_and_not_too_often(world: World) -> None:
    world.health.collect(T)
    world.health.collect(T + dt.timedelta(minutes=5))
    assert world.machine.asked == ["/dev/sda"]
    world.health.collect(T + dt.timedelta(minutes=31))
    assert world.machine.asked == ["/dev/sda", "/dev/sda"]
    assert states(world) == {"sda": ("ok", "passed"), "v1": ("ok", "unsupported")}


def test_a_smart_failure_stays_until_the_disk_leaves_the_pool(world: World) -> None:
    world.health.collect(T)
    world.machine.verdicts["/dev/sda"] = smart.SmartHealth("failed", "FAILED!")
    world.health.collect(T + dt.timedelta(hours=1))
    assert states(world)["sda"] == ("failing", "failed")
    assert world.pools._disk_problems["tank"]["sda"].startswith("SMART health check failed")
    assert world.machine.checked == ["tank"]
    failing = world.events.list(kind="disk.failing")
    assert [(e.subject, e.level) for e in failing] == [("sda", "error")]
    # asleep later (no verdict): still failing, and no second event
    world.machine.verdicts["/dev/sda"] = smart.SmartHealth("unknown", "STANDBY")
    world.health.collect(T + dt.timedelta(hours=2))
    assert states(world)["sda"] == ("failing", "failed")
    assert len(world.events.list(kind="disk.failing")) == 1
    # replaced: the problem goes with the disk
    world.machine.disks = {"sdb": "/dev/sdb", "v1": "/dev/loop1"}
    world.machine.stats["/dev/sdb"] = dict(ZERO)
    world.health.collect(T + dt.timedelta(hours=3))
    assert "sda" not in world.pools._disk_problems["tank"]
    assert set(states(world)) == {"sdb", "v1"}


def test_checksum_errors_are_told_but_do_not_fail_a_disk(world: World) -> None:
    world.health.collect(T)
    world.machine.stats["/dev/loop1"]["corruption_errs"] = 3
    world.health.collect(T + dt.timedelta(minutes=1))
    assert states(world)["v1"] == ("errors", "unsupported")
    assert world.pools._disk_problems.get("tank", {}) == {}
    told = world.events.list(kind="disk.errors")
    assert [(e.subject, e.level) for e in told] == [("v1", "warning")]
    assert "corruption_errs +3 (now 3)" in told[0].message
    world.health.collect(T + dt.timedelta(minutes=2))
    assert len(world.events.list(kind="disk.errors")) == 1  # told once per growth


def test_io_errors_fail_a_disk_for_a_day(world: World) -> None:
    world.machine.stats["/dev/loop1"]["read_io_errs"] = 5  # from before: the baseline
    world.health.collect(T)
    assert states(world)["v1"] == ("errors", "unsupported")
    world.machine.stats["/dev/loop1"]["write_io_errs"] = 2
    world.health.collect(T + dt.timedelta(minutes=1))
    assert states(world)["v1"] == ("failing", "unsupported")
    assert "v1" in world.pools._disk_problems["tank"]
    world.health.collect(T + dt.timedelta(hours=24, minutes=2))
    assert states(world)["v1"] == ("errors", "unsupported")
    assert "v1" not in world.pools._disk_problems["tank"]
    assert world.machine.checked == ["tank", "tank"]
