"""Does the daemon's model agree with the machine? Read both independently and compare.

The machine is read with the system's own tools (``btrfs``, ``findmnt``, ``getfacl``,
``pdbedit``, /etc/passwd), never through Speicher's code, so a bug in Speicher's reading
cannot hide a disagreement."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

from speicher_testing import Daemon


def _out(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def fs_devices(mountpoint: str) -> dict[int, str]:
    """devid -> device path of a mounted btrfs (missing devices have an empty path)."""
    devices = {}
    for line in _out("btrfs", "filesystem", "show", "--raw", mountpoint).splitlines():
        match = re.match(r"^\s*devid\s+(\d+)\s+size\s+\d+\s+used\s+\d+\s+path\s+(.*?)\s*$", line)
        if match and int(match.group(1)) != 0:
            path = match.group(2)
            devices[int(match.group(1))] = "" if "missing" in path.lower() else path
    return devices


def named_acl(path: str) -> set[tuple[str, int]]:
    out = _out("getfacl", "--numeric", "--omit-header", "--absolute-names", path)
    entries = set()
    for line in out.splitlines():
        parts = line.split("#", 1)[0].strip().split(":")
        if len(parts) == 3 and parts[0] in ("user", "group") and parts[1].isdigit():
            entries.add((parts[0], int(parts[1])))
    return entries


def _accounts(path: str, prefix: str) -> dict[str, int]:
    with open(path) as fh:
        rows = [line.split(":") for line in fh if line.startswith(prefix)]
    return {row[0]: int(row[2]) for row in rows}


def agree(daemon: Daemon) -> dict[str, Any]:
    """Assert that pools, disks, shares, users, groups, grants and Samba's view match the
    machine; return what the API said."""
    api = daemon.api
    pools = api.get("/pools").json()
    shares = api.get("/shares").json()
    users = api.get("/users").json()
    groups = api.get("/groups").json()
    mounts = [
        line
        for line in _out("findmnt", "--list", "--noheadings", "--output", "TARGET").splitlines()
        if line.startswith(str(daemon.mount_root) + "/")
    ]
    assert sorted(mounts) == sorted(p["mountpoint"] for p in pools), (mounts, pools)
    for pool in pools:
        assert pool["state"] == "ready", pool
        mnt = pool["mountpoint"]
        devices = fs_devices(mnt)
        said = {d["devid"]: d["device"] for d in pool["disks"]}
        assert said == devices, (pool["name"], said, devices)
        subvolumes = {
            e.name
            for e in os.scandir(mnt)
            if e.is_dir(follow_symlinks=False) and e.name != ".snapshots"
        }
        assert subvolumes == set(pool["shares"]), (pool["name"], subvolumes, pool["shares"])
        assert not [n for n in os.listdir(mnt) if n.startswith(".rollback-")]
    members = {d["disk"] for p in pools for d in p["disks"]}
    for disk in api.get("/disks").json():
        if disk["kind"] == "virtual":
            in_pool = disk["name"] in members
            assert (disk["state"] == "in-use") == in_pool, disk
    for share in shares:
        assert share["state"] == "ready", share
        uids = {u["name"]: u["uid"] for u in users}
        gids = {g["name"]: g["gid"] for g in groups}
        wanted = {
            ("user", uids[g["name"]]) if g["principal"] == "user" else ("group", gids[g["name"]])
            for g in share["grants"]
        }
        assert named_acl(share["path"]) == wanted, share
    prefix = daemon.prefix
    expected_users = {daemon.unix_name(u["name"]): u["uid"] for u in users if u["file_access"]}
    assert _accounts("/etc/passwd", prefix) == expected_users
    expected_groups = {daemon.unix_name(g["name"]): g["gid"] for g in groups}
    unix_groups = _accounts("/etc/group", prefix)
    unix_groups.pop(f"{prefix}speicher", None)
    assert unix_groups == expected_groups
    conf = str(daemon.state_dir / "samba" / "smb.conf")
    passdb = {
        line.split(":", 1)[0]
        for line in _out("pdbedit", f"--configfile={conf}", "-L").splitlines()
        if ":" in line
    }
    assert passdb == set(expected_users), (passdb, expected_users)
    return {"pools": pools, "shares": shares, "users": users, "groups": groups}
