"""The whole storage-core scenario through the REST API, as a program or the web console uses it.

The steps build on each other and share one daemon (the module runs on one xdist worker).
Every response any client of this module receives is checked for a traceback and a 5xx."""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# tests/ is on mypy's path when it checks the project (`mypy`), not when given one file
from fsaccess import as_user, can_write, read
from speicher_testing import (
    ADMIN_PASSWORD,
    Daemon,
)

pytestmark = pytest.mark.system

GIB = 1024**3
MIB = 1024**2
PROBLEM_KEYS = {"type", "title", "status", "detail", "errors"}


def _checked(response: httpx.Response) -> None:
    """Response hook: no answer of the daemon shows a traceback or is an internal error."""
    response.read()
    assert "Traceback" not in response.text, response.text
    assert response.status_code < 500, (response.request.url, response.text)


def client(daemon: Daemon, **kwargs: Any) -> httpx.Client:
    """A client of the API with the checks of this module, and no credentials unless given.
    Like the CLI it says it is no browser (``X-Speicher-Request``), so bodyless state changes
    reach the authentication checks."""
    headers = {"X-Speicher-Request": "1", **kwargs.pop("headers", {})}
    return httpx.Client(
        base_url=f"{daemon.url}/api/v1",
        timeout=120,
        event_hooks={"response": [_checked]},
        headers=headers,
        **kwargs,
    )


