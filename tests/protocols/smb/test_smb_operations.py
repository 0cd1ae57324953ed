"""Running SMB: changes reload smbd without dropping clients, the status shows who is
connected, a killed smbd comes back, and the CLI's SMB commands."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from smb_helpers import (
    grant,
    list_shares,
    make_pool,
    make_share,
    make_user,
    raw_smb,
    run_smbclient,
    smb_user,
    smbd_pid,
    wait_for,
)

from speicher_testing import Daemon

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    """Pool ``tank``; share ``live`` with alice rw; bob has no grant yet."""
    make_pool(daemon)
    for user in ("alice", "bob"):
        make_user(daemon, user)
    return {"live": make_share(daemon, "live", {"alice": "rw"})}


def status(daemon: Daemon) -> dict[str, Any]:
    r = daemon.api.get("/smb/status")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_status_lists_connected_users_and_open_files(daemon: Daemon, world: dict[str, Any]) -> None:
    live: Path = world["live"]
    with raw_smb(daemon, "alice", "live") as alice:
        handle = alice.open("report.txt", write=True)
        handle.write(b"open while we look", 0)

        st = status(daemon)
        assert st["running"] is True
        sessions = [s for s in st["sessions"] if s["user"] == "alice"]
        assert len(sessions) == 1, st
        assert sessions[0]["protocol"] == "SMB3_11"
        assert sessions[0]["remote"] == "127.0.0.1"
        assert sessions[0]["pid"] > 0 and sessions[0]["pid"] != smbd_pid(daemon)
        assert {"user": "alice", "share_path": str(live), "name": "report.txt"} in st["open_files"]

        listed = json.loads(daemon.cli("smb", "status", "--json").stdout)
        assert [s["user"] for s in listed["sessions"]] == ["alice"]
        assert [f["name"] for f in listed["open_files"]] == ["report.txt"]
        text = daemon.cli("smb", "status").stdout
        assert "alice" in text and "report.txt" in text and "SMB3_11" in text

        handle.close()
        wait_for("the file is no longer open", lambda: status(daemon)["open_files"] == [])
        assert [s["user"] for s in status(daemon)["sessions"]] == ["alice"]

    wait_for("alice is gone", lambda: status(daemon)["sessions"] == [])
    assert "no clients connected" in daemon.cli("smb", "status").stdout


def test_changes_reload_smbd_and_keep_open_connections(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    live: Path = world["live"]
    pid = smbd_pid(daemon)
    with raw_smb(daemon, "alice", "live") as alice:
        handle = alice.open("journal.txt", write=True)
        handle.write(b"before the reload\n", 0)
        assert "[extra]" not in daemon.api.get("/smb/config").text

        # three changes, each rewriting smb.conf and reloading smbd
        make_share(daemon, "extra", {"alice": "rw"})
        r = daemon.api.patch("/shares/live", json={"description": "Live documents"})
        assert r.status_code == 200, r.text
        grant(daemon, "live", "bob", "ro")

        config = (daemon.state_dir / "samba" / "smb.conf").read_text()
        assert "\n[extra]\n" in config and "comment = Live documents" in config
        assert smbd_pid(daemon) == pid  # reloaded, not restarted
        assert Path(f"/proc/{pid}").exists()

        # the handle and the session opened before still work
        handle.write(b"after the reload\n", 18)
        assert handle.read(0, 100) == b"before the reload\nafter the reload\n"
        handle.close()
        # and the session sees the new share
        extra = alice.connect_tree("extra")
        note = alice.open("note.txt", write=True, tree=extra)
        note.write(b"new share, old session", 0)
        note.close()
        extra.disconnect()
        assert [s["user"] for s in status(daemon)["sessions"]] == ["alice"]

    assert (live / "journal.txt").read_bytes() == b"before the reload\nafter the reload\n"
    assert (live.parent / "extra" / "note.txt").read_bytes() == b"new share, old session"
    # new clients see the changes too
    assert "extra" in list_shares(daemon, "alice")
    shares = run_smbclient(daemon, "live", "ls", user="bob")
    assert shares.returncode == 0 and "journal.txt" in shares.stdout, shares.stdout
    with smb_user(daemon, "bob") as bob:
        assert bob.read("live", "journal.txt").startswith(b"before the reload")


def test_killed_smbd_is_restarted(daemon: Daemon, world: dict[str, Any]) -> None:
    pid = smbd_pid(daemon)
    conf = str(daemon.state_dir / "samba" / "smb.conf")
    # it is this daemon's smbd, not anyone else's
    assert f"--configfile={conf}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert run_smbclient(daemon, "live", "ls", user="alice").returncode == 0

    os.kill(pid, signal.SIGKILL)

    def answers() -> bool:
        if not (daemon.state_dir / "samba" / "pid" / "smbd.pid").exists():
            return False
        if smbd_pid(daemon) == pid:
            return False
        return run_smbclient(daemon, "live", "ls", user="alice").returncode == 0

    wait_for("a new smbd answers", answers, timeout=15)
    new_pid = smbd_pid(daemon)
    assert f"--configfile={conf}".encode() in Path(f"/proc/{new_pid}/cmdline").read_bytes()
    assert not Path(f"/proc/{pid}").exists()

    events = daemon.api.get("/events", params={"kind": "smb."}).json()
    restarted = [e for e in events if e["kind"] == "smb.restarted"]
    assert len(restarted) == 1, events
    assert restarted[0]["level"] == "warning"
    settings = json.loads(daemon.cli("smb", "settings", "--json").stdout)
    assert settings["running"] is True
    assert settings["port"] == daemon.smb_port
    assert settings["min_protocol"] == "SMB2_02"
    with smb_user(daemon, "alice") as alice:
        alice.write("live", "after-restart.txt", b"still here")
        assert alice.read("live", "after-restart.txt") == b"still here"


def test_cli_share_update_sets_smb_options(daemon: Daemon, world: dict[str, Any]) -> None:
    daemon.cli("share", "create", "cli-made", "--pool", "tank")
    daemon.cli("share", "grant", "cli-made", "--user", "alice", "--rw")
    daemon.cli(
        "share",
        "update",
        "cli-made",
        "--smb",
        "on",
        "--recycle",
        "--recycle-days",
        "7",
        "--abe",
    )
    smb = daemon.api.get("/shares/cli-made").json()["smb"]
    assert smb["enabled"] and smb["recycle"] and smb["access_based_enumeration"]
    assert smb["recycle_days"] == 7
    assert run_smbclient(daemon, "cli-made", "ls", user="alice").returncode == 0
