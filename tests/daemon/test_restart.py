"""Restart the daemon, kill -9 it, or take the machine's mounts and loop devices away as a
reboot does: every pool, share, grant, account and file comes back."""

from __future__ import annotations

import subprocess

import pytest

from scenario_data import build_world, check_world
from speicher_testing import Daemon

pytestmark = pytest.mark.system


def simulate_reboot(daemon: Daemon) -> None:
    """What a power cut leaves: no mounts, no loop devices, the daemon gone without a word."""
    daemon.kill9()
    mounts = subprocess.run(
        ["findmnt", "--list", "--noheadings", "--output", "TARGET"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for target in sorted(
        (m for m in mounts if m.startswith(str(daemon.base))), key=len, reverse=True
    ):
        subprocess.run(["umount", target], check=True)
    loops = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for line in loops:
        name, _, backing = line.partition(" ")
        if backing.strip().startswith(str(daemon.base)):
            subprocess.run(["losetup", "--detach", name], check=True)


def test_restart_kill9_and_reboot_bring_everything_back(fresh_daemon: Daemon) -> None:
    daemon = fresh_daemon
    world = build_world(daemon)
    uuid = daemon.api.get("/pools/tank").json()["uuid"]

    daemon.stop()
    daemon.start()
    check_world(daemon, world)

    daemon.kill9()
    daemon.start()
    check_world(daemon, world)

    simulate_reboot(daemon)
    daemon.start()
    pool = check_world(daemon, world)
    assert pool["uuid"] == uuid
    assert [d["state"] for d in pool["disks"]] == ["online", "online"]
    disks = {d["name"]: d for d in daemon.api.get("/disks").json()}
    assert disks["d1"]["device"].startswith("/dev/loop") and disks["d1"]["used_by"] == "pool:tank"

    # the users can still log in with their passwords after all this
    r = daemon.api.get("/system", auth=("erin", "erin-password-1"))
    assert r.status_code == 403  # a valid login, but not an admin
    events = [e["kind"] for e in daemon.api.get("/events", params={"limit": 500}).json()]
    assert events.count("daemon.start") == 4


def test_a_job_interrupted_by_kill9_is_marked_failed(fresh_daemon: Daemon) -> None:
    daemon = fresh_daemon
    for name in ("d1", "d2"):
        assert (
            daemon.api.post("/disks/virtual", json={"name": name, "size": "2G"}).status_code == 201
        )
    job = daemon.api.post(
        "/pools", json={"name": "tank", "profile": "raid1", "disks": ["d1", "d2"]}
    )
    daemon.kill9()  # at once: the job may be anywhere
    daemon.start()
    after = daemon.api.get(f"/jobs/{job.json()['id']}").json()
    pools = daemon.api.get("/pools").json()
    if after["state"] == "failed":
        # interrupted: the half-made pool is gone, nothing is mounted, the disks are free again
        assert "interrupted" in after["error"]
        assert pools == []
        disks = {d["name"]: d for d in daemon.api.get("/disks").json()}
        assert disks["d1"]["used_by"] == "" and disks["d2"]["used_by"] == ""
    else:  # it finished before the kill
        assert after["state"] == "succeeded"
        assert [p["name"] for p in pools] == ["tank"] and pools[0]["health"] == "ok"
