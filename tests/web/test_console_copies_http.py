"""The console's Replication and Backup pages over HTTPS as a browser sends their forms: two
daemons paired from their pages (the code shown once on the target's), a share replicated and
promoted; a backup target added (its password shown once), a share backed up and a file
restored from the page. Bad input comes back at its field, and nothing is made."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_console_access_http import admin_client, at_field, done, send, shown
from web_helpers import csrf_of

from conftest import _base
from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system

REPLICATION = "/console/replication/"
BACKUP = "/console/backup/"


@pytest.fixture(scope="module")
def target() -> Iterator[Daemon]:
    d = Daemon(_base())
    try:
        d.start()
        make_pool(d)
        make_user(d, "boss", admin=True)
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> Path:
    make_pool(daemon)
    make_user(daemon, "boss", admin=True)
    folder = make_share(daemon, "projects", {})
    for i in range(20):
        (folder / f"plan {i}.bin").write_bytes(os.urandom(1 + i * 5003))
    return folder


def wait_idle(daemon: Daemon, kind: str) -> dict[str, object]:
    """The newest job of ``kind``, once it has ended."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        jobs = [j for j in daemon.api.get("/jobs").json() if j["kind"] == kind]
        if jobs and jobs[0]["state"] != "running":
            return dict(jobs[0])
        time.sleep(0.3)
    raise AssertionError(f"no finished {kind} job")


def test_pair_replicate_and_promote_from_the_pages(
    daemon: Daemon, target: Daemon, world: Path
) -> None:
    there = admin_client(target)
    page = send(there, REPLICATION, action="accept", name="office-a", pool="tank")
    assert page.status_code == 200, page.text
    code = shown(page.text, "made-code").strip()
    assert "shown only now" in page.text
    assert code not in there.get(REPLICATION).text  # once

    here = admin_client(daemon)
    at_field(
        send(here, REPLICATION, action="target", name="site", url=target.https_url, code="X-Y"),
        "target-code",
        "is not a pairing code",
    )
    assert daemon.api.get("/replication/targets").json() == []
    done(
        send(here, REPLICATION, action="target", name="site", url=target.https_url, code=code),
        "repl-target",
    )
    at_field(
        send(here, REPLICATION, action="task", share="projects", target="site",
             schedule="every hour", keep_last="4", rpo_hours="2", compress="on"),
        "task-schedule",
        "cron expression",
    )  # fmt: skip
    assert daemon.api.get("/replication/tasks").json() == []
    done(
        send(here, REPLICATION, action="task", share="projects", target="site",
             schedule="0 * * * *", keep_last="4", rpo_hours="2", compress="on"),
        "repl-task",
    )  # fmt: skip
    task = daemon.api.get("/replication/tasks").json()[0]
    done(send(here, REPLICATION, action="task-run", task=str(task["id"])), "task-run")
    job = wait_idle(daemon, "replication.task")
    assert job["state"] == "succeeded", job
    page = here.get(REPLICATION)
    assert "no copy yet" not in page.text and "0 * * * *" in page.text
    done(send(here, REPLICATION, action="task-pause", task=str(task["id"])), "task-changed")
    assert daemon.api.get(f"/replication/tasks/{task['id']}").json()["enabled"] is False
    assert "paused" in here.get(REPLICATION).text

    page = there.get(REPLICATION)
    assert "office-a" in page.text and "paired" in page.text
    done(send(there, REPLICATION, action="promote", share="projects", name="projects"), "promoted")
    promoted = Path(target.api.get("/shares/projects").json()["path"])
    for p in world.glob("*.bin"):
        assert (
            hashlib.sha256((promoted / p.name).read_bytes()).digest()
            == hashlib.sha256(p.read_bytes()).digest()
        )
    page = send(there, REPLICATION, action="promote", share="nothing")
    assert page.status_code == 422 and "no replica of share &#39;nothing&#39;" in page.text
    for client in (here, there):
        client.close()


def test_backup_target_task_run_and_restore_from_the_page(daemon: Daemon, world: Path) -> None:
    client = admin_client(daemon)
    repo = daemon.base / "usb-stick" / "restic"
    at_field(
        post(client, action="target", name="usb", kind="local", path="relative/x"),
        "b-path",
        "/absolute/path",
    )
    assert daemon.api.get("/backup/targets").json() == []
    repo.parent.mkdir()
    page = post(client, action="target", name="usb", kind="local", path=str(repo))
    assert page.status_code == 200, page.text
    secret = shown(page.text, "made-password").strip()
    assert len(secret) >= 24 and "shown only now" in page.text
    assert secret not in client.get(BACKUP).text  # once
    assert (repo / "config").is_file()

    at_field(
        send(client, BACKUP, action="task", share="projects", target="usb", schedule="61 * * * *",
             keep_daily="7"),
        "bt-schedule",
        "cron expression",
    )  # fmt: skip
    done(
        send(client, BACKUP, action="task", share="projects", target="usb", schedule="0 1 * * *",
             keep_daily="7", keep_weekly="4", keep_monthly="12", alert_days="2"),
        "backup-task",
    )  # fmt: skip
    task = daemon.api.get("/backup/tasks").json()[0]
    assert (task["keep_daily"], task["keep_weekly"], task["keep_monthly"]) == (7, 4, 12)
    done(send(client, BACKUP, action="task-run", task=str(task["id"])), "task-run")
    job = wait_idle(daemon, "backup.task")
    assert job["state"] == "succeeded", job
    page = client.get(BACKUP, params={"task": task["id"]})
    assert "no backup yet" not in page.text and "20 files" in page.text
    backup = daemon.api.get(f"/backup/tasks/{task['id']}/snapshots").json()[0]
    assert backup["short_id"] in page.text

    r = client.post(
        f"{BACKUP}?task={task['id']}",
        data={"csrf": _csrf(client, task["id"]), "action": "restore", "task": str(task["id"]),
              "snapshot": backup["id"], "path": "plan 7.bin", "to": "projects/back.bin"},
    )  # fmt: skip
    done(r, "restore")
    job = wait_idle(daemon, "backup.restore")
    assert job["state"] == "succeeded", job
    assert (world / "back.bin").read_bytes() == (world / "plan 7.bin").read_bytes()
    r = client.post(
        f"{BACKUP}?task={task['id']}",
        data={"csrf": _csrf(client, task["id"]), "action": "restore", "task": str(task["id"]),
              "path": "../x", "to": "projects/y"},
    )  # fmt: skip
    at_field(r, "r-path", "must not contain")
    client.close()


def post(client: httpx.Client, **form: str) -> httpx.Response:
    """A form of the Backup page (``send`` takes ``path`` for the page's own)."""
    return client.post(BACKUP, data={"csrf": csrf_of(client, BACKUP), **form})


def _csrf(client: httpx.Client, task: int) -> str:
    page = client.get(BACKUP, params={"task": task})
    return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
