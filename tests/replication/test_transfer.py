"""Replication between two real daemons (docs/replication.md): a share of 200 files of
unaligned sizes goes over whole, then only what changed; the replica is byte for byte the
snapshot; a stream cut off by a killed target leaves nothing half-made, and the next run
completes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pwd
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import _base
from speicher.access.s3keys import Sealer
from speicher_testing import Daemon
from world import grant, make_pool, make_share, make_user

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def target() -> Iterator[Daemon]:
    d = Daemon(_base())
    try:
        d.start()
        make_pool(d)
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def paired(daemon: Daemon, target: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    folder = make_share(daemon, "projects", {})
    r = target.api.post("/replication/pairings", json={"name": "office-a"})
    assert r.status_code == 201, r.text
    body = {"name": "backup-site", "url": target.https_url, "code": r.json()["code"]}
    assert daemon.api.post("/replication/targets", json=body).status_code == 201
    return {"folder": folder}


def tree(top: Path) -> dict[str, str]:
    return {
        str(p.relative_to(top)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(top.rglob("*"))
        if p.is_file()
    }


def snapshot(daemon: Daemon, share: str) -> str:
    r = daemon.api.post(f"/shares/{share}/snapshots", json={})
    assert r.status_code == 201, r.text
    name: str = r.json()["name"]
    time.sleep(1.1)  # snapshot names have seconds: the next one gets another
    return name


def send(daemon: Daemon, share: str, **extra: object) -> dict[str, Any]:
    r = daemon.api.post("/replication/targets/backup-site/send", json={"share": share, **extra})
    assert r.status_code == 202, r.text
    return daemon.wait_job(r.json())


def sent_bytes(job: dict[str, Any]) -> int:
    found = re.search(r"([\d,]+) bytes", job["message"])
    assert found, job
    return int(found.group(1).replace(",", ""))


def replica(target: Daemon, share: str, name: str) -> Path:
    return target.mount_root / "tank" / ".replicas" / "office-a" / share / name / name


def test_full_then_incremental(daemon: Daemon, target: Daemon, paired: dict[str, Any]) -> None:
    folder: Path = paired["folder"]
    for i in range(200):
        sub = folder / f"dir{i % 7}"
        sub.mkdir(exist_ok=True)
        (sub / f"file{i}.bin").write_bytes(os.urandom(1000 + 4099 * i))
    first = snapshot(daemon, "projects")
    job = send(daemon, "projects")
    assert job["state"] == "succeeded", job
    assert "full" in job["message"]
    full = sent_bytes(job)
    assert job["bytes_total"] and 0 < job["bytes_done"] <= full + 1024, job  # the bar: bytes
    snapshots = daemon.mount_root / "tank" / ".snapshots" / "projects"
    assert tree(replica(target, "projects", first)) == tree(snapshots / first)
    # change 10 files, delete 5: the next run sends only that
    for i in range(10):
        (folder / f"dir{i % 7}" / f"file{i}.bin").write_bytes(os.urandom(3001 + i))
    for i in range(10, 15):
        (folder / f"dir{i % 7}" / f"file{i}.bin").unlink()
    second = snapshot(daemon, "projects")
    job = send(daemon, "projects")
    assert job["state"] == "succeeded", job
    assert f"incremental from {first}" in job["message"]
    increment = sent_bytes(job)
    assert increment < 0.1 * full, (increment, full)
    assert tree(replica(target, "projects", second)) == tree(snapshots / second)
    assert len(tree(replica(target, "projects", second))) == 195
    # what is there already is not sent again
    again = send(daemon, "projects")
    assert again["state"] == "succeeded" and "already" in again["message"], again
    incoming = list((target.mount_root / "tank" / ".replicas").rglob(".incoming-*"))
    assert incoming == []


def test_a_target_killed_mid_stream_keeps_nothing_half_made(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    folder: Path = paired["folder"]
    big = folder / "big"
    big.mkdir(exist_ok=True)
    for i in range(6):
        (big / f"part{i}.bin").write_bytes(os.urandom(40 * 1024 * 1024 + i))
    name = snapshot(daemon, "projects")
    # at most 40 MiB/s: the stream lasts seconds, so the kill comes in the middle of it
    body = {"share": "projects", "bandwidth_mib": 40}
    r = daemon.api.post("/replication/targets/backup-site/send", json=body)
    assert r.status_code == 202, r.text
    area = target.mount_root / "tank" / ".replicas" / "office-a" / "projects"
    deadline = time.monotonic() + 60
    while not list(area.glob(".incoming-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.proc is not None
    os.killpg(target.proc.pid, signal.SIGKILL)  # the daemon and its btrfs receive
    target.proc.wait(10)
    failed = daemon.wait_job(r.json())
    assert failed["state"] == "failed", failed
    assert failed["error"] and "\n" not in failed["error"]
    target.start()
    deadline = time.monotonic() + 30
    while list(area.glob(".incoming-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(area.glob(".incoming-*")) == []
    assert not (area / name).exists()
    job = send(daemon, "projects")
    assert job["state"] == "succeeded", job
    snapshots = daemon.mount_root / "tank" / ".snapshots" / "projects"
    assert tree(replica(target, "projects", name)) == tree(snapshots / name)


def test_a_target_that_cannot_find_the_base_refuses_at_once_and_gets_it_whole(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    folder: Path = paired["folder"]
    base = snapshot(daemon, "projects")
    assert send(daemon, "projects")["state"] == "succeeded"
    # the replica there is no longer what it was received as (made writable: btrfs forgets
    # its received UUID), so an increment against it cannot be received
    held = replica(target, "projects", base)
    subprocess.run(["btrfs", "property", "set", "-f", str(held), "ro", "false"], check=True)
    (folder / "more.bin").write_bytes(os.urandom(48 * 1024 * 1024 + 7))  # a long increment
    later = snapshot(daemon, "projects")
    job = send(daemon, "projects")
    assert job["state"] == "succeeded", job
    assert "full" in job["message"] and "incremental" not in job["message"], job
    assert sent_bytes(job) > 48 * 1024 * 1024
    snapshots = daemon.mount_root / "tank" / ".snapshots" / "projects"
    assert tree(replica(target, "projects", later)) == tree(snapshots / later)
    incoming = list((target.mount_root / "tank" / ".replicas").rglob(".incoming-*"))
    assert incoming == []


def credential_of(daemon: Daemon) -> str:
    """The credential the source keeps sealed (root may open it, as the daemon does)."""
    db = sqlite3.connect(daemon.state_dir / "speicher.db")
    try:
        [(sealed,)] = db.execute("SELECT credential_sealed FROM replication_targets").fetchall()
    finally:
        db.close()
    opened = Sealer(daemon.state_dir).open(sealed)
    assert opened is not None
    return opened


def framed_pieces(*pieces: bytes, end: bool = True) -> bytes:
    """Pieces as the upgraded connection carries them: a 4-byte length before each."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in pieces) + (bytes(4) if end else b"")


