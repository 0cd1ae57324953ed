"""Through the API and the CLI: tokens expire and say who made them; weak passwords and
addresses that are not e-mail addresses are refused with the field named."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import httpx
import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system


def problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    if field is not None:
        assert field in {e["field"] for e in body["errors"]}, body
    return body


def bearer(daemon: Daemon, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{daemon.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_a_token_records_who_created_it(daemon: Daemon) -> None:
    by_admin = daemon.api.post("/tokens", json={"name": "by-admin"})  # HTTP Basic as admin
    assert by_admin.status_code == 201, by_admin.text
    assert by_admin.json()["created_by"] == "user:admin"
    with bearer(daemon, by_admin.json()["token"]) as api:
        by_token = api.post("/tokens", json={"name": "by-token"})
    assert by_token.status_code == 201 and by_token.json()["created_by"] == "token:by-admin"
    by_root = json.loads(daemon.cli("token", "create", "by-root", "--json").stdout)  # socket
    assert by_root["created_by"] == "root"

    listed = {t["name"]: t for t in daemon.api.get("/tokens").json()}
    assert {n: t["created_by"] for n, t in listed.items()} == {
        "by-admin": "user:admin",
        "by-root": "root",
        "by-token": "token:by-admin",
    }
    assert all(t["expires_at"] is None and t["expired"] is False for t in listed.values())
    table = daemon.cli("token", "list").stdout
    assert "CREATED BY" in table and "EXPIRES" in table
    line = next(x for x in table.splitlines() if x.startswith("by-token"))
    assert "token:by-admin" in line
    for name in listed:
        assert daemon.api.delete(f"/tokens/{name}").status_code == 204


def test_token_expiry_is_checked_when_made(daemon: Daemon) -> None:
    api = daemon.api
    now = dt.datetime.now(dt.UTC)
    problem(api.post("/tokens", json={"name": "t", "expires_days": 0}), 422, "expires_days")
    problem(api.post("/tokens", json={"name": "t", "expires_days": 10**30}), 422, "expires_days")
    past = (now - dt.timedelta(minutes=1)).isoformat()
    assert (
        "future"
        in problem(api.post("/tokens", json={"name": "t", "expires_at": past}), 422, "expires_at")[
            "detail"
        ]
    )
    both = {"name": "t", "expires_days": 1, "expires_at": "2099-01-01"}
    problem(api.post("/tokens", json=both), 422, "expires_at")
    cli = daemon.cli("token", "create", "t", "--expires-at", "yesterday", check=False)
    assert cli.returncode == 2 and cli.stderr.startswith("error:") and "expires_at" in cli.stderr
    assert api.get("/tokens").json() == []

    out = daemon.cli("token", "create", "ci", "--expires-days", "30", "--json").stdout
    made = json.loads(out)
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert abs((when(made["expires_at"]) - expected).total_seconds()) < 600
    shown = daemon.cli("token", "list").stdout
    assert f"{expected:%Y-%m-%d}" in next(x for x in shown.splitlines() if x.startswith("ci"))
    printed = daemon.cli("token", "create", "nightly", "--expires-at", "2099-01-31").stdout
    assert "valid until 2099-01-31 00:00 UTC" in printed
    nightly = next(t for t in api.get("/tokens").json() if t["name"] == "nightly")
    assert when(nightly["expires_at"]) == dt.datetime(2099, 1, 31, tzinfo=dt.UTC)
    for name in ("ci", "nightly"):
        assert api.delete(f"/tokens/{name}").status_code == 204


def test_an_expired_token_is_refused_and_says_so(daemon: Daemon) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    made = daemon.api.post("/tokens", json={"name": "brief", "expires_at": soon.isoformat()})
    assert made.status_code == 201, made.text
    with bearer(daemon, made.json()["token"]) as api:
        assert api.get("/pools").status_code == 200  # still valid
        deadline = time.monotonic() + 60
        while (r := api.get("/pools")).status_code == 200:
            assert time.monotonic() < deadline, "the token never expired"
            time.sleep(0.5)
        assert problem(r, 401)["detail"] == "the API token has expired"
        assert problem(api.post("/tokens", json={"name": "escape"}), 401)
    listed = daemon.api.get("/tokens").json()
    assert [(t["name"], t["expired"]) for t in listed] == [("brief", True)]
    line = next(x for x in daemon.cli("token", "list").stdout.splitlines() if "brief" in x)
    assert "expired" in line
    # a wrong secret for the same key is "not valid", not "expired": nothing is learnt
    forged = made.json()["token"][:-5] + "AAAAA"
    with bearer(daemon, forged) as api:
        assert problem(api.get("/pools"), 401)["detail"] == "the API token is not valid"
    assert daemon.api.delete("/tokens/brief").status_code == 204


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("12345678", "most common passwords"),
        ("Password", "most common passwords"),
        (" " * 8, "only spaces"),
        ("carol-smith", "user name"),
    ],
)
def test_weak_passwords_are_refused(daemon: Daemon, password: str, reason: str) -> None:
    r = daemon.api.post("/users", json={"name": "carol-smith", "password": password})
    body = problem(r, 422, "password")
    assert reason in body["detail"]
    assert daemon.api.get("/users/carol-smith").status_code == 404


def test_a_weak_new_password_is_refused_and_the_old_one_stays(daemon: Daemon) -> None:
    api = daemon.api
    made = api.post("/users", json={"name": "dan", "password": "dan-first-password"})
    assert made.status_code == 201, made.text
    problem(api.put("/users/dan/password", json={"password": "iloveyou"}), 422, "password")
    problem(api.put("/users/dan/password", json={"password": "DAN"}), 422, "password")
    cli = daemon.cli("user", "passwd", "dan", "--password-stdin", input="qwertyuiop\n", check=False)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "password" in cli.stderr
    cli = daemon.cli("user", "create", "erik", "--password-stdin", input="erik\n", check=False)
    assert cli.returncode == 2 and "password" in cli.stderr
    api.patch("/users/dan", json={"admin": True}).raise_for_status()
    with httpx.Client(base_url=f"{daemon.url}/api/v1", auth=("dan", "dan-first-password")) as dan:
        assert dan.get("/users").status_code == 200
    assert api.delete("/users/dan").status_code == 204


def test_email_addresses_are_validated(daemon: Daemon) -> None:
    api = daemon.api
    user = {"name": "fay", "password": "fay-long-password"}
    for bad in ("fay", "fay@", "fay@example", "Fay <fay@example.com>", "fay@example.com\nBcc: x"):
        body = problem(api.post("/users", json={**user, "email": bad}), 422, "email")
        assert "e-mail address" in body["detail"]
    assert api.get("/users/fay").status_code == 404
    made = api.post("/users", json={**user, "email": "Fay@Example.COM"})
    assert made.status_code == 201 and made.json()["email"] == "Fay@example.com"
    problem(api.patch("/users/fay", json={"email": "not an address"}), 422, "email")
    assert api.get("/users/fay").json()["email"] == "Fay@example.com"
    assert api.patch("/users/fay", json={"email": ""}).json()["email"] == ""
    assert api.delete("/users/fay").status_code == 204
