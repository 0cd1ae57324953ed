"""The audit log, as an auditor uses it: file operations made with real clients (smbclient,
curl for WebDAV, OpenSSH sftp, boto3 for S3) are found by user, share, path prefix and time,
with the client's address and the sizes; admin actions and failed logins are there too;
reads only where the share asks; the CLI searches and exports CSV; nothing can change it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pytest
from botocore.config import Config  # type: ignore[import-untyped]

from speicher_testing import Daemon
from world import make_pool, make_share, make_user, password

pytestmark = pytest.mark.system

SIZE = 1_000_003  # no block size divides it


@pytest.fixture(scope="module")
def world(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    make_user(daemon, "bob")
    make_share(
        daemon,
        "finance",
        {"alice": "rw", "bob": "ro"},
        smb={"enabled": True},
        webdav=True,
        sftp=True,
        s3=True,
    )
    local = tmp_path_factory.mktemp("audit")
    data = local / "report.bin"
    data.write_bytes(os.urandom(SIZE))
    return {"local": local, "data": data, "start": time.time() - 1}


def smbclient(daemon: Daemon, user: str, *commands: str) -> str:
    argv = ["smbclient", "-s", "/dev/null", "-p", str(daemon.smb_port), "//127.0.0.1/finance"]
    argv += ["-U", f"{user}%{password(user)}", "-c", "; ".join(commands)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return result.stdout + result.stderr


def search(daemon: Daemon, **params: Any) -> list[dict[str, Any]]:
    r = daemon.api.get("/audit", params=params)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def wait_for(
    daemon: Daemon, check: Any, timeout: float = 20, **params: Any
) -> list[dict[str, Any]]:
    """The search's records once ``check(records)`` holds (smbd's lines come a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        found = search(daemon, **params)
        if check(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def ops(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(operation, path, target), oldest first."""
    return [(e["operation"], e["path"], e["target"]) for e in reversed(found)]


def test_smb_changes_are_recorded_with_user_address_and_size(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    out = smbclient(
        daemon,
        "alice",
        f"put {world['data']} report.bin",
        "mkdir q3",
        "rename report.bin q3/report.bin",
        "put /etc/hostname q3/notes.txt",
    )
    assert "NT_STATUS" not in out, out
    # removed once its record is in (removed at once, the file may be gone before smbd's
    # line about its opening is read: it is then an open_write, as the file cannot tell)
    wait_for(daemon, lambda f: len(f) == 1, user="alice", path="/q3/notes.txt")
    out = smbclient(daemon, "alice", "rm q3/notes.txt", "mkdir empty", "rmdir empty")
    assert "NT_STATUS" not in out, out
    want = [
        ("create", "/report.bin", ""),  # smbclient opens "overwrite if there": a new file
        ("mkdir", "/q3", ""),
        ("rename", "/report.bin", "/q3/report.bin"),
        ("create", "/q3/notes.txt", ""),
        ("delete", "/q3/notes.txt", ""),
        ("mkdir", "/empty", ""),
        ("rmdir", "/empty", ""),
    ]
    found = wait_for(
        daemon, lambda f: ops(f) == want, user="alice", share="finance", protocol="smb"
    )
    assert ops(found) == want
    first = found[-1]
    assert (first["protocol"], first["address"], first["category"], first["outcome"]) == (
        "smb",
        "127.0.0.1",
        "file",
        "ok",
    )
    assert first["size"] == SIZE  # the file's size when it was closed
    # bob may read, not write: his attempt is recorded as refused
    out = smbclient(daemon, "bob", "rm q3/report.bin")
    assert "NT_STATUS_ACCESS_DENIED" in out, out
    refused = wait_for(daemon, lambda f: len(f) > 0, user="bob", share="finance")
    assert refused and all(e["outcome"].startswith("failed") for e in refused), refused
    assert any(e["path"] == "/q3/report.bin" for e in refused), refused


def test_webdav_sftp_and_s3_changes_are_recorded(daemon: Daemon, world: dict[str, Any]) -> None:
    base = f"{daemon.url}/dav/finance"
    auth = ("alice", password("alice"))
    with httpx.Client(auth=auth, timeout=60) as dav:
        assert dav.put(f"{base}/dav.txt", content=b"x" * 12345).status_code in (201, 204)
        r = dav.request("MOVE", f"{base}/dav.txt", headers={"Destination": f"{base}/dav2.txt"})
        assert r.status_code in (201, 204), r.text
        assert dav.delete(f"{base}/dav2.txt").status_code == 204
    found = wait_for(daemon, lambda f: len(f) >= 3, user="alice", protocol="webdav")
    assert ops(found) == [
        ("create", "/dav.txt", ""),
        ("rename", "/dav.txt", "/dav2.txt"),
        ("delete", "/dav2.txt", ""),
    ]
    assert found[-1]["size"] == 12345 and found[-1]["address"] == "127.0.0.1"

    batch = (
        f"put {world['data']} /finance/sftp.bin\nrename /finance/sftp.bin /finance/q3/sftp.bin\n"
    )
    sftp = ["sshpass", "-e", "sftp", "-q", "-F", "/dev/null", "-o", "BatchMode=no"]
    sftp += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    sftp += ["-o", "PubkeyAuthentication=no", "-P", str(daemon.sftp_port), "-b", "-"]
    result = subprocess.run(
        [*sftp, "alice@127.0.0.1"],
        input=batch,
        capture_output=True,
        text=True,
        env={**os.environ, "SSHPASS": password("alice")},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = wait_for(daemon, lambda f: len(f) >= 2, user="alice", protocol="sftp")
    assert ops(found) == [("create", "/sftp.bin", ""), ("rename", "/sftp.bin", "/q3/sftp.bin")]
    assert found[-1]["size"] == SIZE

    # S3 is served by worker processes: their records reach the daemon's log too
    key = daemon.api.post("/users/alice/s3-keys", json={})
    assert key.status_code == 201, key.text
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{daemon.s3_port}",
        aws_access_key_id=key.json()["access_key"],
        aws_secret_access_key=key.json()["secret"],
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    s3.put_object(Bucket="finance", Key="q3/s3.txt", Body=b"s3 bytes")
    s3.delete_object(Bucket="finance", Key="q3/s3.txt")
    found = wait_for(daemon, lambda f: len(f) >= 2, user="alice", protocol="s3")
    assert ops(found)[:1] == [("create", "/q3/s3.txt", "")]
    assert ("delete", "/q3/s3.txt", "") in ops(found)


def test_search_by_path_prefix_and_time(daemon: Daemon, world: dict[str, Any]) -> None:
    q3 = search(daemon, share="finance", path="/q3")
    paths = {e["path"] for e in q3}
    assert paths and all(p == "/q3" or p.startswith("/q3/") for p in paths), paths
    assert {"/q3", "/q3/notes.txt", "/q3/report.bin"} <= paths  # /q3/report.bin: bob's try
    assert search(daemon, share="finance", path="/q") == []  # a prefix of names, not of text
    # newest first, and the time range holds
    times = [e["time"] for e in search(daemon, share="finance", limit=1000)]
    assert times == sorted(times, reverse=True)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert search(daemon, share="finance", since=later.isoformat()) == []
    assert len(search(daemon, share="finance", limit=2)) == 2
    # bad input is a 422, never a search
    for bad in ({"limit": 0}, {"limit": 10_001}, {"since": "yesterday"}, {"path": "/a\nb"},
                {"category": "other"}, {"nonsense": "1"}):  # fmt: skip
        r = daemon.api.get("/audit", params=bad)
        assert r.status_code == 422, (bad, r.text)


def test_admin_actions_and_failed_logins(daemon: Daemon, world: dict[str, Any]) -> None:
    created = search(daemon, category="admin", operation="POST /shares")
    assert any(e["user"] == "user:admin" and e["outcome"] == "ok" for e in created), created
    again = daemon.api.post("/shares", json={"name": "finance", "pool": "tank"})
    assert again.status_code == 409
    failed = wait_for(
        daemon,
        lambda f: any(e["outcome"] == "failed (409)" for e in f),
        category="admin",
        operation="POST /shares",
    )
    assert any(e["outcome"] == "failed (409)" for e in failed), failed
    r = daemon.api.patch("/shares/Finance", json={"description": "Buchhaltung"})
    assert r.status_code == 200, r.text
    updated = wait_for(
        daemon, lambda f: len(f) == 1, category="admin", operation="PATCH /shares/{name}"
    )
    assert [(e["user"], e["path"], e["outcome"]) for e in updated] == [
        ("user:admin", "Finance", "ok")  # as typed
    ]

    wrong = httpx.get(f"{daemon.url}/api/v1/system", auth=("admin", "not-the-password"))
    assert wrong.status_code == 401
    token = httpx.get(
        f"{daemon.url}/api/v1/system", headers={"Authorization": "Bearer spk_nonsense"}
    )
    assert token.status_code == 401
    logins = wait_for(daemon, lambda f: len(f) >= 2, category="login")
    assert {(e["user"], e["outcome"]) for e in logins} >= {
        ("admin", "failed"),
        ("(token)", "failed"),
    }
    assert all(e["address"] == "127.0.0.1" for e in logins)


def test_reads_only_where_the_share_audits_them(daemon: Daemon, world: dict[str, Any]) -> None:
    local = world["local"] / "back.bin"
    out = smbclient(daemon, "alice", f"get q3/report.bin {local}")
    assert "NT_STATUS" not in out, out
    time.sleep(1)
    assert search(daemon, share="finance", operation="read") == []
    r = daemon.api.patch("/shares/finance", json={"audit_reads": True})
    assert r.status_code == 200 and r.json()["audit_reads"] is True
    out = smbclient(daemon, "alice", f"get q3/report.bin {local}")
    assert "NT_STATUS" not in out, out
    got = httpx.get(f"{daemon.url}/dav/finance/q3/report.bin", auth=("alice", password("alice")))
    assert got.status_code == 200 and len(got.content) == SIZE
    reads = wait_for(daemon, lambda f: len(f) >= 2, share="finance", operation="read")
    assert {(e["protocol"], e["path"]) for e in reads} == {
        ("smb", "/q3/report.bin"),
        ("webdav", "/q3/report.bin"),
    }
    assert daemon.api.patch("/shares/finance", json={"audit_reads": False}).status_code == 200


def test_the_cli_searches_and_exports_csv(daemon: Daemon, world: dict[str, Any]) -> None:
    since = dt.datetime.fromtimestamp(world["start"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    result = daemon.cli("audit", "search", "--user", "alice", "--share", "finance",
                        "--since", since, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found == search(daemon, user="alice", share="finance", since=since)
    table = daemon.cli("audit", "search", "--user", "alice", "--operation", "rename")
    assert table.returncode == 0 and "report.bin" in table.stdout, table.stdout

    # what a spreadsheet would run as a formula stays text in the export: an admin action's
    # object is what the caller typed in the URL
    r = daemon.api.delete("/shares/=HYPERLINK(x)")
    assert r.status_code in (404, 422), r.text
    wait_for(daemon, lambda f: len(f) == 1, operation="DELETE /shares/{name}")
    target = world["local"] / "export.csv"
    result = daemon.cli("audit", "export", "--output", str(target))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == len(search(daemon, limit=10_000))
    assert "'=HYPERLINK(x)" in {r["path"] for r in rows}
    assert {r["operation"] for r in rows if r["share"] == "finance"} >= {"create", "rename"}
    stamps = [r["time"] for r in rows]
    assert stamps == sorted(stamps)  # oldest first
    again = daemon.cli("audit", "export", "-o", str(target), check=False)
    assert again.returncode == 2 and "exists already" in again.stderr
    bad = daemon.cli("audit", "search", "--since", "gestern", check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_nothing_changes_the_log(daemon: Daemon, world: dict[str, Any]) -> None:
    for method in ("DELETE", "PUT", "PATCH", "POST"):
        r = daemon.api.request(method, "/audit", json={})
        assert r.status_code == 405, (method, r.text)
    folder = Path(daemon.state_dir) / "audit"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o077 == 0 for f in folder.glob("*.db"))
