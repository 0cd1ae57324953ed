"""Building a small Speicher world through the API, and checking it is all still there."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from fsaccess import as_user
from speicher_testing import Daemon


def build_world(daemon: Daemon, disks: tuple[str, ...] = ("d1", "d2")) -> dict[str, Any]:
    """Two virtual disks in a raid1 pool, a share with quota and grants, users and a group,
    and files written by a user. Returns what was made, with the files' SHA-256 sums."""
    api = daemon.api
    for name in disks:
        assert api.post("/disks/virtual", json={"name": name, "size": "2G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": list(disks)})
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    share = api.post(
        "/shares", json={"name": "projects", "pool": "tank", "quota": "500M", "compression": "zstd"}
    )
    assert share.status_code == 201, share.text
    for user in ("erin", "frank"):
        r = api.post("/users", json={"name": user, "password": f"{user}-password-1"})
        assert r.status_code == 201, r.text
    assert api.post("/groups", json={"name": "team"}).status_code == 201
    assert api.put("/groups/team/members/frank").status_code == 200
    assert (
        api.post("/shares/projects/grants", json={"user": "erin", "access": "rw"}).status_code
        == 200
    )
    assert (
        api.post("/shares/projects/grants", json={"group": "team", "access": "ro"}).status_code
        == 200
    )
    path = share.json()["path"]
    sums = {}
    erin = daemon.unix_name("erin")
    for i, size in enumerate((4096, 1024 * 1024, 5 * 1024 * 1024)):
        target = f"{path}/file{i}.bin"
        wrote = as_user(erin, "sh", "-c", f"head -c {size} /dev/urandom > {target}")
        assert wrote.returncode == 0, wrote.stderr
        sums[target] = sha256(target)
    os.sync()
    return {"share_path": path, "sums": sums}


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_world(daemon: Daemon, world: dict[str, Any], health: str = "ok") -> dict[str, Any]:
    """Everything build_world made is back: pool, share settings, grants, accounts, files."""
    api = daemon.api
    pool: dict[str, Any] = api.get("/pools/tank").json()
    assert pool["state"] == "ready" and pool["health"] == health, pool
    assert os.path.ismount(pool["mountpoint"])
    share = api.get("/shares/projects").json()
    assert share["quota"] == 500 * 1024**2 and share["compression"] == "zstd"
    assert {(g["principal"], g["name"], g["access"]) for g in share["grants"]} == {
        ("user", "erin", "rw"),
        ("group", "team", "ro"),
    }
    assert api.get("/groups/team").json()["members"] == ["frank"]
    for target, digest in world["sums"].items():
        assert sha256(target) == digest, f"{target} changed"
    # the grants still hold in the filesystem, for the users' accounts
    frank = daemon.unix_name("frank")
    first = next(iter(world["sums"]))
    assert as_user(frank, "sh", "-c", f"cat {first} > /dev/null").returncode == 0
    assert as_user(frank, "sh", "-c", f"echo x > {world['share_path']}/frank.txt").returncode != 0
    return pool


def pull_disk(daemon: Daemon, name: str, pool: str = "tank") -> None:
    """Take a virtual disk away as if it had been pulled out of the machine: the daemon
    stops, the pool is unmounted, the loop device detached and the disk's file deleted."""
    disk = next(d for d in daemon.api.get("/disks").json() if d["name"] == name)
    daemon.stop()
    # smbd's children may still hold the pool for a moment after the daemon is gone
    deadline = time.monotonic() + 30
    while subprocess.run(["umount", str(daemon.mount_root / pool)], check=False).returncode:
        assert time.monotonic() < deadline, f"{pool} stays busy after the daemon stopped"
        time.sleep(0.5)
    subprocess.run(["losetup", "--detach", disk["device"]], check=True)
    Path(disk["backing_file"]).unlink()
    hold_device_number(daemon, disk["device"])


def hold_device_number(daemon: Daemon, device: str) -> None:
    """Bind a detached loop device again, to an empty file of this test, so that no test
    running beside this one gets its number while this pool is mounted without the disk.
    Linux (6.7 and later, for btrfs's temp-fsid) takes a new single-disk filesystem on a
    device whose number a mounted filesystem still holds for a missing disk to be part of
    that filesystem, and refuses to mount it ("already mounted or mount point busy"). The
    test's cleanup detaches it (its file is in the test's folder). Another test may take
    the number in the moment between: then it is left to that one."""
    placeholder = daemon.base / f"held-{Path(device).name}.img"
    with placeholder.open("wb") as f:
        f.truncate(1 << 20)
    subprocess.run(["losetup", device, str(placeholder)], check=False, capture_output=True)


def write_while_degraded(world: dict[str, Any]) -> None:
    """A degraded pool still takes new data; it is added to the files check_world checks."""
    target = f"{world['share_path']}/written-while-degraded.bin"
    subprocess.run(["sh", "-c", f"head -c 2097152 /dev/urandom > {target}"], check=True)
    world["sums"][target] = sha256(target)


def replace_missing_disk(daemon: Daemon, world: dict[str, Any]) -> dict[str, Any]:
    """Replace the pulled d2 of build_world's pool with a new d3; the pool is whole again."""
    assert daemon.api.post("/disks/virtual", json={"name": "d3", "size": "2G"}).status_code == 201
    job = daemon.api.post("/pools/tank/replace", json={"old": "d2", "new": "d3"})
    assert job.status_code == 202, job.text
    done = daemon.wait_job(job.json())
    assert done["state"] == "succeeded", done["error"]
    pool = check_world(daemon, world, health="ok")
    assert {d["disk"]: d["state"] for d in pool["disks"]} == {"d1": "online", "d3": "online"}
    return pool
