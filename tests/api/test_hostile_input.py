"""A hostile corpus into every string field of every request the API takes.

Control characters are refused with a 422 that names the field, by every endpoint (the table
below must cover every request model the OpenAPI document names). Printable text that Samba
treats specially (``%`` substitutions, a trailing backslash, brackets, comment signs, quotes)
is accepted where free text is, and afterwards ``testparm`` reads back exactly the sections
and keys Speicher rendered: nothing a user typed became smb.conf syntax, and an SMB client
listing the shares sees neither the admin password nor the host's name or Samba's version.
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from speicher_testing import ADMIN_PASSWORD, Daemon

pytestmark = pytest.mark.system

CONTROL = [
    "hi\n    root preexec = /bin/sh -c 'id > /tmp/pwned'\n[evil]\n    path = /etc",
    "nul\x00byte",
    "cr\rhere",
    "tab\tthere",
    "esc\x1b[2J",
    "next\x85line",
    "line\u2028sep",
]
PRINTABLE = [
    "%$(SPEICHER_ADMIN_PASSWORD) %h %v %U %m %L",
    "ends with a backslash \\",
    "[evil]",
    "; root preexec = /bin/sh",
    "# comment",
    "quotes \" and ' and `id`",
    "$(id) ${HOME}",
    "Bücher für 50 % der Kosten",
]

# (method, path, a valid body, the string fields to attack as dotted paths)
ENDPOINTS: list[tuple[str, str, dict[str, Any], list[str], str]] = [
    (
        "POST",
        "/users",
        {"name": "hostile", "password": "hostile-password-1"},
        ["name", "password", "full_name", "email"],
        "UserCreate",
    ),
    ("PATCH", "/users/alice", {}, ["full_name", "email"], "UserUpdate"),
    ("PUT", "/users/alice/password", {"password": "x"}, ["password"], "PasswordChange"),
    # an RFC 4716 key has lines; what a line end lets through, the key's parser refuses
    ("POST", "/users/alice/keys", {"key": "x"}, ["key"], "KeyAdd"),
    ("POST", "/groups", {"name": "hostiles"}, ["name", "description"], "GroupCreate"),
    (
        "POST",
        "/shares",
        {"name": "hostile", "pool": "tank"},
        ["name", "pool", "quota", "description", "smb.time_machine_size"],
        "ShareCreate",
    ),
    (
        "PATCH",
        "/shares/docs",
        {},
        ["quota", "description", "smb.time_machine_size"],
        "ShareUpdate",
    ),
    ("POST", "/shares/docs/grants", {"access": "ro"}, ["user", "group"], "GrantRequest"),
    ("POST", "/tokens", {"name": "hostile"}, ["name"], "TokenCreate"),
    (
        "POST",
        "/disks/virtual",
        {"name": "hostile", "size": "1G"},
        ["name", "size"],
        "VirtualDiskCreate",
    ),
    (
        "POST",
        "/pools",
        {"name": "hostile", "profile": "single", "disks": ["x"]},
        ["name", "disks.0"],
        "PoolCreate",
    ),
    ("POST", "/pools/tank/disks", {"disk": "x"}, ["disk"], "PoolDiskChange"),
    ("POST", "/pools/tank/replace", {"old": "x", "new": "y"}, ["old", "new"], "PoolReplace"),
    ("PATCH", "/smb", {}, ["workgroup", "server_name", "interfaces.0"], "SmbSettingsUpdate"),
    (
        "PATCH",
        "/alerts/settings",
        {},
        ["smtp_host", "smtp_username", "smtp_password", "mail_from", "mail_to.0", "webhook_url"],
        "AlertSettingsUpdate",
    ),
    (
        "POST",
        "/shares/docs/policies",
        {"name": "p", "schedule": "0 * * * *", "keep_last": 1},
        ["name", "schedule"],
        "PolicyCreate",
    ),
    ("PATCH", "/shares/docs/policies/p", {}, ["schedule"], "PolicyUpdate"),
    ("PATCH", "/system/preferences", {}, ["time_zone"], "PreferencesUpdate"),
    ("PUT", "/pools/tank/scrub-schedule", {"schedule": ""}, ["schedule"], "ScrubSchedule"),
    ("POST", "/shares/docs/snapshots", {}, ["name"], "SnapshotCreate"),
    ("PUT", "/shares/docs/snapshots/@GMT-2020.01.01-00.00.00/lock", {}, [], "SnapshotLock"),
    (
        "POST",
        "/shares/docs/snapshots/@GMT-2020.01.01-00.00.00/restore",
        {"path": "x"},
        ["path"],
        "RestoreRequest",
    ),
    # PEM documents have lines by nature; their parser (cryptography) is the check
    ("PUT", "/system/certificate", {"certificate": "x", "key": "y"}, [], "CertificateUpload"),
    (
        "POST",
        "/shares/docs/snapshots/@GMT-2020.01.01-00.00.00/clone",
        {"name": "c"},
        ["name"],
        "CloneRequest",
    ),
    ("POST", "/replication/pairings", {"name": "hostile"}, ["name", "pool"], "PairingCreate"),
    ("PATCH", "/replication/pairings/x", {}, [], "PairingUpdate"),
    (
        "POST",
        "/replication/targets",
        {"name": "hostile", "url": "https://127.0.0.1:9", "code": "A-B"},
        ["name", "url", "code"],
        "TargetCreate",
    ),
    (
        "POST",
        "/replication/targets/x/send",
        {"share": "docs"},
        ["share", "snapshot"],
        "SendRequest",
    ),
    (
        "POST",
        "/replication/tasks",
        {"share": "docs", "target": "x", "schedule": "0 * * * *"},
        ["share", "target", "schedule"],
        "TaskCreate",
    ),
    ("PATCH", "/replication/tasks/1", {}, ["schedule"], "TaskUpdate"),
    (
        "POST",
        "/replication/promote",
        {"share": "docs"},
        ["share", "source", "name", "snapshot"],
        "PromoteRequest",
    ),
    (
        "POST",
        "/backup/targets",
        {"name": "hostile", "kind": "local", "path": "/nonexistent/x"},
        [
            "name",
            "path",
            "url",
            "access_key",
            "secret_key",
            "host",
            "user",
            "password",
        ],
        "BackupTargetCreate",
    ),
    (
        "POST",
        "/backup/tasks",
        {"share": "docs", "target": "x", "schedule": "0 * * * *"},
        ["share", "target", "schedule"],
        "BackupTaskCreate",
    ),
    ("PATCH", "/backup/tasks/1", {}, ["schedule"], "BackupTaskUpdate"),
    # no text fields: listed so that the table knows them
    ("PATCH", "/ransomware/shares/x", {}, [], "GuardUpdate"),
    ("POST", "/ransomware/incidents/1/resolve", {}, [], "ResolveRequest"),
    (
        "POST",
        "/backup/tasks/1/restore",
        {"to": "docs/x"},
        ["snapshot", "path", "to"],
        "BackupRestore",
    ),
    # what another Speicher sends: checked before its credential is
    ("POST", "/../../replication/v1/pair", {"secret": "x"}, ["secret", "source"], "PairRequest"),
    (
        "PUT",
        "/../../replication/v1/replicas/docs/record",
        {},
        ["description", "grants.0"],
        "ShareRecord",
    ),
]


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> Iterator[Daemon]:
    api = daemon.api
    for name in ("h1", "h2"):
        assert api.post("/disks/virtual", json={"name": name, "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": ["h1", "h2"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    r = api.post("/users", json={"name": "alice", "password": "alice-password-1"})
    assert r.status_code == 201, r.text
    r = api.post("/shares", json={"name": "docs", "pool": "tank", "smb": {"enabled": True}})
    assert r.status_code == 201, r.text
    assert (
        api.post("/shares/docs/grants", json={"user": "alice", "access": "rw"}).status_code == 200
    )
    yield daemon


def _with(body: dict[str, Any], field: str, value: str) -> dict[str, Any]:
    out: dict[str, Any] = {**body}
    parts = field.split(".")
    if len(parts) == 2 and parts[1].isdigit():
        out[parts[0]] = [value]
    elif len(parts) == 2:
        out[parts[0]] = {parts[1]: value}
    else:
        out[field] = value
    return out


def test_the_table_covers_every_request_model(world: Daemon) -> None:
    schema = world.api.get("/../openapi.json").json()
    bodies = set()
    for path in schema["paths"].values():
        for operation in path.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                bodies.add(media["schema"].get("$ref", "").rsplit("/", 1)[-1])
    assert bodies - {"SmbOptionsUpdate"} <= {e[4] for e in ENDPOINTS}, bodies


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [(e[0], e[1], e[2], f) for e in ENDPOINTS for f in e[3]],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_control_characters_are_refused_naming_the_field(
    world: Daemon, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = world.api.get("/smb/config").text
    for value in CONTROL:
        r = world.api.request(method, path, json=_with(body, field, value))
        assert r.status_code == 422, (field, value, r.status_code, r.text)
        fields = {e["field"] for e in r.json()["errors"]}
        # a list item's problem names the list
        assert field.removesuffix(".0") in fields, (field, r.json())
    assert world.api.get("/smb/config").text == before


def _testparm(conf: str) -> dict[str, dict[str, str]]:
    out = subprocess.run(
        ["testparm", "-s", conf], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in out.splitlines():
        if m := re.match(r"^\[(.+)\]$", line):
            current = sections.setdefault(m.group(1), {})
        elif m := re.match(r"^\s+([^=]+?)\s*=\s?(.*)$", line):
            current[m.group(1)] = m.group(2)
    return sections


@pytest.mark.parametrize("text", PRINTABLE)
def test_printable_text_never_becomes_smb_conf_syntax(world: Daemon, text: str) -> None:
    r = world.api.patch("/shares/docs", json={"description": text})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == text  # the model keeps what was typed
    conf = str(world.state_dir / "samba" / "smb.conf")
    parsed = _testparm(conf)
    assert set(parsed) == {"global", "docs"}, parsed.keys()
    docs = parsed["docs"]
    assert "%" not in docs.get("comment", ""), docs
    assert not any("preexec" in k or "postexec" in k for s in parsed.values() for k in s)
    assert docs["path"] == str(world.mount_root / "tank" / "docs")
    assert docs["valid users"] == world.unix_name("alice")
    listing = subprocess.run(
        [
            "smbclient",
            "-L",
            "127.0.0.1",
            "-p",
            str(world.smb_port),
            "-U",
            "alice%alice-password-1",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout
    assert "docs" in listing, listing
    assert ADMIN_PASSWORD not in listing
    assert socket.gethostname() not in listing.split("docs", 1)[1].splitlines()[0]
