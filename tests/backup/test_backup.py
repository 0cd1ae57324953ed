"""Offsite backup with Debian's restic (docs/backup.md), against a running daemon: a
repository on a local path and one in a bucket of the daemon's own S3 endpoint; backup,
change, backup; restore one file and the whole share byte for byte; the retention over a
history of injected dates; a wrong password refused; failures and age alerts; no snapshot left
after a run. restic itself, run by hand, checks what the daemon wrote."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pwd
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system


def tree(top: Path) -> dict[str, tuple[str, int, int]]:
    """Every file and folder under ``top``: its content's hash (files), owner and mode."""
    found = {}
    for p in sorted(top.rglob("*")):
        rel = str(p.relative_to(top))
        if rel.split("/", maxsplit=1)[0] == ".speicher":
            continue
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        found[rel] = (digest, st.st_uid, st.st_mode)
    return found


def fill(folder: Path, owner: int) -> None:
    """60 files of unaligned sizes in nested folders, some owned by a user."""
    for i in range(60):
        sub = folder / f"dept-{i % 4}" / f"year-{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"file {i}.bin"
        path.write_bytes(os.urandom(1 + i * 4099 + (i % 7) * 65_537))
        if i % 2:
            os.chown(path, owner, -1)
    (folder / "empty folder").mkdir(exist_ok=True)
    (folder / "Ärger & Co.txt").write_text("Umlaute bleiben\n")


