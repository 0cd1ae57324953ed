"""Disks that must not go into a pool are refused, with the reason, and nothing is touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system


def loop_device(daemon: Daemon, name: str, size: str) -> str:
    """A loop device of our own; remove_traces detaches it because its file is in the base."""
    path = daemon.base / f"{name}.img"
    subprocess.run(["truncate", "-s", size, str(path)], check=True)
    return subprocess.run(
        ["losetup", "--find", "--show", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def refused(daemon: Daemon, body: dict[str, object]) -> dict[str, object]:
    r = daemon.api.post("/pools", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = r.json()
    return problem


def test_unusable_disks_are_refused(daemon: Daemon) -> None:
    small = loop_device(daemon, "small", "200M")
    problem = refused(daemon, {"name": "pool1", "profile": "single", "disks": [small]})
    assert problem["errors"] == [
        {"field": "disks", "reason": f"disk '{small}' is too small (200.0M; at least 1G)"}
    ]

    with_fs = loop_device(daemon, "withfs", "1G")
    subprocess.run(["mkfs.ext4", "-q", with_fs], check=True)
    problem = refused(daemon, {"name": "pool1", "profile": "single", "disks": [with_fs]})
    assert "holds a ext4 filesystem" in str(problem["detail"])
    probe = ["blkid", "-p", "-o", "value", "-s", "TYPE", with_fs]
    assert subprocess.run(probe, capture_output=True, text=True, check=False).stdout == "ext4\n"

    mounted = loop_device(daemon, "mounted", "1G")
    subprocess.run(["mkfs.ext4", "-q", mounted], check=True)
    target = daemon.base / "busy"
    target.mkdir()
    subprocess.run(["mount", mounted, str(target)], check=True)
    problem = refused(daemon, {"name": "pool1", "profile": "single", "disks": [mounted]})
    assert f"mounted:{target}" in str(problem["detail"])

    problem = refused(daemon, {"name": "pool1", "profile": "single", "disks": ["/dev/nonexistent"]})
    assert "does not exist" in str(problem["detail"])

    # every problem of a request at once
    problem = refused(daemon, {"name": "P", "profile": "raid1", "disks": [small, small]})
    fields = sorted(str(e["field"]) for e in problem["errors"])  # type: ignore[attr-defined]
    assert fields[0] == "disks" and "name" in fields
    assert daemon.api.get("/pools").json() == []

    # --force wipes a disk with an old filesystem
    job = daemon.api.post(
        "/pools", json={"name": "pool1", "profile": "single", "disks": [with_fs], "force": True}
    )
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    assert daemon.api.get("/pools/pool1").json()["health"] == "ok"
    assert daemon.api.delete("/pools/pool1").status_code == 204
    assert not Path(daemon.mount_root / "pool1").exists()


def test_raid5_says_what_it_needs(daemon: Daemon) -> None:
    for name in ("r1", "r2", "r3"):
        assert (
            daemon.api.post("/disks/virtual", json={"name": name, "size": "1G"}).status_code == 201
        )
    r = daemon.api.post(
        "/pools", json={"name": "parity", "profile": "raid5", "disks": ["r1", "r2", "r3"]}
    )
    if Path("/proc/mdstat").exists():
        assert r.status_code == 202, r.text
        assert daemon.wait_job(r.json())["state"] == "succeeded"
        assert daemon.api.get("/pools/parity").json()["health"] == "ok"
        assert daemon.api.delete("/pools/parity").status_code == 204
    else:
        assert r.status_code == 422
        assert r.json()["errors"] == [
            {
                "field": "profile",
                "reason": "raid5 needs Linux md RAID, "
                "which this kernel does not provide (no /proc/mdstat)",
            }
        ]
    for name in ("r1", "r2", "r3"):
        assert daemon.api.delete(f"/disks/virtual/{name}").status_code == 204
