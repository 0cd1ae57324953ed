"""A backup cut off by ``kill -9`` of the daemon (docs/backup.md, "A run"): restic dies with
it (no restic left holding the repository's lock), the next start removes the run's snapshot,
the job is failed, and the next run completes; restic's own check finds the repository whole."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from speicher_testing import Daemon
from world import make_pool, make_share

pytestmark = pytest.mark.system

MiB = 1024 * 1024


def restic_processes() -> list[str]:
    """restic backups of this test's share (other modules' have other shares)."""
    found = subprocess.run(["pgrep", "-af", "restic"], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if "share:media" in line]


def test_killed_mid_backup(fresh_daemon: Daemon) -> None:
    daemon = fresh_daemon
    daemon.use_token()
    make_pool(daemon, "4G")
    share = make_share(daemon, "media", {})
    for i in range(24):  # 1.2 GiB that restic must encrypt: a few seconds here
        with (share / f"clip-{i:02d}.bin").open("wb") as fh:
            for _ in range(5):
                fh.write(os.urandom(10 * MiB + 4097))
    repo = daemon.base / "usb" / "repo"
    repo.parent.mkdir()
    r = daemon.api.post("/backup/targets", json={"name": "usb", "kind": "local", "path": str(repo)})
    assert r.status_code == 201, r.text
    password = r.json()["password"]
    r = daemon.api.post(
        "/backup/tasks",
        json={"share": "media", "target": "usb", "schedule": "0 1 * * *", "check_days": 0},
    )
    task = r.json()["id"]
    job = daemon.api.post(f"/backup/tasks/{task}/run").json()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = daemon.api.get(f"/jobs/{job['id']}").json()
        if job["bytes_done"] or job["state"] != "running":
            break
        time.sleep(0.05)
    assert job["state"] == "running" and job["bytes_done"], job  # mid-stream
    frozen = daemon.mount_root / "tank" / ".backup" / str(task) / "media"
    assert frozen.is_dir()
    daemon.kill9()
    deadline = time.monotonic() + 10
    while restic_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert restic_processes() == []  # it died with the daemon

    daemon.start()
    deadline = time.monotonic() + 30
    while frozen.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not frozen.exists()  # the start removed the run's snapshot
    assert daemon.api.get(f"/jobs/{job['id']}").json()["state"] == "failed"
    r = daemon.api.post(f"/backup/tasks/{task}/run")
    assert r.status_code == 202, r.text
    done = daemon.wait_job(r.json())
    assert done["state"] == "succeeded", done
    assert "backed up 24 files" in done["message"]
    env = {"PATH": "/usr/bin:/bin", "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": password,
           "RESTIC_CACHE_DIR": str(daemon.base / "cache")}  # fmt: skip
    checked = subprocess.run(
        ["restic", "check"], env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no errors were found" in checked.stdout