def upgraded(
    target: Daemon, token: str, data: bytes = b"", share: str = "projects", answer: bool = True
) -> tuple[str, dict[str, Any] | None]:
    """A stream sent as the source sends it (api/upgrade.py), by hand over TLS: the status
    line of the answer to the upgrade request, and (``answer``) the line after ``data``."""
    raw = socket.create_connection(("127.0.0.1", target.https_port), timeout=30)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # its own certificate
    with context.wrap_socket(raw) as tls:
        tls.sendall(
            f"PUT /replication/v1/replicas/{share} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n"
            "Connection: Upgrade\r\nUpgrade: speicher-replication/3\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            more = tls.recv(65536)
            assert more, head
            head += more
        status = head.split(b"\r\n", 1)[0].decode()
        tls.sendall(data)
        if " 101 " not in status or not answer:
            return status, None
        line = head.split(b"\r\n\r\n", 1)[1]
        while not line.endswith(b"\n"):
            more = tls.recv(65536)
            assert more, line
            line += more
        found: dict[str, Any] = json.loads(line)
        return status, found


def test_the_peer_endpoints_check_the_credential_names_and_streams(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    url = f"{target.https_url}/replication/v1/replicas"
    verify = False  # the target's own self-signed certificate

    def call(method: str, share: str, token: str, body: bytes | None = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{url}/{share}",
            content=body,
            headers={"Authorization": f"Bearer {token}"},
            verify=verify,
        )

    for method in ("GET", "PUT"):
        refused = call(method, "projects", "spr_not-a-credential", b"x")
        assert refused.status_code == 401, refused.text
    token = credential_of(daemon)
    assert call("GET", "projects", token).json() == sorted(
        p.name for p in (target.mount_root / "tank/.replicas/office-a/projects").glob("@GMT-*")
    )
    bad = call("GET", ".hidden", token)
    assert bad.status_code == 422, bad.text
    # a stream as a request body: refused, with the protocol to upgrade to (RFC 9110)
    body = call("PUT", "projects", token, b"not a btrfs stream at all" * 100)
    assert body.status_code == 426, body.text
    assert body.headers["upgrade"] == "speicher-replication/3"
    assert body.headers["content-type"] == "application/problem+json"
    # the upgrade is checked like any request before the connection is taken over
    assert upgraded(target, "spr_not-a-credential")[0].endswith(" 401 Unauthorized")
    assert " 422 " in upgraded(target, token, share=".hidden")[0]
    # over the upgraded connection: what is no btrfs stream, a piece too large, a cut one
    status, cut = upgraded(target, token, framed_pieces(b"not a btrfs stream at all" * 100))
    assert " 101 " in status and cut is not None
    assert cut["status"] == 422 and "footer" in cut["detail"], cut
    _, huge = upgraded(target, token, (1 << 30).to_bytes(4, "big"))
    assert huge is not None and huge["status"] == 422 and "larger" in huge["detail"], huge
    status, _ = upgraded(target, token, framed_pieces(b"x" * 5000, end=False), answer=False)
    assert " 101 " in status
    area = target.mount_root / "tank/.replicas/office-a/projects"
    deadline = time.monotonic() + 10
    while list(area.glob(".incoming-*")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the stream cut off above is cleaned up when its connection ends
    assert list(area.glob(".incoming-*")) == []


def events_of(daemon: Daemon, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = daemon.api.get("/events", params={"kind": kind}).json()
    return found


def test_a_task_replicates_keeps_its_snapshots_and_says_how_old_the_replica_is(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    made = daemon.cli(
        "replication", "task", "create", "projects", "--target", "backup-site",
        "--schedule", "0 0 1 1 *", "--keep-last", "2", "--json",
    )  # fmt: skip
    task = json.loads(made.stdout)
    before = {s["name"] for s in daemon.api.get("/shares/projects/snapshots").json()}
    for _ in range(3):
        daemon.cli("replication", "task", "run", str(task["id"]))
        time.sleep(1.1)  # one snapshot name a second
    info = daemon.api.get(f"/replication/tasks/{task['id']}").json()
    assert info["failures"] == 0 and info["last_error"] == "", info
    assert info["last_ok_at"] and info["replica_age_seconds"] < 60
    after = {s["name"] for s in daemon.api.get("/shares/projects/snapshots").json()}
    mine = sorted(after - before)
    assert len(mine) == 2 and info["last_snapshot"] == mine[-1]  # the task keeps its newest 2
    assert before <= after  # and touches no other snapshot
    held = daemon.api.get("/replication/targets").json()
    assert held and replica(target, "projects", mine[-1]).is_dir()
    shown = daemon.cli("replication", "task", "show", str(task["id"]))
    assert "replica age" in shown.stdout and mine[-1] in shown.stdout
    # the newest replica gets older than the RPO allows (2 s): an alert, once
    daemon.cli("replication", "task", "update", str(task["id"]), "--rpo-hours", "0.0005")
    deadline = time.monotonic() + 30
    while not events_of(daemon, "replication.late") and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(5)  # the daemon looks every 2 s: it does not say it again
    [late] = events_of(daemon, "replication.late")
    assert late["level"] == "error" and "hours old" in late["message"]
    assert daemon.api.delete(f"/replication/tasks/{task['id']}").status_code == 204


def test_a_task_whose_target_is_down_fails_retries_and_alerts(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    r = daemon.api.post(
        "/replication/tasks",
        json={"share": "projects", "target": "backup-site", "schedule": "0 0 1 1 *",
              "alert_after": 1},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    task = r.json()
    again = daemon.api.post(
        "/replication/tasks",
        json={"share": "projects", "target": "backup-site", "schedule": "0 0 1 1 *"},
    )
    assert again.status_code == 409, again.text
    bad = daemon.api.post(
        "/replication/tasks",
        json={"share": "projects", "target": "backup-site", "schedule": "0 0 30 2 *"},
    )
    assert bad.status_code == 422 and "schedule" in bad.text
    target.stop()
    try:
        job = daemon.wait_job(daemon.api.post(f"/replication/tasks/{task['id']}/run").json())
        assert job["state"] == "failed" and "\n" not in job["error"], job
        info = daemon.api.get(f"/replication/tasks/{task['id']}").json()
        assert info["failures"] == 1 and info["last_error"], info
        # the retry comes a minute after the failure, before the next scheduled time
        retry = dt.datetime.fromisoformat(info["next_run_at"])
        ran = dt.datetime.fromisoformat(info["last_run_at"])
        assert dt.timedelta(seconds=59) < retry - ran <= dt.timedelta(seconds=61), info
        [failing] = events_of(daemon, "replication.failing")
        assert failing["level"] == "error" and str(task["id"]) in failing["message"]
    finally:
        target.start()
    assert daemon.api.delete(f"/replication/tasks/{task['id']}").status_code == 204


def test_promote_makes_a_share_with_this_boxs_owners_and_grants(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    make_user(daemon, "alice")
    make_user(daemon, "bob")
    make_user(target, "zed")  # so alice's uid differs between the boxes
    make_user(target, "alice")
    folder = make_share(daemon, "ledger", {"alice": "rw", "bob": "ro"})
    alice = pwd.getpwnam(daemon.unix_name("alice")).pw_uid
    bob = pwd.getpwnam(daemon.unix_name("bob")).pw_uid
    (folder / "books").mkdir()
    files = {}
    for i, owner in enumerate([alice, bob, alice]):
        path = folder / "books" / f"year{i}.txt"
        path.write_bytes(os.urandom(777 + i))
        os.chown(path, owner, -1)
        files[path.name] = path.read_bytes()
    name = snapshot(daemon, "ledger")
    assert send(daemon, "ledger")["state"] == "succeeded"
    out = target.cli("replication", "promote", "ledger", "--json")
    made = json.loads(out.stdout)
    assert made == {
        "share": "ledger",
        "replica": name,
        "source": "office-a",
        "skipped": ["user bob (ro)"],
    }
    share = target.api.get("/shares/ledger").json()
    assert [(g["name"], g["access"]) for g in share["grants"]] == [("alice", "rw")]
    top = Path(share["path"])
    here = pwd.getpwnam(target.unix_name("alice")).pw_uid
    assert here != alice
    for file, data in files.items():
        path = top / "books" / file
        assert path.read_bytes() == data
    assert (top / "books" / "year0.txt").stat().st_uid == here
    assert (top / "books" / "year1.txt").stat().st_uid == 0  # bob is nobody here
    # the source's numbers are gone from the ACLs: only this box's alice is named
    named = subprocess.run(
        ["getfacl", "-n", "-p", str(top / "books" / "year0.txt")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"user:{here}:" in named and f"user:{alice}:" not in named
    # the share is writable and a second promote of the same name is refused
    (top / "books" / "new.txt").write_bytes(b"after the fire")
    again = target.api.post("/replication/promote", json={"share": "ledger"})
    assert again.status_code == 409, again.text
    missing = target.api.post("/replication/promote", json={"share": "nothing"})
    assert missing.status_code == 404, missing.text


def test_the_shares_record_goes_again_only_when_it_changed(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    make_user(daemon, "carol")
    folder = make_share(daemon, "minutes", {})
    (folder / "2026-12.txt").write_bytes(b"present: everybody\n")
    kept = target.mount_root / "tank/.replicas/office-a/minutes/share.json"

    def send_one() -> os.stat_result:
        snapshot(daemon, "minutes")
        assert send(daemon, "minutes")["state"] == "succeeded"
        return kept.stat()

    first = send_one()
    held = httpx.get(
        f"{target.https_url}/replication/v1/replicas/minutes",
        headers={"Authorization": f"Bearer {credential_of(daemon)}"},
        verify=False,  # noqa: S501 (the target's own self-signed certificate)
    )
    assert held.headers["x-speicher-record"] == hashlib.sha256(kept.read_bytes()).hexdigest()
    for _ in range(2):  # unchanged: not sent, not written again
        again = send_one()
        assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    grant(daemon, "minutes", "carol", "ro")  # a changed record goes with the next replica
    changed = send_one()
    assert changed.st_ino != first.st_ino
    assert json.loads(kept.read_text())["grants"] == ["user:carol:ro"]


def test_a_locked_snapshot_arrives_locked_and_the_target_keeps_its_own_count(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    make_share(daemon, "vault", {})
    (daemon.mount_root / "tank" / "vault" / "deed.txt").write_bytes(b"signed" * 999)
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    r = daemon.api.post("/shares/vault/snapshots", json={"locked_until": until})
    assert r.status_code == 201, r.text
    locked = r.json()
    assert locked["locked_until"], locked
    time.sleep(1.1)
    assert send(daemon, "vault")["state"] == "succeeded"
    area = target.mount_root / "tank" / ".replicas" / "office-a" / "vault"
    lock = json.loads((area / locked["name"] / "lock.json").read_text())
    assert dt.datetime.fromisoformat(lock["locked_until"]) == dt.datetime.fromisoformat(
        locked["locked_until"]
    )
    # the target's pool cannot go while a replica on it is locked
    refused = target.api.delete("/pools/tank")
    assert refused.status_code == 403 and "replica" in refused.json()["detail"], refused.text
    # the target keeps 2 replicas of each share (its own rule); the locked one stays besides
    target.cli("replication", "pairing", "update", "office-a", "--keep-last", "2")
    names = []
    for _ in range(3):
        names.append(snapshot(daemon, "vault"))
        assert send(daemon, "vault")["state"] == "succeeded"
    held = sorted(p.name for p in area.glob("@GMT-*"))
    assert held == sorted([locked["name"], *names[-2:]]), held
    assert "keeps" in target.cli("replication", "pairing", "list").stdout
    r = target.api.patch("/replication/pairings/office-a", json={"keep_last": -1})
    assert r.status_code == 422
    target.api.patch("/replication/pairings/office-a", json={"keep_last": 0})


def test_zstd_on_the_wire_and_a_bandwidth_limit(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    folder = make_share(daemon, "logs", {})
    (folder / "app.log").write_bytes(b"2026-12-02 INFO all is well\n" * 400_000)  # 11 MB
    first = snapshot(daemon, "logs")
    job = send(daemon, "logs")  # zstd by default
    assert job["state"] == "succeeded", job
    found = re.search(r"([\d,]+) on the wire, ([\d,]+) bytes", job["message"])
    assert found, job
    wire, stream = (int(g.replace(",", "")) for g in found.groups())
    assert wire < stream / 20, (wire, stream)
    snapshots = daemon.mount_root / "tank" / ".snapshots" / "logs"
    assert tree(replica(target, "logs", first)) == tree(snapshots / first)
    # uncompressed, at most 2 MiB/s: 8 MiB of random bytes take 4 s or more
    (folder / "noise.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    second = snapshot(daemon, "logs")
    start = time.monotonic()
    job = send(daemon, "logs", compress=False, bandwidth_mib=2)
    took = time.monotonic() - start
    assert job["state"] == "succeeded", job
    assert "on the wire" not in job["message"] and took >= 3.5, (took, job)
    assert tree(replica(target, "logs", second)) == tree(snapshots / second)


def test_after_a_promote_the_changes_go_back_without_a_full_resend(
    daemon: Daemon, target: Daemon, paired: dict[str, Any]
) -> None:
    """The second site took over (promote), worked on, and the first box is back: the way
    home is an increment against the replica the share was promoted from."""
    back_home = target.api.post("/replication/promote", json={"share": "projects"})
    assert back_home.status_code == 201, back_home.text
    base = back_home.json()["replica"]
    promoted = Path(target.api.get("/shares/projects").json()["path"])
    (promoted / "after-the-fire.txt").write_bytes(b"written at the second site\n" * 100)
    # the first box accepts the second as a source
    code = daemon.api.post("/replication/pairings", json={"name": "site-b"}).json()["code"]
    body = {"name": "home", "url": daemon.https_url, "code": code}
    assert target.api.post("/replication/targets", json=body).status_code == 201
    out = target.cli("replication", "task", "reverse", "projects", "--target", "home")
    [task] = target.api.get("/replication/tasks").json()
    assert not task["enabled"] and task["failures"] == 0, (task, out.stdout)
    name = task["last_snapshot"]
    [job] = [j for j in target.api.get("/jobs").json() if j["kind"] == "replication.task"]
    assert job["state"] == "succeeded", (job, out.stdout)
    assert f"incremental from {base}" in job["message"], job
    assert sent_bytes(job) < 1024 * 1024, job  # the share is ~250 MB: only the change went
    back = daemon.mount_root / "tank" / ".replicas" / "site-b" / "projects" / name / name
    assert tree(back) == tree(target.mount_root / "tank" / ".snapshots" / "projects" / name)
    assert (back / "after-the-fire.txt").exists()
    r = daemon.api.post("/replication/promote", json={"share": "projects", "name": "projects-back"})
    assert r.status_code == 201, r.text
    returned = Path(daemon.api.get("/shares/projects-back").json()["path"])
    assert (returned / "after-the-fire.txt").read_bytes() == b"written at the second site\n" * 100