@pytest.fixture(scope="module", autouse=True)
def checked(daemon: Daemon) -> Iterator[None]:
    daemon.api.event_hooks["response"].append(_checked)
    yield
    daemon.api.event_hooks["response"].remove(_checked)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.url, response.text)
    if status == 204:
        assert response.content == b""
        return None
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    """Check an RFC 9457 problem document; ``fields`` are exactly the fields it must blame."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS, body
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    for error in body["errors"]:
        assert set(error) == {"field", "reason"} and error["reason"], body
    if fields:
        assert {e["field"] for e in body["errors"]} == set(fields), body
    return body


def reasons(body: dict[str, Any], field: str) -> str:
    return " | ".join(e["reason"] for e in body["errors"] if e["field"] == field)


def run_job(daemon: Daemon, response: httpx.Response, kind: str, target: str) -> dict[str, Any]:
    """A 202 answer starts a job: wait for it and check that it succeeded."""
    job = ok(response, 202)
    assert job["kind"] == kind and job["target"] == target, job
    assert job["state"] == "running" and job["finished_at"] is None, job
    done: dict[str, Any] = daemon.wait_job(job)
    assert done["state"] == "succeeded", done
    assert done["progress"] == 100 and done["error"] == "" and done["finished_at"], done
    assert ok(daemon.api.get(f"/jobs/{job['id']}")) == done
    return done


def pool_disks(daemon: Daemon, pool: str) -> list[str]:
    return [d["disk"] for d in ok(daemon.api.get(f"/pools/{pool}"))["disks"]]


def disk_states(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in ok(daemon.api.get("/disks"))}


def getfacl(path: str) -> str:
    return subprocess.run(
        ["getfacl", "--numeric", "--omit-header", "--absolute-names", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


# -- 1. the API describes itself -------------------------------------------------------------


def test_openapi_and_docs(daemon: Daemon) -> None:
    with client(daemon) as anonymous:
        doc = ok(anonymous.get(f"{daemon.url}/api/openapi.json"))  # no credentials needed
        page = anonymous.get(f"{daemon.url}/api/docs")
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "Speicher" and doc["info"]["version"]
    paths = doc["paths"]
    for path in (
        "/api/v1/disks",
        "/api/v1/disks/virtual",
        "/api/v1/disks/virtual/{name}",
        "/api/v1/pools",
        "/api/v1/pools/{name}",
        "/api/v1/pools/{name}/disks",
        "/api/v1/pools/{name}/disks/{disk}",
        "/api/v1/pools/{name}/replace",
        "/api/v1/shares",
        "/api/v1/shares/{name}",
        "/api/v1/shares/{name}/grants",
        "/api/v1/shares/{name}/grants/user/{user}",
        "/api/v1/shares/{name}/grants/group/{group}",
        "/api/v1/users",
        "/api/v1/users/{name}",
        "/api/v1/users/{name}/password",
        "/api/v1/groups",
        "/api/v1/groups/{name}/members/{user}",
        "/api/v1/tokens",
        "/api/v1/tokens/{name}",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/events",
        "/api/v1/system",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/pools"]) == {"get", "post"}
    assert "202" in paths["/api/v1/pools"]["post"]["responses"]
    assert "201" in paths["/api/v1/shares"]["post"]["responses"]
    assert "204" in paths["/api/v1/pools/{name}"]["delete"]["responses"]
    for code in ("401", "403", "404", "409", "422"):
        content = paths["/api/v1/pools"]["post"]["responses"][code]["content"]
        assert "application/problem+json" in content, (code, content)
    schemas = doc["components"]["schemas"]
    for name in ("PoolInfo", "ShareInfo", "UserInfo", "DiskInfo", "JobInfo", "ProblemDocument"):
        properties = schemas[name]["properties"]
        assert properties, name
        undocumented = [p for p, spec in properties.items() if not spec.get("description")]
        assert undocumented == [], (name, undocumented)
    assert schemas["PoolCreate"]["properties"]["profile"]["enum"] == [
        "single",
        "raid1",
        "raid1c3",
        "raid10",
        "raid5",
        "raid6",
    ]
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower() and "/api/openapi.json" in page.text
    # what the page loads from the daemon itself is there, without credentials too
    with client(daemon) as anonymous:
        for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
            assert anonymous.get(f"{daemon.url}{asset}").status_code == 200, asset


def test_openapi_problem_schema_is_under_problem_json(daemon: Daemon) -> None:
    doc = ok(daemon.api.get(f"{daemon.url}/api/openapi.json"))
    content = doc["paths"]["/api/v1/pools"]["post"]["responses"]["422"]["content"]
    assert content["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ProblemDocument"
    }
    assert "application/json" not in content


# -- 2. who may call it ----------------------------------------------------------------------


def test_auth_and_tokens(daemon: Daemon) -> None:
    with client(daemon) as anonymous:
        response = anonymous.get("/pools")
        body = problem(response, 401)
        # never a Basic challenge: browsers would cache the password for cross-site requests
        assert response.headers["www-authenticate"] == 'Bearer realm="Speicher"'
        assert "Bearer" in body["detail"] and "Basic" in body["detail"]
        assert body["title"] == "Unauthorized" and body["errors"] == []
        # every route is protected, reading ones too
        for path in ("/disks", "/shares", "/users", "/tokens", "/jobs", "/events", "/system"):
            problem(anonymous.get(path), 401)
        problem(anonymous.post("/disks/virtual", json={"name": "x1", "size": "2G"}), 401)
        problem(anonymous.delete("/users/admin"), 401)

        wrong = anonymous.get("/pools", auth=("admin", "not-the-password"))
        assert "wrong user name or password" in problem(wrong, 401)["detail"]
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        problem(anonymous.get("/pools", auth=("nobody1", "whatever-password")), 401)
        malformed = anonymous.get("/pools", headers={"Authorization": "Basic !!!not-base64"})
        assert "malformed" in problem(malformed, 401)["detail"]
        bad_token = anonymous.get("/pools", headers={"Authorization": "Bearer spk_0_wrong"})
        assert "not valid" in problem(bad_token, 401)["detail"]

        # a user who is not an admin knows their password, but may not use the API
        mallory = ok(
            daemon.api.post("/users", json={"name": "mallory", "password": "mallory-password"}),
            201,
        )
        assert mallory["admin"] is False and mallory["enabled"] is True
        body = problem(anonymous.get("/pools", auth=("mallory", "mallory-password")), 403)
        assert "not an administrator" in body["detail"]
        # a disabled user cannot log in at all, not even to be refused as a non-admin
        ok(daemon.api.patch("/users/mallory", json={"enabled": False}))
        problem(anonymous.get("/pools", auth=("mallory", "mallory-password")), 401)
        ok(daemon.api.delete("/users/mallory"), 204)
        problem(anonymous.get("/pools", auth=("mallory", "mallory-password")), 401)

    # API tokens: the secret is shown once
    assert ok(daemon.api.get("/tokens")) == []
    created = ok(daemon.api.post("/tokens", json={"name": "monitoring"}), 201)
    token = created["token"]
    assert token.startswith(f"spk_{created['key']}_") and len(token) > 40
    assert created["name"] == "monitoring" and created["last_used_at"] is None
    problem(daemon.api.post("/tokens", json={"name": "monitoring"}), 409)
    problem(daemon.api.post("/tokens", json={"name": "bad name!"}), 422, "name")
    problem(daemon.api.post("/tokens", json={}), 422, "name")
    listed = daemon.api.get("/tokens")
    assert [(t["name"], t["key"]) for t in ok(listed)] == [("monitoring", created["key"])]
    assert "token" not in ok(listed)[0]
    secret = token.removeprefix(f"spk_{created['key']}_")  # it may hold "_" itself
    assert token not in listed.text and secret not in listed.text

    with client(daemon, headers={"Authorization": f"Bearer {token}"}) as bearer:
        assert ok(bearer.get("/pools")) == []
        assert ok(bearer.get("/system"))["version"]
        # a token is an admin: it may change things, too
        ok(bearer.post("/tokens", json={"name": "second"}), 201)
        ok(bearer.delete("/tokens/second"), 204)
    assert ok(daemon.api.get("/tokens"))[0]["last_used_at"] is not None
    # a wrong secret with the right key is refused
    forged = token[: -len(token.rsplit("_", 1)[1])] + "A" * 43
    with client(daemon, headers={"Authorization": f"Bearer {forged}"}) as bearer:
        problem(bearer.get("/pools"), 401)

    ok(daemon.api.delete("/tokens/monitoring"), 204)
    problem(daemon.api.delete("/tokens/monitoring"), 404)
    assert ok(daemon.api.get("/tokens")) == []
    with client(daemon, headers={"Authorization": f"Bearer {token}"}) as bearer:
        assert "not valid" in problem(bearer.get("/pools"), 401)["detail"]


def test_unknown_routes_and_malformed_bodies(daemon: Daemon) -> None:
    body = problem(daemon.api.get("/nothing"), 404)
    assert body["title"] == "Not Found"
    response = daemon.api.put("/pools")
    assert problem(response, 405)["title"] == "Method Not Allowed"
    assert "GET" in response.headers["allow"]
    malformed = daemon.api.post(
        "/disks/virtual", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert "JSON" in problem(malformed, 422)["detail"]
    # no body at all: the one problem is with the body as a whole
    body = problem(daemon.api.post("/disks/virtual"), 422, "")
    assert "required" in body["errors"][0]["reason"].lower()


def test_malformed_json_blames_no_field(daemon: Daemon) -> None:
    malformed = daemon.api.post(
        "/disks/virtual", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    problem(malformed, 422, "")


def test_malformed_json_without_credentials_is_401(daemon: Daemon) -> None:
    with client(daemon) as anonymous:
        response = anonymous.post(
            "/disks/virtual", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    problem(response, 401)


# -- 3. virtual disks ------------------------------------------------------------------------


def test_virtual_disks(daemon: Daemon) -> None:
    for name in ("d1", "d2", "d3", "d4"):
        disk = ok(daemon.api.post("/disks/virtual", json={"name": name, "size": "2G"}), 201)
        assert disk["name"] == name and disk["kind"] == "virtual" and disk["size"] == 2 * GIB
        assert disk["state"] == "available" and disk["used_by"] == ""
    disks = disk_states(daemon)
    for name in ("d1", "d2", "d3", "d4"):
        assert disks[name]["kind"] == "virtual"
        assert disks[name]["size"] == 2 * GIB
        assert disks[name]["state"] == "available"
        assert disks[name]["device"].startswith("/dev/loop")
        backing = Path(disks[name]["backing_file"])
        assert backing.is_relative_to(daemon.state_dir)
        assert backing.stat().st_size == 2 * GIB and backing.stat().st_blocks == 0  # sparse

    # every problem with a request is listed at once, each naming its field
    body = problem(
        daemon.api.post("/disks/virtual", json={"name": "Bad Name!", "size": "lots"}),
        422,
        "name",
        "size",
    )
    assert "lots" in reasons(body, "size")
    body = problem(daemon.api.post("/disks/virtual", json={"name": "tiny", "size": "10M"}), 422)
    assert "at least 1G" in reasons(body, "size")
    problem(daemon.api.post("/disks/virtual", json={"name": "huge", "size": "65T"}), 422, "size")
    # the request's shape is checked first, with the same kind of answer
    problem(daemon.api.post("/disks/virtual", json={"name": "nosize"}), 422, "size")
    problem(daemon.api.post("/disks/virtual", json={"size": 5}), 422, "name", "size")
    problem(daemon.api.post("/disks/virtual", json=["d5"]), 422)
    assert (
        "already exists"
        in problem(daemon.api.post("/disks/virtual", json={"name": "d1", "size": "2G"}), 409)[
            "detail"
        ]
    )
    problem(daemon.api.delete("/disks/virtual/nope"), 404)
    assert not (daemon.state_dir / "disks" / "tiny.img").exists()
    assert set(n for n, d in disk_states(daemon).items() if d["kind"] == "virtual") == {
        "d1",
        "d2",
        "d3",
        "d4",
    }


# -- 4. pools --------------------------------------------------------------------------------


def test_pool_create_and_show(daemon: Daemon) -> None:
    body = problem(
        daemon.api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": ["d1"]}),
        422,
        "disks",
    )
    assert "at least 2" in reasons(body, "disks")
    problem(
        daemon.api.post("/pools", json={"name": "tank", "profile": "raid7", "disks": ["d1", "d2"]}),
        422,
        "profile",
    )
    problem(
        daemon.api.post(
            "/pools", json={"name": "Tank!", "profile": "raid1", "disks": ["d1", "nope"]}
        ),
        422,
        "name",
        "disks",
    )
    problem(
        daemon.api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": ["d1", "d1"]}),
        422,
        "disks",
    )
    assert ok(daemon.api.get("/pools")) == []

    done = run_job(
        daemon,
        daemon.api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": ["d1", "d2"]}),
        "pool.create",
        "tank",
    )
    assert "tank" in done["message"]
    pool = ok(daemon.api.get("/pools/tank"))
    assert pool["name"] == "tank" and pool["profile"] == "raid1"
    assert pool["state"] == "ready" and pool["health"] == "ok"
    assert [d["disk"] for d in pool["disks"]] == ["d1", "d2"]
    assert all(
        d["state"] == "online" and d["device"].startswith("/dev/loop") for d in pool["disks"]
    )
    assert GIB < pool["size"] <= 2 * GIB  # raid1: half the raw space
    assert 0 < pool["free"] <= pool["size"] and pool["used"] >= 0
    assert pool["shares"] == [] and len(pool["uuid"]) == 36
    assert pool["mountpoint"] == str(daemon.mount_root / "tank")
    assert os.path.ismount(pool["mountpoint"])
    assert [p["name"] for p in ok(daemon.api.get("/pools"))] == ["tank"]
    disks = disk_states(daemon)
    assert disks["d1"]["state"] == "in-use" and disks["d1"]["used_by"] == "pool:tank"

    body = problem(
        daemon.api.post("/pools", json={"name": "other", "profile": "single", "disks": ["d1"]}),
        422,
        "disks",
    )
    assert "already used by pool 'tank'" in reasons(body, "disks")
    body = problem(
        daemon.api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["d3"]}),
        409,
        "name",
    )
    assert "already exists" in reasons(body, "name")
    assert "used by pool 'tank'" in problem(daemon.api.delete("/disks/virtual/d1"), 409)["detail"]
    problem(daemon.api.get("/pools/nope"), 404)
    problem(daemon.api.get("/jobs/999999"), 404)
    problem(daemon.api.get("/jobs/not-a-number"), 422, "job_id")


def test_pool_disk_changes(daemon: Daemon) -> None:
    run_job(
        daemon, daemon.api.post("/pools/tank/disks", json={"disk": "d3"}), "pool.add-disk", "tank"
    )
    assert pool_disks(daemon, "tank") == ["d1", "d2", "d3"]
    pool = ok(daemon.api.get("/pools/tank"))
    assert pool["health"] == "ok" and all(d["state"] == "online" for d in pool["disks"])
    assert pool["size"] > 2 * GIB  # three 2G disks in raid1: 3G usable
    body = problem(daemon.api.post("/pools/tank/disks", json={"disk": "d3"}), 422, "disk")
    assert "already used" in reasons(body, "disk")
    problem(daemon.api.post("/pools/tank/disks", json={"disk": "nope"}), 422, "disk")
    problem(daemon.api.post("/pools/nope/disks", json={"disk": "d4"}), 404)

    run_job(daemon, daemon.api.delete("/pools/tank/disks/d3"), "pool.remove-disk", "tank")
    assert pool_disks(daemon, "tank") == ["d1", "d2"]
    assert ok(daemon.api.get("/pools/tank"))["health"] == "ok"
    assert disk_states(daemon)["d3"]["state"] == "available"
    body = problem(daemon.api.delete("/pools/tank/disks/d2"), 422, "disk")
    assert "needs at least 2" in reasons(body, "disk")
    problem(daemon.api.delete("/pools/tank/disks/d4"), 422, "disk")

    problem(
        daemon.api.post("/pools/tank/replace", json={"old": "d3", "new": "d1"}), 422, "old", "new"
    )
    problem(daemon.api.post("/pools/tank/replace", json={"old": "d2"}), 422, "new")
    done = run_job(
        daemon,
        daemon.api.post("/pools/tank/replace", json={"old": "d2", "new": "d4"}),
        "pool.replace-disk",
        "tank",
    )
    assert "d4" in done["message"]
    pool = ok(daemon.api.get("/pools/tank"))
    assert [d["disk"] for d in pool["disks"]] == ["d1", "d4"]
    assert pool["health"] == "ok" and all(d["state"] == "online" for d in pool["disks"])
    disks = disk_states(daemon)
    assert disks["d2"]["state"] == "available" and disks["d3"]["state"] == "available"
    assert disks["d4"]["used_by"] == "pool:tank"

    # a second pool, so that listing shares by pool has something to tell apart
    run_job(
        daemon,
        daemon.api.post("/pools", json={"name": "scratch", "profile": "single", "disks": ["d3"]}),
        "pool.create",
        "scratch",
    )
    assert [p["name"] for p in ok(daemon.api.get("/pools"))] == ["scratch", "tank"]


# -- 5. shares -------------------------------------------------------------------------------


def test_shares(daemon: Daemon) -> None:
    share = ok(
        daemon.api.post(
            "/shares",
            json={"name": "finance", "pool": "tank", "quota": "50M", "compression": "zstd"},
        ),
        201,
    )
    assert share["name"] == "finance" and share["pool"] == "tank"
    assert share["quota"] == 50 * MIB and share["compression"] == "zstd"
    assert share["grants"] == [] and share["description"] == ""
    assert share["path"] == str(daemon.mount_root / "tank" / "finance")
    assert Path(share["path"]).is_dir()
    prop = subprocess.run(
        ["btrfs", "property", "get", share["path"], "compression"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert prop.stdout.strip() == "compression=zstd"
    assert ok(daemon.api.get("/shares/finance")) == share
    assert ok(daemon.api.get("/pools/tank"))["shares"] == ["finance"]

    body = problem(daemon.api.post("/shares", json={"name": "finance", "pool": "tank"}), 409)
    assert "already exists" in reasons(body, "name")
    body = problem(
        daemon.api.post("/shares", json={"name": "Bad.Name", "pool": "nope", "quota": "lots"}),
        422,
        "name",
        "pool",
        "quota",
    )
    assert "does not exist" in reasons(body, "pool")
    problem(
        daemon.api.post("/shares", json={"name": "zipped", "pool": "tank", "compression": "xz"}),
        422,
        "compression",
    )
    problem(
        daemon.api.post("/shares", json={"name": "long", "pool": "tank", "description": "x" * 257}),
        422,
        "description",
    )
    problem(daemon.api.post("/shares", json={"name": "admin", "pool": "tank"}), 422, "name")
    problem(daemon.api.get("/shares/nope"), 404)

    temp = ok(daemon.api.post("/shares", json={"name": "temp", "pool": "scratch"}), 201)
    assert temp["quota"] is None and temp["compression"] == ""
    assert [s["name"] for s in ok(daemon.api.get("/shares"))] == ["finance", "temp"]
    assert [s["name"] for s in ok(daemon.api.get("/shares", params={"pool": "tank"}))] == [
        "finance"
    ]
    assert [s["name"] for s in ok(daemon.api.get("/shares", params={"pool": "scratch"}))] == [
        "temp"
    ]
    assert ok(daemon.api.get("/shares", params={"pool": "nope"})) == []

    changed = ok(daemon.api.patch("/shares/finance", json={"description": "Money matters"}))
    assert changed["description"] == "Money matters"
    assert changed["quota"] == 50 * MIB and changed["compression"] == "zstd"  # left as they were
    problem(daemon.api.patch("/shares/finance", json={"quota": "lots"}), 422, "quota")
    problem(daemon.api.patch("/shares/finance", json={"quota": "10K"}), 422, "quota")
    problem(daemon.api.patch("/shares/finance", json={"compression": "xz"}), 422, "compression")
    problem(daemon.api.patch("/shares/nope", json={"description": "x"}), 404)
    changed = ok(daemon.api.patch("/shares/temp", json={"quota": "20M", "compression": "lzo"}))
    assert changed["quota"] == 20 * MIB and changed["compression"] == "lzo"
    changed = ok(daemon.api.patch("/shares/temp", json={"quota": "none", "compression": ""}))
    assert changed["quota"] is None and changed["compression"] == ""


# -- 6. users and groups ---------------------------------------------------------------------


def test_users(daemon: Daemon) -> None:
    for name in ("alice", "bob", "carol"):
        user = ok(
            daemon.api.post(
                "/users",
                json={"name": name, "password": f"{name}-password", "full_name": name.title()},
            ),
            201,
        )
        assert user["name"] == name and user["full_name"] == name.title()
        assert user["admin"] is False and user["enabled"] is True and user["groups"] == []
        assert user["unix_name"] == daemon.unix_name(name)
        assert pwd.getpwnam(daemon.unix_name(name)).pw_uid == user["uid"]
        assert "password" not in user and "password_hash" not in user
    body = problem(
        daemon.api.post("/users", json={"name": "dave", "password": "short"}), 422, "password"
    )
    assert "at least 8" in reasons(body, "password")
    with pytest.raises(KeyError):
        pwd.getpwnam(daemon.unix_name("dave"))
    body = problem(
        daemon.api.post("/users", json={"name": "alice", "password": "another-password"}),
        409,
        "name",
    )
    assert "already exists" in reasons(body, "name")
    problem(
        daemon.api.post("/users", json={"name": "Bad Name", "password": "x"}),
        422,
        "name",
        "password",
    )
    problem(daemon.api.post("/users", json={"name": "root", "password": "root-password"}), 422)
    problem(daemon.api.post("/users", json={"name": "erin"}), 422, "password")

    users = {u["name"]: u for u in ok(daemon.api.get("/users"))}
    assert {"admin", "alice", "bob", "carol"} == set(users)
    assert users["admin"]["admin"] is True
    uids = {users[n]["uid"] for n in ("alice", "bob", "carol")}
    assert len(uids) == 3 and min(uids) >= 20000

    alice = ok(daemon.api.get("/users/alice"))
    assert alice == users["alice"]
    changed = ok(
        daemon.api.patch(
            "/users/alice", json={"full_name": "Alice Adams", "email": "a@example.com"}
        )
    )
    assert changed["full_name"] == "Alice Adams" and changed["email"] == "a@example.com"
    assert changed["uid"] == alice["uid"] and changed["admin"] is False
    assert pwd.getpwnam(daemon.unix_name("alice")).pw_gecos.startswith("Alice Adams")
    assert ok(daemon.api.get("/users/alice"))["full_name"] == "Alice Adams"
    problem(daemon.api.patch("/users/alice", json={"email": "x" * 300}), 422, "email")
    problem(daemon.api.patch("/users/nope", json={"email": "a@example.com"}), 404)
    problem(daemon.api.get("/users/nope"), 404)

    ok(daemon.api.put("/users/alice/password", json={"password": "new-alice-password"}), 204)
    problem(daemon.api.put("/users/alice/password", json={"password": "short"}), 422, "password")
    problem(daemon.api.put("/users/nope/password", json={"password": "long-enough-1"}), 404)


def test_admins_and_passwords(daemon: Daemon) -> None:
    boss = ok(
        daemon.api.post(
            "/users", json={"name": "boss", "password": "boss-password-1", "admin": True}
        ),
        201,
    )
    assert boss["admin"] is True
    with client(daemon) as c:
        assert ok(c.get("/system", auth=("boss", "boss-password-1")))["version"]
        ok(daemon.api.put("/users/boss/password", json={"password": "boss-password-2"}), 204)
        problem(c.get("/system", auth=("boss", "boss-password-1")), 401)
        assert ok(c.get("/system", auth=("boss", "boss-password-2")))["version"]

    with client(daemon, auth=("boss", "boss-password-2")) as boss_api:
        # with another admin present, `admin` may be disabled ...
        assert ok(boss_api.patch("/users/admin", json={"enabled": False}))["enabled"] is False
        problem(daemon.api.get("/system"), 401)
        # ... and then boss is the last enabled admin, who may not go
        for response in (
            boss_api.delete("/users/boss"),
            boss_api.patch("/users/boss", json={"admin": False}),
            boss_api.patch("/users/boss", json={"enabled": False}),
        ):
            assert "last enabled admin" in problem(response, 403)["detail"]
        assert ok(boss_api.get("/users/boss"))["admin"] is True
        assert ok(boss_api.patch("/users/admin", json={"enabled": True}))["enabled"] is True
        assert ok(daemon.api.get("/system"))["version"]

        # with another admin present, `admin` may even be deleted (and made again)
        ok(boss_api.delete("/users/admin"), 204)
        problem(daemon.api.get("/system"), 401)
        with pytest.raises(KeyError):
            pwd.getpwnam(daemon.unix_name("admin"))
        again = ok(
            boss_api.post(
                "/users", json={"name": "admin", "password": ADMIN_PASSWORD, "admin": True}
            ),
            201,
        )
        assert again["admin"] is True
    assert ok(daemon.api.get("/users/admin"))["admin"] is True

    # the reverse: once boss has gone, admin is the last enabled admin
    ok(daemon.api.delete("/users/boss"), 204)
    problem(daemon.api.get("/users/boss"), 404)
    for response in (
        daemon.api.delete("/users/admin"),
        daemon.api.patch("/users/admin", json={"admin": False}),
        daemon.api.patch("/users/admin", json={"enabled": False}),
    ):
        assert "last enabled admin" in problem(response, 403)["detail"]
    admin = ok(daemon.api.get("/users/admin"))
    assert admin["admin"] is True and admin["enabled"] is True
    # changing an admin in ways that keep them an admin is fine
    assert ok(daemon.api.patch("/users/admin", json={"email": "root@example.com"}))["admin"]


def test_groups(daemon: Daemon) -> None:
    group = ok(
        daemon.api.post("/groups", json={"name": "accounting", "description": "Counting"}), 201
    )
    assert group["name"] == "accounting" and group["members"] == []
    assert group["unix_name"] == daemon.unix_name("accounting")
    assert grp.getgrnam(daemon.unix_name("accounting")).gr_gid == group["gid"]
    body = problem(daemon.api.post("/groups", json={"name": "accounting"}), 409, "name")
    assert "already exists" in reasons(body, "name")
    problem(daemon.api.post("/groups", json={"name": "Bad Group"}), 422, "name")

    assert ok(daemon.api.put("/groups/accounting/members/bob"))["members"] == ["bob"]
    assert ok(daemon.api.put("/groups/accounting/members/carol"))["members"] == ["bob", "carol"]
    problem(daemon.api.put("/groups/accounting/members/bob"), 409)
    problem(daemon.api.put("/groups/accounting/members/nobody1"), 422, "user")
    problem(daemon.api.put("/groups/nope/members/bob"), 404)
    members = grp.getgrnam(daemon.unix_name("accounting")).gr_mem
    assert set(members) == {daemon.unix_name("bob"), daemon.unix_name("carol")}
    assert ok(daemon.api.get("/users/bob"))["groups"] == ["accounting"]

    assert ok(daemon.api.delete("/groups/accounting/members/carol"))["members"] == ["bob"]
    problem(daemon.api.delete("/groups/accounting/members/carol"), 404)
    assert grp.getgrnam(daemon.unix_name("accounting")).gr_mem == [daemon.unix_name("bob")]
    assert ok(daemon.api.get("/users/carol"))["groups"] == []
    assert [g["name"] for g in ok(daemon.api.get("/groups"))] == ["accounting"]
    assert ok(daemon.api.get("/groups/accounting"))["members"] == ["bob"]
    problem(daemon.api.get("/groups/nope"), 404)


# -- 7. grants, enforced by the operating system ---------------------------------------------


def test_grants(daemon: Daemon) -> None:
    share = ok(daemon.api.post("/shares/finance/grants", json={"user": "alice", "access": "rw"}))
    assert share["grants"] == [{"principal": "user", "name": "alice", "access": "rw"}]
    share = ok(
        daemon.api.post("/shares/finance/grants", json={"group": "accounting", "access": "ro"})
    )
    assert {(g["principal"], g["name"], g["access"]) for g in share["grants"]} == {
        ("user", "alice", "rw"),
        ("group", "accounting", "ro"),
    }
    body = problem(
        daemon.api.post("/shares/finance/grants", json={"user": "nobody1", "access": "rw"}),
        422,
        "user",
    )
    assert "does not exist" in reasons(body, "user")
    problem(
        daemon.api.post("/shares/finance/grants", json={"group": "nobody1", "access": "ro"}),
        422,
        "group",
    )
    body = problem(
        daemon.api.post(
            "/shares/finance/grants",
            json={"user": "alice", "group": "accounting", "access": "rw"},
        ),
        422,
    )
    assert "exactly one" in body["detail"]
    problem(daemon.api.post("/shares/finance/grants", json={"access": "rw"}), 422)
    problem(
        daemon.api.post("/shares/finance/grants", json={"user": "alice", "access": "all"}),
        422,
        "access",
    )
    problem(daemon.api.post("/shares/finance/grants", json={"user": "alice"}), 422, "access")
    problem(daemon.api.post("/shares/nope/grants", json={"user": "alice", "access": "rw"}), 404)
    assert len(ok(daemon.api.get("/shares/finance"))["grants"]) == 2

    # the operating system enforces the grants
    path = share["path"]
    alice, bob, carol = (daemon.unix_name(n) for n in ("alice", "bob", "carol"))
    assert can_write(alice, f"{path}/report.txt", "quarterly numbers")
    assert read(alice, f"{path}/report.txt") == "quarterly numbers"
    assert read(bob, f"{path}/report.txt") == "quarterly numbers"  # via the group, read only
    assert not can_write(bob, f"{path}/bob.txt")
    assert not can_write(bob, f"{path}/report.txt")
    assert read(carol, f"{path}/report.txt") is None  # no grant at all
    assert not can_write(carol, f"{path}/carol.txt")

    # revoking takes access away at once, in files created before too
    share = ok(daemon.api.delete("/shares/finance/grants/user/alice"))
    assert [(g["principal"], g["name"]) for g in share["grants"]] == [("group", "accounting")]
    assert read(alice, f"{path}/report.txt") is None
    assert not can_write(alice, f"{path}/new.txt")
    problem(daemon.api.delete("/shares/finance/grants/user/alice"), 404)
    problem(daemon.api.delete("/shares/finance/grants/group/nope"), 404)
    problem(daemon.api.delete("/shares/nope/grants/user/alice"), 404)

    # a grant again, read only this time: alice may read but not write even her own file
    share = ok(daemon.api.post("/shares/finance/grants", json={"user": "alice", "access": "ro"}))
    assert ("user", "alice", "ro") in {
        (g["principal"], g["name"], g["access"]) for g in share["grants"]
    }
    assert read(alice, f"{path}/report.txt") == "quarterly numbers"
    assert not can_write(alice, f"{path}/report.txt")
    # and read-write again, replacing the earlier grant rather than adding one
    share = ok(daemon.api.post("/shares/finance/grants", json={"user": "alice", "access": "rw"}))
    assert [g for g in share["grants"] if g["name"] == "alice"] == [
        {"principal": "user", "name": "alice", "access": "rw"}
    ]
    assert can_write(alice, f"{path}/revised.txt", "revised numbers")
    # her own earlier file, too: the owner write bit taken while she was ro is given back
    report = f"{path}/report.txt"
    assert can_write(alice, report, "quarterly numbers"), (
        oct(os.stat(report).st_mode),
        getfacl(report),
    )

    # taking the group's access away takes bob's with it
    ok(daemon.api.delete("/shares/finance/grants/group/accounting"))
    assert read(bob, f"{path}/revised.txt") is None
    ok(daemon.api.post("/shares/finance/grants", json={"group": "accounting", "access": "ro"}))
    assert read(bob, f"{path}/revised.txt") == "revised numbers"
    assert read(bob, f"{path}/report.txt") == "quarterly numbers"


def test_quota_against_usage(daemon: Daemon) -> None:
    path = ok(daemon.api.get("/shares/finance"))["path"]
    alice = daemon.unix_name("alice")
    # random bytes: zstd cannot shrink them below the quota we then try
    big = as_user(alice, "sh", "-c", f"head -c 3145728 /dev/urandom > {path}/big.bin")
    assert big.returncode == 0, big.stderr
    body = problem(daemon.api.patch("/shares/finance", json={"quota": "1M"}), 422, "quota")
    assert "below" in reasons(body, "quota")
    share = ok(daemon.api.get("/shares/finance"))
    assert share["quota"] == 50 * MIB  # unchanged
    assert share["used"] >= 3 * MIB

    # the quota is enforced: 60M of random bytes do not fit into 50M
    over = as_user(alice, "sh", "-c", f"head -c 62914560 /dev/urandom > {path}/over.bin")
    assert over.returncode != 0 and "quota" in over.stderr.lower(), (over.returncode, over.stderr)
    os.unlink(f"{path}/over.bin")

    share = ok(daemon.api.patch("/shares/finance", json={"quota": "80M", "description": "Money"}))
    assert share["quota"] == 80 * MIB and share["description"] == "Money"
    assert share["compression"] == "zstd" and share["used"] >= 3 * MIB


# -- 8. what happened ------------------------------------------------------------------------


def test_events_and_jobs(daemon: Daemon) -> None:
    events = ok(daemon.api.get("/events", params={"limit": 1000}))
    kinds = {e["kind"] for e in events}
    assert {
        "daemon.start",
        "disk.created",
        "pool.created",
        "pool.disk-added",
        "pool.disk-removed",
        "pool.disk-replaced",
        "share.created",
        "share.granted",
        "share.revoked",
        "user.created",
        "user.deleted",
        "group.created",
        "token.created",
        "token.deleted",
    } <= kinds
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True)  # newest first
    created = [e for e in events if e["kind"] == "pool.created"]
    assert {e["subject"] for e in created} == {"tank", "scratch"}
    assert all(e["level"] == "info" and e["message"] for e in created)
    assert len(ok(daemon.api.get("/events", params={"limit": 2}))) == 2
    pools = ok(daemon.api.get("/events", params={"kind": "pool.", "limit": 1000}))
    assert pools and all(e["kind"].startswith("pool.") for e in pools)
    problem(daemon.api.get("/events", params={"limit": 0}), 422, "limit")

    jobs = ok(daemon.api.get("/jobs", params={"state": "succeeded"}))
    assert jobs and all(j["state"] == "succeeded" and j["progress"] == 100 for j in jobs)
    assert [j["kind"] for j in reversed(jobs)] == [
        "pool.create",
        "pool.add-disk",
        "pool.remove-disk",
        "pool.replace-disk",
        "pool.create",
    ]
    assert ok(daemon.api.get("/jobs", params={"state": "failed"})) == []
    assert ok(daemon.api.get("/jobs", params={"state": "running"})) == []
    assert len(ok(daemon.api.get("/jobs", params={"limit": 1}))) == 1
    problem(daemon.api.get("/jobs", params={"limit": 0}), 422, "limit")


# -- 9. taking it all down again -------------------------------------------------------------


def test_teardown(daemon: Daemon) -> None:
    # deleting a user or a group takes their grants, and the share ACL entries, with them
    temp = ok(daemon.api.get("/shares/temp"))["path"]
    carol = ok(daemon.api.get("/users/carol"))
    ok(daemon.api.post("/shares/temp/grants", json={"user": "carol", "access": "rw"}))
    assert can_write(daemon.unix_name("carol"), f"{temp}/carol.txt")
    assert f"user:{carol['uid']}:rwx" in getfacl(temp)
    ok(daemon.api.delete("/users/carol"), 204)
    with pytest.raises(KeyError):
        pwd.getpwnam(daemon.unix_name("carol"))
    problem(daemon.api.delete("/users/carol"), 404)
    assert ok(daemon.api.get("/shares/temp"))["grants"] == []
    assert f"user:{carol['uid']}:" not in getfacl(temp)
    assert f"user:{carol['uid']}:" not in getfacl(f"{temp}/carol.txt")

    finance = ok(daemon.api.get("/shares/finance"))["path"]
    gid = ok(daemon.api.get("/groups/accounting"))["gid"]
    assert f"group:{gid}:r-x" in getfacl(finance)
    ok(daemon.api.delete("/groups/accounting"), 204)
    with pytest.raises(KeyError):
        grp.getgrnam(daemon.unix_name("accounting"))
    problem(daemon.api.get("/groups/accounting"), 404)
    problem(daemon.api.delete("/groups/accounting"), 404)
    assert ok(daemon.api.get("/users/bob"))["groups"] == []
    assert ok(daemon.api.get("/shares/finance"))["grants"] == [
        {"principal": "user", "name": "alice", "access": "rw"}
    ]
    assert f"group:{gid}:" not in getfacl(finance)
    assert read(daemon.unix_name("bob"), f"{finance}/report.txt") is None

    ok(daemon.api.delete("/shares/finance"), 204)
    problem(daemon.api.get("/shares/finance"), 404)
    problem(daemon.api.delete("/shares/finance"), 404)
    assert not Path(finance).exists()
    assert ok(daemon.api.get("/pools/tank"))["shares"] == []

    for name in ("alice", "bob"):
        ok(daemon.api.delete(f"/users/{name}"), 204)
    assert [u["name"] for u in ok(daemon.api.get("/users"))] == ["admin"]

    # destroying a pool takes its shares with it
    mountpoint = ok(daemon.api.get("/pools/scratch"))["mountpoint"]
    ok(daemon.api.delete("/pools/scratch"), 204)
    assert not os.path.ismount(mountpoint)
    problem(daemon.api.get("/shares/temp"), 404)
    mountpoint = ok(daemon.api.get("/pools/tank"))["mountpoint"]
    ok(daemon.api.delete("/pools/tank"), 204)
    assert not os.path.ismount(mountpoint)
    body = problem(daemon.api.get("/pools/tank"), 404)
    assert body["title"] == "Not found" and "does not exist" in body["detail"]
    problem(daemon.api.delete("/pools/tank"), 404)
    assert ok(daemon.api.get("/pools")) == [] and ok(daemon.api.get("/shares")) == []

    for name in ("d1", "d2", "d3", "d4"):
        ok(daemon.api.delete(f"/disks/virtual/{name}"), 204)
    problem(daemon.api.delete("/disks/virtual/d1"), 404)
    assert [d for d in ok(daemon.api.get("/disks")) if d["kind"] == "virtual"] == []
    assert list((daemon.state_dir / "disks").glob("*.img")) == []
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    assert str(daemon.base) not in loops
    kinds = {e["kind"] for e in ok(daemon.api.get("/events", params={"limit": 50}))}
    assert {"share.deleted", "group.deleted", "pool.destroyed", "disk.deleted"} <= kinds
