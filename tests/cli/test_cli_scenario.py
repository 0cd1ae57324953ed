"""The whole storage-core scenario, through the ``speicher`` command as an admin would type it.

The steps build on each other and share one daemon (the module runs on one xdist worker)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fsaccess import as_user, can_write, read
from speicher_testing import Daemon

pytestmark = pytest.mark.system


def js(daemon: Daemon, *args: str) -> Any:
    return json.loads(daemon.cli(*args, "--json").stdout)


def fails(daemon: Daemon, *args: str, input: str | None = None) -> str:
    """Run a command that must be refused: exit code 2 and exactly one line on stderr."""
    result = daemon.cli(*args, input=input, check=False)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_disks(daemon: Daemon) -> None:
    for name in ("d1", "d2", "d3", "d4"):
        daemon.cli("disk", "create-virtual", name, "--size", "2G")
    disks = {d["name"]: d for d in js(daemon, "disk", "list")}
    for name in ("d1", "d2", "d3", "d4"):
        assert disks[name]["kind"] == "virtual"
        assert disks[name]["size"] == 2 * 1024**3
        assert disks[name]["state"] == "available"
        assert disks[name]["device"].startswith("/dev/loop")
        assert Path(disks[name]["backing_file"]).stat().st_blocks == 0  # sparse
    table = daemon.cli("disk", "list").stdout
    assert "d1" in table and "virtual" in table
    assert "already exists" in fails(daemon, "disk", "create-virtual", "d1", "--size", "2G")
    assert "at least 1G" in fails(daemon, "disk", "create-virtual", "tiny", "--size", "10M")


def test_pool_create_and_show(daemon: Daemon) -> None:
    line = fails(daemon, "pool", "create", "tank", "--profile", "raid1", "--disk", "d1")
    assert "disks" in line and "at least 2" in line
    assert "Invalid" not in fails(
        daemon, "pool", "create", "Tank!", "--profile", "raid1", "--disk", "d1", "--disk", "d2"
    )
    daemon.cli("pool", "create", "tank", "--profile", "raid1", "--disk", "d1", "--disk", "d2")
    pool = js(daemon, "pool", "show", "tank")
    assert isinstance(pool, dict)
    assert pool["health"] == "ok" and pool["state"] == "ready" and pool["profile"] == "raid1"
    assert [d["disk"] for d in pool["disks"]] == ["d1", "d2"]
    assert all(d["state"] == "online" for d in pool["disks"])
    assert 1024**3 < pool["size"] <= 2 * 1024**3  # raid1: half the raw space
    assert os.path.ismount(pool["mountpoint"])
    assert "tank" in daemon.cli("pool", "list").stdout
    assert "already used by pool 'tank'" in fails(
        daemon, "pool", "create", "other", "--profile", "single", "--disk", "d1"
    )
    assert "used by pool 'tank'" in fails(daemon, "disk", "delete-virtual", "d1")
    jobs = js(daemon, "job", "list")
    assert isinstance(jobs, list)
    create = next(j for j in jobs if j["kind"] == "pool.create" and j["target"] == "tank")
    assert create["state"] == "succeeded" and create["progress"] == 100


def test_pool_disk_changes(daemon: Daemon) -> None:
    daemon.cli("pool", "add-disk", "tank", "d3")
    assert [d["disk"] for d in js(daemon, "pool", "show", "tank")["disks"]] == ["d1", "d2", "d3"]
    daemon.cli("pool", "remove-disk", "tank", "d3")
    assert [d["disk"] for d in js(daemon, "pool", "show", "tank")["disks"]] == ["d1", "d2"]
    assert "needs at least 2" in fails(daemon, "pool", "remove-disk", "tank", "d2")
    daemon.cli("pool", "replace-disk", "tank", "d2", "d4")
    pool = js(daemon, "pool", "show", "tank")
    assert isinstance(pool, dict)
    assert [d["disk"] for d in pool["disks"]] == ["d1", "d4"]
    assert pool["health"] == "ok"
    disks = {d["name"]: d for d in js(daemon, "disk", "list")}
    assert disks["d2"]["state"] == "available" and disks["d3"]["state"] == "available"


def test_shares_users_groups_and_access(daemon: Daemon) -> None:
    daemon.cli(
        "share", "create", "finance", "--pool", "tank", "--quota", "50M", "--compression", "zstd"
    )
    assert "already exists" in fails(daemon, "share", "create", "finance", "--pool", "tank")
    line = fails(daemon, "share", "create", "Bad.Name", "--pool", "tank", "--quota", "lots")
    assert "name:" in line and "quota:" in line
    share = js(daemon, "share", "show", "finance")
    assert isinstance(share, dict)
    assert share["quota"] == 50 * 1024**2 and share["compression"] == "zstd"
    assert share["grants"] == []

    for name in ("alice", "bob", "carol"):
        daemon.cli(
            "user",
            "create",
            name,
            "--password-stdin",
            "--full-name",
            name.title(),
            input=f"{name}-password\n",
        )
    assert "at least 8" in fails(
        daemon, "user", "create", "dave", "--password-stdin", input="short\n"
    )
    assert "already exists" in fails(
        daemon, "user", "create", "alice", "--password-stdin", input="another-password\n"
    )
    users = {u["name"]: u for u in js(daemon, "user", "list")}
    assert {"admin", "alice", "bob", "carol"} <= set(users)
    uids = {users[n]["uid"] for n in ("alice", "bob", "carol")}
    assert len(uids) == 3 and min(uids) >= 20000
    alice = daemon.unix_name("alice")
    import pwd

    assert pwd.getpwnam(alice).pw_uid == users["alice"]["uid"]
    daemon.cli("user", "update", "alice", "--full-name", "Alice Adams", "--email", "a@example.com")
    assert js(daemon, "user", "show", "alice")["full_name"] == "Alice Adams"

    daemon.cli("group", "create", "accounting")
    daemon.cli("group", "add-member", "accounting", "bob")
    assert js(daemon, "group", "show", "accounting")["members"] == ["bob"]

    daemon.cli("share", "grant", "finance", "--user", "alice", "--rw")
    daemon.cli("share", "grant", "finance", "--group", "accounting", "--ro")
    assert "does not exist" in fails(
        daemon, "share", "grant", "finance", "--user", "nobody1", "--rw"
    )
    assert "exactly one" in fails(daemon, "share", "grant", "finance", "--user", "alice")
    grants = js(daemon, "share", "show", "finance")["grants"]
    assert {(g["principal"], g["name"], g["access"]) for g in grants} == {
        ("user", "alice", "rw"),
        ("group", "accounting", "ro"),
    }
    shown = daemon.cli("share", "show", "finance").stdout
    assert "alice" in shown and "accounting" in shown

    # the operating system enforces the grants
    path = share["path"]
    assert can_write(alice, f"{path}/report.txt", "quarterly numbers")
    assert read(daemon.unix_name("bob"), f"{path}/report.txt") == "quarterly numbers"
    assert not can_write(daemon.unix_name("bob"), f"{path}/bob.txt")
    assert read(daemon.unix_name("carol"), f"{path}/report.txt") is None
    assert not can_write(daemon.unix_name("carol"), f"{path}/carol.txt")

    # usage against quota, and a quota below it is refused
    # random bytes: zstd cannot shrink them below the quota we then try
    big = as_user(alice, "sh", "-c", f"head -c 3145728 /dev/urandom > {path}/big.bin")
    assert big.returncode == 0, big.stderr
    daemon.cli("share", "show", "finance")
    line = fails(daemon, "share", "update", "finance", "--quota", "1M")
    assert "quota" in line and "below" in line
    daemon.cli("share", "update", "finance", "--quota", "80M", "--description", "Money")
    share = js(daemon, "share", "show", "finance")
    assert isinstance(share, dict)
    assert share["quota"] == 80 * 1024**2 and share["description"] == "Money"
    assert share["used"] >= 3 * 1024 * 1024

    # revoking takes access away at once, in files created before too
    daemon.cli("share", "revoke", "finance", "--user", "alice")
    assert read(alice, f"{path}/report.txt") is None
    daemon.cli("share", "grant", "finance", "--user", "alice", "--ro")
    assert read(alice, f"{path}/report.txt") == "quarterly numbers"
    assert not can_write(alice, f"{path}/report.txt")

    daemon.cli("user", "passwd", "alice", "--password-stdin", input="new-alice-password\n")


def test_token_and_remote_use(daemon: Daemon) -> None:
    out = daemon.cli("token", "create", "monitoring").stdout
    token = out.strip().splitlines()[-1]
    assert token.startswith("spk_")
    remote = {"SPEICHER_STATE_DIR": "/nonexistent"}  # no local socket: only the URL works
    pools = json.loads(
        daemon.cli(
            "--url", daemon.url, "--token", token, "pool", "list", "--json", env=remote
        ).stdout
    )
    assert [p["name"] for p in pools] == ["tank"]
    line = fails(daemon, "--url", daemon.url, "--token", "spk_000000000000_wrong", "pool", "list")
    assert "not valid" in line
    listed = js(daemon, "token", "list")
    assert [t["name"] for t in listed] == ["monitoring"]
    assert token not in json.dumps(listed)
    daemon.cli("token", "delete", "monitoring")
    fails(daemon, "--url", daemon.url, "--token", token, "pool", "list")


def test_events_and_teardown(daemon: Daemon) -> None:
    kinds = {e["kind"] for e in js(daemon, "event", "list", "--limit", "200")}
    assert {"daemon.start", "pool.created", "share.created", "user.created"} <= kinds

    assert "--yes" in fails(daemon, "pool", "destroy", "tank")
    assert "--yes" in fails(daemon, "share", "delete", "finance")
    daemon.cli("share", "delete", "finance", "--yes")
    daemon.cli("user", "delete", "carol", "--yes")
    import pwd

    with pytest.raises(KeyError):
        pwd.getpwnam(daemon.unix_name("carol"))
    daemon.cli("group", "delete", "accounting", "--yes")
    mountpoint = js(daemon, "pool", "show", "tank")["mountpoint"]
    daemon.cli("pool", "destroy", "tank", "--yes")
    assert not os.path.ismount(mountpoint)
    assert "does not exist" in fails(daemon, "pool", "show", "tank")
    for name in ("d1", "d2", "d3", "d4"):
        daemon.cli("disk", "delete-virtual", name)
    assert [d for d in js(daemon, "disk", "list") if d["kind"] == "virtual"] == []
