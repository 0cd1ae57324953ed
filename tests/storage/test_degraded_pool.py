"""A raid1 pool loses a disk: after a restart it mounts degraded, every file reads back, the
event is logged, and replacing the disk makes it whole again."""

from __future__ import annotations

import pytest

from scenario_data import (
    build_world,
    check_world,
    pull_disk,
    replace_missing_disk,
    write_while_degraded,
)
from speicher_testing import Daemon

pytestmark = pytest.mark.system


def test_pool_mounts_degraded_keeps_data_and_recovers(fresh_daemon: Daemon) -> None:
    daemon = fresh_daemon
    world = build_world(daemon, disks=("d1", "d2"))
    pull_disk(daemon, "d2")
    daemon.start()

    pool = check_world(daemon, world, health="degraded")
    states = {d["disk"]: d["state"] for d in pool["disks"]}
    assert states == {"d1": "online", "d2": "missing"}
    assert "degraded" in daemon.cli("pool", "show", "tank").stdout
    events = daemon.api.get("/events", params={"kind": "pool."}).json()
    assert any(e["kind"] == "pool.degraded" and e["subject"] == "tank" for e in events)
    disk_events = daemon.api.get("/events", params={"kind": "disk.missing"}).json()
    assert [e["subject"] for e in disk_events] == ["d2"]
    assert "pool.degraded" in daemon.log()

    # still writable while degraded
    write_while_degraded(world)

    # replace the missing disk: the pool is whole again
    replace_missing_disk(daemon, world)
    events = daemon.api.get("/events", params={"kind": "pool.ok"}).json()
    assert any(e["subject"] == "tank" for e in events)
