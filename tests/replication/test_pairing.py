"""Pairing two real daemons for replication (docs/replication.md): the target's one-time code
pins its certificate, the source pairs through the CLI, and every wrong turn gets one clear
line and leaves nothing half-made on either side."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from conftest import _base
from speicher_testing import Daemon
from world import make_pool

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


def accept(target: Daemon, name: str) -> str:
    r = target.api.post("/replication/pairings", json={"name": name})
    assert r.status_code == 201, r.text
    code: str = r.json()["code"]
    return code


def test_the_source_pairs_with_the_code_and_pins_the_certificate(
    daemon: Daemon, target: Daemon
) -> None:
    out = target.cli("replication", "accept", "--name", "Office-A")
    code = next(w for w in out.stdout.split() if w.count("-") == 1 and len(w) > 40)
    assert target.api.get("/replication/pairings").json()[0]["state"] == "waiting"
    added = daemon.cli(
        "replication", "target", "add", "backup-site", target.https_url, "--code", code
    )
    assert "backup-site" in added.stdout
    [made] = daemon.api.get("/replication/targets").json()
    certificate = target.api.get("/system/certificate").json()["sha256"]
    assert made["fingerprint"] == certificate and made["remote_name"] == "office-a"
    [pairing] = target.api.get("/replication/pairings").json()
    assert pairing["state"] == "paired" and pairing["pool"] == "tank" and pairing["source"]
    # the code was for one pairing: a second source cannot use it
    again = daemon.cli(
        "replication", "target", "add", "other", target.https_url, "--code", code, check=False
    )
    assert again.returncode == 2, again.stdout + again.stderr
    assert "not valid, used already or expired" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert [t["name"] for t in daemon.api.get("/replication/targets").json()] == ["backup-site"]
    # the credential the source keeps is sealed, never shown by the API
    assert "credential" not in str(daemon.api.get("/replication/targets").json())
    assert daemon.api.delete("/replication/targets/backup-site").status_code == 204
    assert target.api.delete("/replication/pairings/office-a").status_code == 204


def test_a_code_naming_another_certificate_is_refused(daemon: Daemon, target: Daemon) -> None:
    code = accept(target, "mitm")
    secret, _, pin = code.rpartition("-")
    forged = f"{secret}-{'0' * len(pin)}"
    r = daemon.api.post(
        "/replication/targets", json={"name": "evil", "url": target.https_url, "code": forged}
    )
    assert r.status_code == 401, r.text
    assert "is not the one the pairing code names" in r.json()["detail"]
    # nothing was sent to the target: its code still waits
    assert {p["name"]: p["state"] for p in target.api.get("/replication/pairings").json()} == {
        "mitm": "waiting"
    }
    assert daemon.api.get("/replication/targets").json() == []
    assert target.api.delete("/replication/pairings/mitm").status_code == 204


def test_wrong_and_expired_codes_and_bad_input(daemon: Daemon, target: Daemon) -> None:
    code = accept(target, "late")
    pin = code.rpartition("-")[2]
    wrong = daemon.api.post(
        "/replication/targets",
        json={"name": "site-one", "url": target.https_url, "code": f"{'A' * 24}-{pin}"},
    )
    assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"], wrong.text
    # an hour later: the code is expired (the clock moved in the target's database)
    db = sqlite3.connect(target.state_dir / "speicher.db")
    try:
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(sep=" ")
        db.execute("UPDATE replication_pairings SET expires_at = ? WHERE name = 'late'", (past,))
        db.commit()
    finally:
        db.close()
    assert target.api.get("/replication/pairings").json()[0]["state"] == "expired"
    late = daemon.api.post(
        "/replication/targets", json={"name": "site-one", "url": target.https_url, "code": code}
    )
    assert late.status_code == 401 and "expired" in late.json()["detail"], late.text
    for body, field in (
        ({"name": "site-one", "url": f"http://127.0.0.1:{target.https_port}", "code": code}, "url"),
        ({"name": "site-one", "url": target.https_url, "code": "nonsense"}, "code"),
        ({"name": "-bad-", "url": target.https_url, "code": code}, "name"),
    ):
        r = daemon.api.post("/replication/targets", json=body)
        assert r.status_code == 422, r.text
        assert field in r.text
    down = daemon.api.post(
        "/replication/targets",
        json={"name": "site-one", "url": "https://127.0.0.1:9", "code": code},
    )
    assert down.status_code == 502 and "cannot reach" in down.json()["detail"], down.text
    assert daemon.api.get("/replication/targets").json() == []
    # on the target: a name twice, a pool that is not there
    assert target.api.post("/replication/pairings", json={"name": "late"}).status_code == 409
    r = target.api.post("/replication/pairings", json={"name": "second", "pool": "nope"})
    assert r.status_code == 404, r.text
    assert target.api.delete("/replication/pairings/late").status_code == 204


def test_the_peer_endpoint_needs_no_admin_but_gives_nothing_away(target: Daemon) -> None:
    r = httpx.post(
        f"{target.https_url}/replication/v1/pair",
        json={"secret": "A" * 24, "source": "x"},
        verify=False,  # noqa: S501 - the target's own self-signed certificate
    )
    assert r.status_code == 401 and "not valid" in r.json()["detail"]
    # the admin API stays closed to the same client
    admin = httpx.get(
        f"{target.https_url}/api/v1/replication/pairings",
        verify=False,  # noqa: S501 - the target's own self-signed certificate
    )
    assert admin.status_code == 401
