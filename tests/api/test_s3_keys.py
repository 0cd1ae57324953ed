"""Users' S3 access keys and the shares' S3 switch, through the REST API and the CLI.

The steps share one daemon and build on each other (the module runs on one xdist worker)."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system


def _checked(response: httpx.Response) -> None:
    response.read()
    assert "Traceback" not in response.text, response.text
    assert response.status_code < 500, (response.request.url, response.text)


@pytest.fixture(scope="module", autouse=True)
def world(daemon: Daemon) -> Iterator[None]:
    daemon.api.event_hooks["response"].append(_checked)
    api = daemon.api
    assert api.post("/disks/virtual", json={"name": "k1", "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["k1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    for user in ("alice", "bob"):
        r = api.post("/users", json={"name": user, "password": f"{user}-password-1"})
        assert r.status_code == 201, r.text
    yield
    daemon.api.event_hooks["response"].remove(_checked)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.url, response.text)
    return None if status == 204 else response.json()


def test_a_key_is_shown_once(daemon: Daemon) -> None:
    made = ok(daemon.api.post("/users/alice/s3-keys"), 201)
    assert re.fullmatch(r"SPK[A-Z0-9]{17}", made["access_key"]), made
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", made["secret"]), made
    assert made["user"] == "alice"
    listed = ok(daemon.api.get("/users/alice/s3-keys"))
    assert [k["access_key"] for k in listed] == [made["access_key"]]
    assert "secret" not in json.dumps(listed) and made["secret"] not in json.dumps(listed)
    other = ok(daemon.api.post("/users/ALICE/s3-keys"), 201)  # names are case-insensitive
    assert other["access_key"] != made["access_key"] and other["secret"] != made["secret"]
    assert ok(daemon.api.get("/users/bob/s3-keys")) == []


def test_secrets_are_sealed_at_rest(daemon: Daemon) -> None:
    made = ok(daemon.api.post("/users/bob/s3-keys"), 201)
    with sqlite3.connect(daemon.state_dir / "speicher.db") as db:
        rows = db.execute("SELECT access_key, secret_sealed FROM s3_keys").fetchall()
    assert made["access_key"] in {r[0] for r in rows}
    for _key, sealed in rows:
        assert made["secret"] not in sealed and len(sealed) > 80
    seal = daemon.state_dir / "s3" / "seal.key"
    assert stat.S_IMODE(seal.stat().st_mode) == 0o600
    assert stat.S_IMODE(seal.parent.stat().st_mode) == 0o700
    raw = (daemon.state_dir / "speicher.db").read_bytes()
    assert made["secret"].encode() not in raw


def test_delete_a_key(daemon: Daemon) -> None:
    keys = [k["access_key"] for k in ok(daemon.api.get("/users/alice/s3-keys"))]
    ok(daemon.api.delete(f"/users/alice/s3-keys/{keys[0].lower()}"), 204)
    assert [k["access_key"] for k in ok(daemon.api.get("/users/alice/s3-keys"))] == keys[1:]
    r = daemon.api.delete(f"/users/alice/s3-keys/{keys[0]}")
    assert r.status_code == 404 and keys[0] in r.json()["detail"]
    bobs = ok(daemon.api.get("/users/bob/s3-keys"))[0]["access_key"]
    assert daemon.api.delete(f"/users/alice/s3-keys/{bobs}").status_code == 404  # not hers
    assert daemon.api.get("/users/nobody/s3-keys").status_code == 404
    assert daemon.api.post("/users/nobody/s3-keys").status_code == 404


def test_ten_keys_at_most(daemon: Daemon) -> None:
    have = len(ok(daemon.api.get("/users/bob/s3-keys")))
    for _ in range(10 - have):
        ok(daemon.api.post("/users/bob/s3-keys"), 201)
    r = daemon.api.post("/users/bob/s3-keys")
    assert r.status_code == 409 and "delete one first" in r.json()["detail"]
    assert len(ok(daemon.api.get("/users/bob/s3-keys"))) == 10


def test_keys_go_with_their_user(daemon: Daemon) -> None:
    ok(daemon.api.delete("/users/bob"), 204)
    with sqlite3.connect(daemon.state_dir / "speicher.db") as db:
        left = db.execute("SELECT count(*) FROM s3_keys").fetchone()[0]
    assert left == 1  # alice's one
    ok(daemon.api.post("/users", json={"name": "bob", "password": "bob-password-1"}), 201)
    assert ok(daemon.api.get("/users/bob/s3-keys")) == []


def test_the_s3_switch(daemon: Daemon) -> None:
    share = ok(daemon.api.post("/shares", json={"name": "backups", "pool": "tank"}), 201)
    assert share["s3"] is False
    assert ok(daemon.api.patch("/shares/backups", json={"s3": True}))["s3"] is True
    assert ok(daemon.api.patch("/shares/backups", json={"description": "x"}))["s3"] is True
    made = ok(daemon.api.post("/shares", json={"name": "media", "pool": "tank", "s3": True}), 201)
    assert made["s3"] is True
    # names S3 cannot take as buckets are refused, naming the field
    for body in (
        {"name": "hr_dept", "pool": "tank", "s3": True},
        {"name": "hr", "pool": "tank", "s3": True},
    ):
        r = daemon.api.post("/shares", json=body)
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["s3"], r.text
        assert daemon.api.get(f"/shares/{body['name']}").status_code == 404
    ok(daemon.api.post("/shares", json={"name": "hr_dept", "pool": "tank"}), 201)
    r = daemon.api.patch("/shares/hr_dept", json={"s3": True})
    assert r.status_code == 422 and "cannot be a bucket" in r.text
    assert ok(daemon.api.get("/shares/hr_dept"))["s3"] is False


def test_the_cli(daemon: Daemon) -> None:
    out = daemon.cli("user", "s3-key", "create", "bob").stdout
    found = re.search(r"access key: (SPK[A-Z0-9]{17})\nsecret key: (\S{40})\n", out)
    assert found is not None and "not shown again" in out, out
    access_key, secret = found.groups()
    listed = daemon.cli("user", "s3-key", "list", "bob").stdout
    assert access_key in listed and secret not in listed
    as_json = json.loads(daemon.cli("user", "s3-key", "list", "bob", "--json").stdout)
    assert [k["access_key"] for k in as_json] == [access_key]
    out = daemon.cli("user", "s3-key", "delete", "bob", access_key).stdout
    assert out.strip() == f"S3 key {access_key} of bob deleted"
    gone = daemon.cli("user", "s3-key", "delete", "bob", access_key, check=False)
    assert (
        gone.returncode == 2
        and gone.stderr.strip() == f"error: user bob has no S3 key {access_key}"
    )
    assert "bob has no S3 keys" in daemon.cli("user", "s3-key", "list", "bob").stdout
    refused = daemon.cli("share", "update", "hr_dept", "--s3", "on", check=False)
    assert refused.returncode == 2 and "cannot be a bucket" in refused.stderr
    daemon.cli("share", "update", "backups", "--s3", "off")
    assert json.loads(daemon.cli("share", "show", "backups", "--json").stdout)["s3"] is False
