"""What a newcomer reads: suggestions, status, versions, refusals that say what to do."""

from __future__ import annotations

import json
import subprocess

import pytest

from speicher_testing import Daemon, speicher_executable

pytestmark = pytest.mark.system


def test_synonyms_suggest_our_verbs(daemon: Daemon) -> None:
    result = daemon.cli("share", "remove", "finance", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: No such command 'remove'. Did you mean 'delete'?"
    result = daemon.cli("user", "ls", check=False)
    assert "Did you mean 'list'?" in result.stderr


def test_status_and_version(daemon: Daemon) -> None:
    status = json.loads(daemon.cli("status", "--json").stdout)
    assert status["version"] and status["pools"] == []
    assert {s["name"] for s in status["services"]} >= {"api", "smb", "s3"}
    s3 = next(s for s in status["services"] if s["name"] == "s3")
    assert s3["running"] and s3["addresses"] == [f"http://127.0.0.1:{daemon.s3_port}"]
    text = daemon.cli("status").stdout
    assert "pools" in text and "services" in text and "alerts" in text
    version = json.loads(daemon.cli("version", "--json").stdout)
    assert version["cli"] == version["daemon"] == status["version"]


def test_ordinary_users_are_told_to_use_root_or_a_token(daemon: Daemon) -> None:
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            speicher_executable(),
            "pool",
            "list",
        ],
        env=daemon.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "run as root, or use --url https://HOST:8443 with a token" in result.stderr


def test_confirmations_say_what_is_lost(daemon: Daemon) -> None:
    r = daemon.api.post("/users", json={"name": "Bob.Smith", "password": "bob-password-1"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "bob.smith" and r.json()["file_access"] is True
    result = daemon.cli("user", "delete", "bob.smith", check=False)
    assert result.returncode == 2
    assert "their files stay" in result.stderr and "for good" not in result.stderr
    admin = daemon.api.get("/users/admin").json()
    assert admin["admin"] and admin["file_access"] is False and admin["uid"] is None


def test_locks_have_a_maximum(daemon: Daemon) -> None:
    for name in ("m1",):
        assert (
            daemon.api.post("/disks/virtual", json={"name": name, "size": "1G"}).status_code == 201
        )
    job = daemon.api.post("/pools", json={"name": "lockpool", "profile": "single", "disks": ["m1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    assert (
        daemon.api.post("/shares", json={"name": "locked", "pool": "lockpool"}).status_code == 201
    )
    r = daemon.api.post("/shares/locked/snapshots", json={"locked_until": "6379-01-01T00:00:00Z"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "locked_until"
    assert "max_lock_days" in r.json()["errors"][0]["reason"]
    result = daemon.cli("snapshot", "create", "locked", "--lock-days", "1")
    assert "nobody can delete this snapshot, share locked or its pool" in result.stderr