def restic(repo: Path, password: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD": password,
        "RESTIC_CACHE_DIR": str(repo.parent / "restic-cache"),
        "TZ": "UTC",
    }
    return subprocess.run(
        ["restic", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def run_task(daemon: Daemon, task_id: int) -> dict[str, Any]:
    r = daemon.api.post(f"/backup/tasks/{task_id}/run")
    assert r.status_code == 202, r.text
    return daemon.wait_job(r.json())


def restore(daemon: Daemon, task_id: int, **body: str) -> dict[str, Any]:
    r = daemon.api.post(f"/backup/tasks/{task_id}/restore", json=body)
    assert r.status_code == 202, r.text
    return daemon.wait_job(r.json())


def leftovers(daemon: Daemon) -> list[Path]:
    """The runs' own snapshots of the share that are still there (none after a run)."""
    return list((daemon.mount_root / "tank" / ".backup").glob("*/*"))


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    docs = make_share(daemon, "docs", {"alice": "rw"})
    owner = pwd.getpwnam(daemon.unix_name("alice")).pw_uid
    fill(docs, owner)
    repo = daemon.base / "usb" / "restic"
    repo.parent.mkdir()
    return {"docs": docs, "owner": owner, "repo": repo}


def test_local_target_backup_change_restore(daemon: Daemon, world: dict[str, Any]) -> None:
    r = daemon.api.post(
        "/backup/targets", json={"name": "usb", "kind": "local", "path": str(world["repo"])}
    )
    assert r.status_code == 201, r.text
    password = r.json()["password"]
    assert password and len(password) >= 24
    world["password"] = password
    assert "password" not in daemon.api.get("/backup/targets/usb").json()  # shown once
    assert (world["repo"] / "config").exists()

    r = daemon.api.post(
        "/backup/tasks",
        json={"share": "docs", "target": "usb", "schedule": "0 1 * * *", "keep_last": 5},
    )
    assert r.status_code == 201, r.text
    task = r.json()["id"]
    world["task"] = task
    before = tree(world["docs"])
    job = run_task(daemon, task)
    assert job["state"] == "succeeded", job
    assert "backed up 61 files" in job["message"], job
    assert job["bytes_total"] and job["bytes_done"] == job["bytes_total"], job
    info = daemon.api.get(f"/backup/tasks/{task}").json()
    assert info["last_files"] == 61 and info["backup_age_seconds"] < 120, info
    assert daemon.api.get("/shares/docs/snapshots").json() == []  # its snapshot is gone
    assert leftovers(daemon) == []

    # restic by hand sees the share's files under the stable path, dated by the snapshot
    listed = restic(world["repo"], password, "ls", "--json", "latest")
    assert listed.returncode == 0, listed.stderr
    assert f'"paths":["{daemon.mount_root}/tank/.backup/{task}/docs"]' in listed.stdout
    assert '"path":"/dept-1/year-1/file 1.bin"' in listed.stdout

    # change 5 files, delete 2, add one; the second backup adds little
    first = daemon.api.get(f"/backup/tasks/{task}/snapshots").json()
    assert len(first) == 1
    changed = sorted(p for p in world["docs"].rglob("*.bin"))
    for p in changed[:5]:
        p.write_bytes(os.urandom(10_001))
    for p in changed[5:7]:
        p.unlink()
    (world["docs"] / "new.txt").write_text("new\n")
    time.sleep(1.1)  # snapshot names have seconds
    job = run_task(daemon, task)
    assert job["state"] == "succeeded", job
    info = daemon.api.get(f"/backup/tasks/{task}").json()
    assert info["last_files"] == 60 and info["last_added"] < 200_000, info
    backups = daemon.api.get(f"/backup/tasks/{task}/snapshots").json()
    assert [b["id"] for b in backups][:1] == [first[0]["id"]] and len(backups) == 2

    # one file from the first backup, beside the live one
    one = str(changed[0].relative_to(world["docs"]))
    job = restore(daemon, task, snapshot=first[0]["short_id"], path=one, to="docs/old.bin")
    assert job["state"] == "succeeded", job
    assert hashlib.sha256((world["docs"] / "old.bin").read_bytes()).hexdigest() == before[one][0]
    assert (world["docs"] / "old.bin").stat().st_uid == before[one][1]

    # the whole share as it was at the first backup, into a new folder of the share
    job = restore(daemon, task, snapshot=first[0]["id"], to="docs/as-before")
    assert job["state"] == "succeeded", job
    assert tree(world["docs"] / "as-before") == before
    # and the newest, into an existing folder: it lands there under the share's name
    job = restore(daemon, task, to="docs/as-before")
    assert job["state"] == "succeeded", job
    assert "docs/as-before/docs" in job["message"]
    assert (world["docs"] / "as-before" / "docs" / "new.txt").read_text() == "new\n"

    # what exists is never replaced; what the backup lacks is a clear failure
    job = restore(daemon, task, path=one, to="docs/old.bin")
    assert job["state"] == "failed" and "exists" in job["error"], job
    assert hashlib.sha256((world["docs"] / "old.bin").read_bytes()).hexdigest() == before[one][0]
    job = restore(daemon, task, path="no/such/file", to="docs/x")
    assert job["state"] == "failed" and "not in backup" in job["error"], job
    assert not (world["docs"] / "x").exists()
    assert not list((world["docs"] / ".speicher" / "restore").iterdir())
    for body in (
        {"path": "../etc", "to": "docs/y"},
        {"path": "a/\x00b", "to": "docs/y"},
        {"path": "new.txt", "to": "docs/../../y"},
        {"path": "new.txt", "to": "docs/.speicher/y"},
        {"snapshot": "latest --help", "to": "docs/y"},
    ):
        r = daemon.api.post(f"/backup/tasks/{task}/restore", json=body)
        assert r.status_code == 422, r.text
    r = daemon.api.post(f"/backup/tasks/{task}/restore", json={"to": "nothere/y"})
    assert r.status_code == 404, r.text
    assert leftovers(daemon) == []


def test_wrong_password_and_existing_repository(daemon: Daemon, world: dict[str, Any]) -> None:
    body = {"name": "usb2", "kind": "local", "path": str(world["repo"])}
    r = daemon.api.post("/backup/targets", json=body)  # a new one over an existing repository
    assert r.status_code == 409 and "exists there already" in r.json()["detail"], r.text
    r = daemon.api.post("/backup/targets", json={**body, "password": "not-the-password"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "password", r.text
    assert [t["name"] for t in daemon.api.get("/backup/targets").json()] == ["usb"]
    result = daemon.cli(
        "backup", "target", "add", "usb2", "--path", str(world["repo"]), "--password-file", "-",
        input="not-the-password\n", check=False,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and "password" in result.stderr, result
    # the right one opens it (a rebuilt box reading its old backups)
    r = daemon.api.post("/backup/targets", json={**body, "password": world["password"]})
    assert r.status_code == 201 and r.json().get("password") is None, r.text
    assert daemon.api.delete("/backup/targets/usb2").status_code == 204


def test_s3_target_on_speicher(daemon: Daemon, world: dict[str, Any]) -> None:
    make_share(daemon, "vault", {"alice": "rw"}, s3=True)
    r = daemon.api.post("/users/alice/s3-keys")
    assert r.status_code == 201, r.text
    key = r.json()
    r = daemon.api.post(
        "/backup/targets",
        json={
            "name": "offsite",
            "kind": "s3",
            "url": f"http://127.0.0.1:{daemon.s3_port}/vault/restic",
            "access_key": key["access_key"],
            "secret_key": key["secret"],
        },
    )
    assert r.status_code == 201, r.text
    r = daemon.api.post(
        "/backup/tasks", json={"share": "docs", "target": "offsite", "schedule": "0 2 * * *"}
    )
    assert r.status_code == 201, r.text
    task = r.json()["id"]
    live = tree(world["docs"])
    job = run_task(daemon, task)
    assert job["state"] == "succeeded", job
    vault = Path(daemon.api.get("/shares/vault").json()["path"])
    assert (vault / "restic" / "config").is_file()  # restic's objects are files of the share
    job = restore(daemon, task, path="new.txt", to="docs/from-s3.txt")
    assert job["state"] == "succeeded", job
    assert (world["docs"] / "from-s3.txt").read_text() == "new\n"
    job = restore(daemon, task, to="vault/whole")
    assert job["state"] == "succeeded", job
    assert tree(vault / "whole") == live


def _policy(times: list[dt.datetime], daily: int, weekly: int, monthly: int) -> set[dt.datetime]:
    """restic's documented rule: newest first, a snapshot is kept when it is the first seen of
    a new day (week, month) while fewer than N days (weeks, months) have one kept."""
    kept = set()
    for bucket, n in (
        (lambda t: t.date(), daily),
        (lambda t: t.isocalendar()[:2], weekly),
        (lambda t: (t.year, t.month), monthly),
    ):
        last, count = None, 0
        for t in sorted(times, reverse=True):
            if count < n and bucket(t) != last:
                kept.add(t)
                count += 1
            last = bucket(t)
    return kept


def test_retention_over_injected_time(daemon: Daemon, world: dict[str, Any]) -> None:
    """Forty days of history over two months, made with restic by hand as the task makes it
    (same host, tag and path-less grouping), then a run of the task: its `forget` keeps what
    the rule says."""
    repo, password, task = world["repo"], world["password"], world["task"]
    history = daemon.base / "history"
    history.mkdir()
    (history / "f").write_text("x")
    start = dt.datetime(2026, 9, 1, 12, 0, tzinfo=dt.UTC)
    host = socket.gethostname().split(".")[0]
    injected = [start + dt.timedelta(days=d) for d in range(0, 40)]
    injected += [start + dt.timedelta(days=39, hours=3)]  # two on one day: the later stays
    for t in injected:
        done = restic(
            repo, password, "backup", "--tag", "share:docs", "--host", host,
            "--time", t.strftime("%Y-%m-%d %H:%M:%S"), str(history),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    r = daemon.api.patch(
        f"/backup/tasks/{task}",
        json={"keep_last": 0, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12},
    )
    assert r.status_code == 200, r.text
    assert run_task(daemon, task)["state"] == "succeeded"
    backups = daemon.api.get(f"/backup/tasks/{task}/snapshots").json()
    times = [dt.datetime.fromisoformat(b["time"]).replace(microsecond=0) for b in backups]
    real = [t for t in times if t.year != 2026 or t.month not in (9, 10)]
    everything = sorted({*injected, *real})
    expected = _policy(everything, 7, 4, 12)
    assert set(times) == expected, sorted(set(times) ^ expected)
    assert len(real) <= 3  # the task's own: kept by the rule too (newest days)


def test_failures_alerts_and_bad_input(daemon: Daemon, world: dict[str, Any]) -> None:
    lost = daemon.base / "gone"
    lost.mkdir()
    body = {"name": "stick", "kind": "local", "path": str(lost / "repo")}
    assert daemon.api.post("/backup/targets", json=body).status_code == 201
    r = daemon.api.post(
        "/backup/tasks",
        json={"share": "docs", "target": "stick", "schedule": "0 3 * * *", "alert_after": 1},
    )
    task = r.json()["id"]
    (lost / "repo").rename(lost / "unplugged")  # the USB disk is not there
    job = run_task(daemon, task)
    assert job["state"] == "failed" and "no restic repository there" in job["error"], job
    info = daemon.api.get(f"/backup/tasks/{task}").json()
    assert info["failures"] == 1 and info["next_run_at"], info
    kinds = [e["kind"] for e in daemon.api.get("/events", params={"limit": 50}).json()]
    assert "backup.failing" in kinds
    assert daemon.api.get("/shares/docs/snapshots").json() == []  # no snapshot left behind
    # no backup for "too long": an alert from the monitor
    r = daemon.api.patch(f"/backup/tasks/{task}", json={"alert_days": 0.00001, "enabled": True})
    assert r.status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kinds = [e["kind"] for e in daemon.api.get("/events", params={"limit": 50}).json()]
        if "backup.late" in kinds:
            break
        time.sleep(1)
    assert "backup.late" in kinds
    daemon.api.patch(f"/backup/tasks/{task}", json={"enabled": False})

    for bad, field in (
        ({"name": "x", "kind": "local", "path": "relative/path"}, "path"),
        ({"name": "x", "kind": "local", "path": str(daemon.mount_root / "tank")}, "path"),
        ({"name": "x", "kind": "local", "path": "/no/such/parent/repo"}, "path"),
        ({"name": "x", "kind": "s3", "url": "ftp://host/bucket", "access_key": "a",
          "secret_key": "b"}, "url"),
        ({"name": "x", "kind": "s3", "url": "http://host/", "access_key": "a",
          "secret_key": "b"}, "url"),
        ({"name": "x", "kind": "sftp", "host": "-oProxyCommand=x", "user": "u",
          "path": "/p"}, "host"),
        ({"name": "x", "kind": "sftp", "host": "h", "user": "u;id", "path": "/p"}, "user"),
    ):  # fmt: skip
        r = daemon.api.post("/backup/targets", json=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, (bad, r.text)
    r = daemon.api.post(
        "/backup/targets",
        json={"name": "x", "kind": "s3", "url": "http://127.0.0.1:1/bucket", "access_key": "a",
              "secret_key": "b"},
    )  # fmt: skip
    assert r.status_code == 502, r.text
    r = daemon.api.post(
        "/backup/tasks", json={"share": "docs", "target": "usb", "schedule": "every day"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "schedule"
    r = daemon.api.post(
        "/backup/tasks", json={"share": "nothere", "target": "usb", "schedule": "0 1 * * *"}
    )
    assert r.status_code == 404
    r = daemon.api.post(
        "/backup/tasks", json={"share": "docs", "target": "usb", "schedule": "0 1 * * *"}
    )
    assert r.status_code == 409  # one task per share and target
    r = daemon.api.delete("/backup/targets/usb")
    assert r.status_code == 409 and "task" in r.json()["detail"]
    assert [t["name"] for t in daemon.api.get("/backup/targets").json()] == [
        "offsite",
        "stick",
        "usb",
    ]
    result = daemon.cli("backup", "task", "create", "docs", "--target", "usb", "--schedule",
                        "61 * * * *", check=False)  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result
    assert leftovers(daemon) == []


def test_sftp_target_on_speicher(daemon: Daemon, world: dict[str, Any]) -> None:
    """The box's key installed for a user of the daemon's own SFTP server: restic's sftp
    backend over OpenSSH, the host key pinned when the target was added."""
    r = daemon.api.patch("/shares/vault", json={"sftp": True})
    assert r.status_code == 200, r.text
    public = daemon.api.get("/backup/ssh-key").json()["public_key"]
    assert public.startswith("ssh-ed25519 ")
    r = daemon.api.post("/users/alice/keys", json={"key": public})
    assert r.status_code == 201, r.text
    body = {"name": "nas2", "kind": "sftp", "host": "127.0.0.1", "port": daemon.sftp_port,
            "user": "alice", "path": "/vault/sftp-restic"}  # fmt: skip
    r = daemon.api.post("/backup/targets", json={**body, "user": "nobody-here"})
    assert r.status_code == 502, r.text  # refused login: one clear line, nothing stored
    assert "nas2" not in [t["name"] for t in daemon.api.get("/backup/targets").json()]
    r = daemon.api.post("/backup/targets", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["host_key"].startswith(("ssh-ed25519 ", "ecdsa-sha2"))
    r = daemon.api.post(
        "/backup/tasks", json={"share": "docs", "target": "nas2", "schedule": "0 4 * * *"}
    )
    assert r.status_code == 201, r.text
    task = r.json()["id"]
    job = run_task(daemon, task)
    assert job["state"] == "succeeded", job
    vault = Path(daemon.api.get("/shares/vault").json()["path"])
    assert (vault / "sftp-restic" / "config").is_file()
    job = restore(daemon, task, path="new.txt", to="docs/from-sftp.txt")
    assert job["state"] == "succeeded", job
    assert (world["docs"] / "from-sftp.txt").read_text() == "new\n"


def test_the_cli(daemon: Daemon, world: dict[str, Any]) -> None:
    task = str(world["task"])
    listed = daemon.cli("backup", "task", "list").stdout
    assert "docs" in listed and "usb" in listed
    shown = daemon.cli("backup", "task", "show", task).stdout
    assert "backup age" in shown and "0 3 * * *" not in shown
    backups = json.loads(daemon.cli("backup", "snapshots", task, "--json").stdout)
    assert backups and all(b["tags"] == ["share:docs"] for b in backups)
    done = daemon.cli("backup", "restore", task, "--path", "new.txt", "--to", "docs/cli.txt")
    assert done.returncode == 0
    assert (world["docs"] / "cli.txt").read_text() == "new\n"
    failed = daemon.cli(
        "backup", "restore", task, "--path", "new.txt", "--to", "docs/cli.txt", check=False
    )
    assert failed.returncode != 0 and "exists" in failed.stderr, failed
    assert "usb" in daemon.cli("backup", "target", "list").stdout
    assert daemon.cli("backup", "ssh-key").stdout.startswith("ssh-ed25519 ")
