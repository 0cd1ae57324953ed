"""A raid1 pool loses a disk: after a restart it mounts degraded, every file reads back, the
event is logged, and replacing the disk makes it whole again."""

from __future__ import annotations

import subprocess

import pytest

from scenario_data import build_world, check_world, pull_disk, sha256
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
    target = f"{world['share_path']}/written-while-degraded.bin"
    subprocess.run(["sh", "-c", f"head -c 2097152 /dev/urandom > {target}"], check=True)
    world["sums"][target] = sha256(target)

    # replace the missing disk: the pool is whole again
    assert daemon.api.post("/disks/virtual", json={"name": "d3", "size": "2G"}).status_code == 201
    job = daemon.api.post("/pools/tank/replace", json={"old": "d2", "new": "d3"})
    assert job.status_code == 202, job.text
    done = daemon.wait_job(job.json())
    assert done["state"] == "succeeded", done["error"]
    pool = check_world(daemon, world, health="ok")
    assert {d["disk"]: d["state"] for d in pool["disks"]} == {"d1": "online", "d3": "online"}
    events = daemon.api.get("/events", params={"kind": "pool.ok"}).json()
    assert any(e["subject"] == "tank" for e in events)
