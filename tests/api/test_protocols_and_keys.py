"""Per-share WebDAV and SFTP switches, and users' SSH keys, through the REST API.

The steps share one daemon and build on each other (the module runs on one xdist worker).
Every answer is checked for a traceback and a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from speicher_testing import Daemon
from sshkeys import (
    DSA_1024,
    bare,
    ecdsa_key,
    ed25519_key,
    fingerprint,
    private_openssh,
    private_pem_rsa,
    rfc4716,
    rsa_key,
    slash_key,
)

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
    r = api.post("/users", json={"name": "alice", "password": "alice-password-1"})
    assert r.status_code == 201, r.text
    yield
    daemon.api.event_hooks["response"].remove(_checked)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.url, response.text)
    return None if status == 204 else response.json()


def refused(response: httpx.Response, status: int, field: str) -> str:
    """The reasons of a problem document that blames exactly ``field``."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {field}, errors
    return " | ".join(e["reason"] for e in errors)


def add(daemon: Daemon, key: str, user: str = "alice") -> httpx.Response:
    return daemon.api.post(f"/users/{user}/keys", json={"key": key})


def fingerprints(daemon: Daemon, user: str = "alice") -> list[str]:
    return [k["fingerprint"] for k in ok(daemon.api.get(f"/users/{user}/keys"))]


# -- protocol switches -----------------------------------------------------------------------


def test_switches_are_off_unless_asked_for(daemon: Daemon) -> None:
    plain = ok(daemon.api.post("/shares", json={"name": "plain", "pool": "tank"}), 201)
    assert (plain["webdav"], plain["sftp"]) == (False, False)
    both = ok(
        daemon.api.post(
            "/shares", json={"name": "both", "pool": "tank", "webdav": True, "sftp": True}
        ),
        201,
    )
    assert (both["webdav"], both["sftp"]) == (True, True)
    assert both["smb"]["enabled"] is False  # independent of SMB
    listed = {s["name"]: (s["webdav"], s["sftp"]) for s in ok(daemon.api.get("/shares"))}
    assert listed == {"plain": (False, False), "both": (True, True)}


def test_switches_change_one_at_a_time(daemon: Daemon) -> None:
    share = ok(daemon.api.patch("/shares/plain", json={"sftp": True}))
    assert (share["webdav"], share["sftp"]) == (False, True)
    share = ok(daemon.api.patch("/shares/plain", json={"webdav": True, "smb": {"enabled": True}}))
    assert (share["webdav"], share["sftp"], share["smb"]["enabled"]) == (True, True, True)
    share = ok(daemon.api.patch("/shares/plain", json={"description": "x"}))
    assert (share["webdav"], share["sftp"]) == (True, True)  # left out: unchanged
    share = ok(daemon.api.patch("/shares/plain", json={"webdav": False, "sftp": None}))
    assert (share["webdav"], share["sftp"]) == (False, True)
    assert (ok(daemon.api.get("/shares/plain"))["webdav"], share["sftp"]) == (False, True)


def test_switches_are_booleans(daemon: Daemon) -> None:
    refused(daemon.api.patch("/shares/plain", json={"webdav": "maybe"}), 422, "webdav")
    refused(daemon.api.post("/shares", json={"name": "x", "pool": "tank", "sftp": 3}), 422, "sftp")
    assert daemon.api.get("/shares/x").status_code == 404


def test_write_sync(daemon: Daemon) -> None:
    assert ok(daemon.api.get("/shares/plain"))["sync"] == "always"
    assert ok(daemon.api.patch("/shares/both", json={"sync": "standard"}))["sync"] == "standard"
    assert ok(daemon.api.patch("/shares/both", json={"description": "y"}))["sync"] == "standard"
    refused(daemon.api.patch("/shares/both", json={"sync": "sometimes"}), 422, "sync")
    refused(daemon.api.post("/shares", json={"name": "y", "pool": "tank", "sync": 1}), 422, "sync")
    assert daemon.api.get("/shares/y").status_code == 404
    assert ok(daemon.api.get("/shares/both"))["sync"] == "standard"


def test_switches_survive_a_restart(daemon: Daemon) -> None:
    daemon.stop()
    daemon.start()
    share = ok(daemon.api.get("/shares/both"))
    assert (share["webdav"], share["sftp"], share["sync"]) == (True, True, "standard")


# -- SSH keys --------------------------------------------------------------------------------


def test_add_and_list_keys(daemon: Daemon) -> None:
    line = ed25519_key("alice@laptop")
    info = ok(add(daemon, line + "\n"), 201)
    assert info == {
        "fingerprint": fingerprint(line),
        "algorithm": "ssh-ed25519",
        "comment": "alice@laptop",
        "public_key": bare(line),
        "created_at": info["created_at"],
    }
    second = ecdsa_key("alice@desk [office]")
    ok(add(daemon, second), 201)
    block = rsa_key(2048)
    ok(add(daemon, rfc4716(block, "converted by ssh-keygen -e")), 201)
    keys = ok(daemon.api.get("/users/Alice/keys"))  # names are case-insensitive
    assert [(k["fingerprint"], k["algorithm"], k["comment"]) for k in keys] == [
        (fingerprint(line), "ssh-ed25519", "alice@laptop"),
        (fingerprint(second), "ecdsa-sha2-nistp256", "alice@desk [office]"),
        (fingerprint(block), "ssh-rsa", "converted by ssh-keygen -e"),
    ]
    events = ok(daemon.api.get("/events", params={"kind": "user.key_added"}))
    assert events[0]["subject"] == "alice"
    assert fingerprint(block) in events[0]["message"]
    assert len(events) == 3


