"""Pools say what the machine says: a disk of a pool is refused however its path is written,
and a pool that lost more disks than its profile tolerates says so, with its shares."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system


def _probe(device: str) -> str:
    return subprocess.run(
        ["blkid", "--probe", "-o", "value", "-s", "TYPE", device],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def test_a_pool_member_is_refused_by_any_name_even_with_force(fresh_daemon: Daemon) -> None:
    api = fresh_daemon.api
    for name in ("c1", "c2", "c3"):
        assert api.post("/disks/virtual", json={"name": name, "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": ["c1", "c2"]})
    assert fresh_daemon.wait_job(job.json())["state"] == "succeeded"
    member = next(d for d in api.get("/disks").json() if d["name"] == "c2")["device"]
    loop = Path(member).name
    for spelling in (member, f"/dev/./{loop}", f"/dev//{loop}", f"/dev/../dev/{loop}"):
        body = {"name": "other", "profile": "single", "disks": [spelling], "force": True}
        r = api.post("/pools", json=body)
        assert r.status_code == 422, (spelling, r.text)
        assert "already used by pool 'tank'" in r.json()["errors"][0]["reason"], r.text
        r = api.post("/pools/tank/disks", json={"disk": spelling, "force": True})
        assert r.status_code == 422, (spelling, r.text)
    assert _probe(member) == "btrfs"  # never wiped
    assert api.get("/pools/tank").json()["health"] == "ok"
    assert [p["name"] for p in api.get("/pools").json()] == ["tank"]


def test_a_pool_missing_too_many_disks_says_so(fresh_daemon: Daemon) -> None:
    api = fresh_daemon.api
    names = ["r1", "r2", "r3", "r4"]
    for name in names:
        assert api.post("/disks/virtual", json={"name": name, "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "raid10", "disks": names})
    assert fresh_daemon.wait_job(job.json())["state"] == "succeeded", job.json()
    r = api.post("/shares", json={"name": "docs", "pool": "tank", "smb": {"enabled": True}})
    assert r.status_code == 201, r.text
    assert api.post("/users", json={"name": "ann", "password": "ann-password-1"}).status_code == 201
    assert api.post("/shares/docs/grants", json={"user": "ann", "access": "rw"}).status_code == 200
    disks = {d["name"]: d for d in api.get("/disks").json()}
    fresh_daemon.stop()
    subprocess.run(["umount", str(fresh_daemon.mount_root / "tank")], check=True)
    for name in ("r3", "r4"):
        subprocess.run(["losetup", "--detach", disks[name]["device"]], check=True)
        Path(disks[name]["backing_file"]).unlink()
    fresh_daemon.start()

    pool = api.get("/pools/tank").json()
    assert pool["health"] == "unavailable"
    assert "2 of its 4 disks are missing (r3, r4)" in pool["problem"], pool
    assert "raid10 keeps all data with at most 1 missing disk" in pool["problem"], pool
    share = api.get("/shares/docs").json()
    assert share["state"] == "unavailable" and "pool tank is not mounted" in share["problem"]
    assert "[docs]" not in api.get("/smb/config").text  # never the empty mount folder
    events = api.get("/events", params={"kind": "pool.unavailable"}).json()
    assert any("2 of its 4 disks are missing" in e["message"] for e in events)
    assert "2 of its 4 disks are missing" in fresh_daemon.cli("pool", "show", "tank").stdout