def test_the_same_key_twice_is_409(daemon: Daemon) -> None:
    line = ed25519_key("twice")
    ok(add(daemon, line), 201)
    reason = refused(add(daemon, bare(line) + " another comment"), 409, "key")
    assert f"already has key {fingerprint(line)}" in reason


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (private_openssh, "this is a private key; give the .pub file"),
        (private_pem_rsa, "this is a private key; give the .pub file"),
        (lambda: DSA_1024, "DSA keys are not accepted"),
        (lambda: rsa_key(1024), "RSA keys need at least 2048 bits, this one has 1024"),
        (lambda: f'command="internal-sftp" {ed25519_key()}', "authorized_keys options"),
        (lambda: f'from="10.0.0.0/8",no-pty {ed25519_key()}', "authorized_keys options"),
        (lambda: f"{ed25519_key()}\n{ecdsa_key()}\n", "holds 2 keys"),
        (lambda: rfc4716(ed25519_key()) + rfc4716(ed25519_key()), "several keys"),
        (lambda: "hello world", "is not an SSH public key"),
        (lambda: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG", "is not a valid SSH public key"),
        (lambda: "", "is empty"),
        (lambda: ed25519_key("x" * 257), "longer than 256"),
        # a control character in the comment: the request model refuses it
        (lambda: ed25519_key("evil\x1b[2J"), "control characters"),
        (lambda: ed25519_key("tab\there"), "control characters"),
        (lambda: ed25519_key("nul\x00"), "control characters"),
        (lambda: rfc4716(ed25519_key(), "esc\x1b[31m"), "control characters"),
    ],
    ids=[
        "private-openssh",
        "private-pem",
        "dsa",
        "rsa-1024",
        "option-command",
        "option-from",
        "two-keys",
        "two-rfc4716",
        "garbage",
        "truncated",
        "empty",
        "long-comment",
        "comment-escape",
        "comment-tab",
        "comment-nul",
        "rfc4716-comment-escape",
    ],
)
def test_refused_keys_are_422_naming_the_key(daemon: Daemon, make: Any, words: str) -> None:
    before = fingerprints(daemon)
    assert words in refused(add(daemon, make()), 422, "key")
    assert fingerprints(daemon) == before


def test_bodies_that_are_not_one_key(daemon: Daemon) -> None:
    refused(daemon.api.post("/users/alice/keys", json={}), 422, "key")
    refused(daemon.api.post("/users/alice/keys", json={"key": ["a", "b"]}), 422, "key")
    refused(daemon.api.post("/users/alice/keys", json={"key": "x" * 16385}), 422, "key")


def test_unknown_users(daemon: Daemon) -> None:
    assert add(daemon, ed25519_key(), user="nobody").status_code == 404
    assert daemon.api.get("/users/nobody/keys").status_code == 404
    assert daemon.api.delete("/users/nobody/keys/SHA256:abc").status_code == 404


def test_remove_a_key_whose_fingerprint_holds_slash_and_plus(daemon: Daemon) -> None:
    line = slash_key()
    fp = fingerprint(line)
    ok(add(daemon, line), 201)
    ok(daemon.api.delete(f"/users/alice/keys/{quote(fp, safe='')}"), 204)
    assert fp not in fingerprints(daemon)
    assert daemon.api.delete(f"/users/alice/keys/{quote(fp, safe='')}").status_code == 404
    ok(add(daemon, line), 201)
    ok(daemon.api.delete(f"/users/alice/keys/{fp}"), 204)  # written as it is: '/' and '+'
    assert fp not in fingerprints(daemon)
    events = ok(daemon.api.get("/events", params={"kind": "user.key_removed"}))
    assert events[0]["message"] == f"SSH key {fp} removed from alice"


def test_openapi_names_the_key_routes(daemon: Daemon) -> None:
    paths = ok(daemon.api.get("/../openapi.json"))["paths"]
    assert set(paths["/api/v1/users/{name}/keys"]) == {"get", "post"}
    assert set(paths["/api/v1/users/{name}/keys/{fingerprint}"]) == {"delete"}


def test_a_deleted_users_keys_are_gone(daemon: Daemon) -> None:
    assert len(fingerprints(daemon)) >= 3
    ok(daemon.api.delete("/users/alice"), 204)
    assert daemon.api.get("/users/alice/keys").status_code == 404
    r = daemon.api.post("/users", json={"name": "alice", "password": "alice-password-2"})
    assert r.status_code == 201, r.text
    assert fingerprints(daemon) == []
