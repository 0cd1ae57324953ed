"""What an attacker tries against Speicher's Samba, with real clients: smb.conf injection
through free text, Samba's %-substitutions, the environment smbd gets, guessing passwords,
anonymous share lists, unsigned clients. One daemon and pool for the module."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from smb_helpers import (
    ACCESS_DENIED,
    HOST,
    grant,
    make_pool,
    make_share,
    make_user,
    password,
    run_smbclient,
    smb_user,
    smbd_pid,
    status_of,
)
from smbprotocol.connection import Connection, Dialects  # type: ignore[import-untyped]
from smbprotocol.exceptions import (  # type: ignore[import-untyped]
    SMBException,
    SMBResponseException,
)
from smbprotocol.session import Session  # type: ignore[import-untyped]
from smbprotocol.tree import TreeConnect  # type: ignore[import-untyped]

from speicher.protocols.smb.service import LOCKOUT_POLICY
from speicher_testing import ADMIN_PASSWORD, Daemon

pytestmark = pytest.mark.system

HOSTILE = "hi %$(SPEICHER_ADMIN_PASSWORD) %h %v %m %U \\"


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    """Pool ``tank``; share ``docs`` with alice rw."""
    make_pool(daemon)
    make_user(daemon, "alice")
    return {"docs": make_share(daemon, "docs", {"alice": "rw"})}


def samba_view(daemon: Daemon) -> dict[str, dict[str, str]]:
    """smb.conf as Samba itself reads it (``testparm -s``): sections and their parameters."""
    conf = daemon.state_dir / "samba" / "smb.conf"
    result = subprocess.run(
        ["testparm", "-s", str(conf)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if m := re.fullmatch(r"\[(.*)\]", line.strip()):
            current = sections.setdefault(m[1], {})
        elif "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def share_list(daemon: Daemon, *auth: str) -> subprocess.CompletedProcess[str]:
    """``smbclient -L`` with the given authentication arguments (``-N`` or ``-U user%pw``)."""
    return subprocess.run(
        ["smbclient", "-s", "/dev/null", "-p", str(daemon.smb_port), "-L", HOST, *auth],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_hostile_description_is_shown_as_harmless_text(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    r = daemon.api.patch("/shares/docs", json={"description": HOSTILE})
    assert r.status_code == 200, r.text
    sections = samba_view(daemon)
    assert list(sections) == ["global", "docs"]
    comment = sections["docs"]["comment"]
    assert comment == "hi \uff05$(SPEICHER_ADMIN_PASSWORD) \uff05h \uff05v \uff05m \uff05U", comment
    assert "%" not in sections["docs"]["comment"]

    listed = share_list(daemon, "-U", f"alice%{password('alice')}")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    # smbclient -L exits 0 with the header alone when the share list (srvsvc, served by
    # samba-dcerpcd's rpcd_classic) could not be had: say so, with everything it printed
    lines = [x for x in listed.stdout.splitlines() if re.match(r"\s+docs\s+Disk", x)]
    assert len(lines) == 1, listed.stdout + listed.stderr
    assert lines[0].split("Disk", 1)[1].strip() == comment, lines[0]
    assert ADMIN_PASSWORD not in listed.stdout
    version = subprocess.run(
        ["smbd", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version.split()[-1] not in listed.stdout


@pytest.mark.parametrize(
    "description",
    [
        "hi\n    root preexec = /bin/sh -c 'touch /tmp/pwned'\n[evil]\n    path = /etc",
        "nul\0byte",
        "sep\u2028[evil]",
        "tail \\",
    ],
)
def test_a_description_never_adds_sections_or_keys(
    daemon: Daemon, world: dict[str, Any], description: str
) -> None:
    before = samba_view(daemon)
    r = daemon.api.patch("/shares/docs", json={"description": description})
    assert r.status_code in (200, 422), r.text  # the API may refuse it before it gets here
    after = samba_view(daemon)
    assert list(after) == ["global", "docs"], after
    assert set(after["docs"]) == set(before["docs"]), after["docs"]
    assert after["global"] == before["global"]
    text = (daemon.state_dir / "samba" / "smb.conf").read_text()
    assert not re.search(r"^\s*(root preexec|\[evil\])", text, flags=re.MULTILINE), text
    comment = after["docs"].get("comment", "")
    assert not comment.endswith("\\") and "\0" not in comment, comment


def test_smbd_gets_a_minimal_environment(daemon: Daemon, world: dict[str, Any]) -> None:
    environ = Path(f"/proc/{smbd_pid(daemon)}/environ").read_bytes().split(b"\0")
    names = {e.split(b"=", 1)[0].decode() for e in environ if e}
    assert not any(n.startswith("SPEICHER_") for n in names), names
    assert names <= {"PATH", "LANG", "LC_ALL", "HOME", "TZ"}, names


ACCOUNT_LOCKED_OUT = "NT_STATUS_ACCOUNT_LOCKED_OUT"


def login(daemon: Daemon, user: str, secret: str) -> str:
    """Log in with smbclient and list ``docs``: what it printed (an NT_STATUS on failure)."""
    result = run_smbclient(daemon, "docs", "ls", user=user, secret=secret)
    return "ok" if result.returncode == 0 else result.stdout


def lock_out(daemon: Daemon, user: str, secret: str) -> None:
    for attempt in range(LOCKOUT_POLICY["bad lockout attempt"]):
        out = login(daemon, user, f"wrong-{attempt}")
        assert "NT_STATUS_LOGON_FAILURE" in out, (attempt, out)
    out = login(daemon, user, secret)
    assert ACCOUNT_LOCKED_OUT in out, out  # the right password no longer helps


def test_guessing_smb_passwords_locks_the_account_until_an_admin_acts(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    make_user(daemon, "gina")
    grant(daemon, "docs", "gina", "rw")
    assert login(daemon, "gina", password("gina")) == "ok"
    # a success resets the count: fewer wrong passwords than the limit, then the right one
    for attempt in range(LOCKOUT_POLICY["bad lockout attempt"] - 1):
        assert "NT_STATUS_LOGON_FAILURE" in login(daemon, "gina", f"wrong-{attempt}")
    assert login(daemon, "gina", password("gina")) == "ok"

    lock_out(daemon, "gina", password("gina"))
    assert "NT_STATUS_LOGON_FAILURE" in login(daemon, "alice", "wrong")  # others unaffected
    assert login(daemon, "alice", password("alice")) == "ok"

    # a new password ends the lockout ('speicher user passwd', through the password hook)
    daemon.cli("user", "passwd", "gina", "--password-stdin", input="gina-password-2\n")
    assert login(daemon, "gina", "gina-password-2") == "ok"
    events = daemon.api.get("/events", params={"kind": "smb.unlocked"}).json()
    assert [e["subject"] for e in events] == ["gina"], events

    # so does enabling the account again, and the password stays
    lock_out(daemon, "gina", "gina-password-2")
    for enabled in (False, True):
        r = daemon.api.patch("/users/gina", json={"enabled": enabled})
        assert r.status_code == 200, r.text
    assert login(daemon, "gina", "gina-password-2") == "ok"
    policy = subprocess.run(
        [
            "pdbedit",
            f"--configfile={daemon.state_dir / 'samba' / 'smb.conf'}",
            "-P",
            "lockout duration",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"value is: {LOCKOUT_POLICY['lockout duration']}" in policy


def test_anonymous_users_see_no_share_list(daemon: Daemon, world: dict[str, Any]) -> None:
    anonymous = share_list(daemon, "-N")
    text = anonymous.stdout + anonymous.stderr
    assert anonymous.returncode != 0, text
    assert "docs" not in text and "Disk" not in text, text
    assert "NT_STATUS_ACCESS_DENIED" in text, text
    assert sections_say(daemon, "global", "restrict anonymous") == "2"
    listed = share_list(daemon, "-U", f"alice%{password('alice')}")
    assert re.search(r"^\s+docs\s+Disk", listed.stdout, flags=re.MULTILINE), listed.stdout


def sections_say(daemon: Daemon, section: str, key: str) -> str | None:
    return samba_view(daemon)[section].get(key)


def test_signing_can_be_required(daemon: Daemon, world: dict[str, Any]) -> None:
    shown = json.loads(daemon.cli("smb", "settings", "--json").stdout)
    assert shown["signing"] == "default"
    assert sections_say(daemon, "global", "server signing") is None  # Samba's default
    assert unsigned_tree_connect(daemon) == (False, None)

    out = daemon.cli("smb", "update", "--signing", "required").stdout
    assert re.search(r"signing\s+required", out), out
    assert "    server signing = mandatory\n" in daemon.api.get("/smb/config").text
    assert sections_say(daemon, "global", "server signing") == "required"  # its synonym
    assert daemon.api.get("/smb").json()["signing"] == "required"
    try:
        # the server says so at negotiate, and refuses what a client sends unsigned
        required, refusal = unsigned_tree_connect(daemon)
        assert required is True
        assert refusal is not None and status_of(refusal) == ACCESS_DENIED, refusal
        signed = run_smbclient(
            daemon, "docs", "ls", user="alice", options=("--client-protection=sign",)
        )
        assert signed.returncode == 0, signed.stdout
        # smbprotocol signs when the server requires it
        with smb_user(daemon, "alice") as alice:
            alice.write("docs", "signed.txt", b"signed")
            assert alice.read("docs", "signed.txt") == b"signed"

        bad = daemon.api.patch("/smb", json={"signing": "sometimes"})
        assert bad.status_code == 422, bad.text
        assert "signing" in bad.text
        wrong = daemon.cli("smb", "update", "--signing", "sometimes", check=False)
        assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1, wrong
    finally:
        daemon.cli("smb", "update", "--signing", "default")
    assert sections_say(daemon, "global", "server signing") is None
    assert unsigned_tree_connect(daemon) == (False, None)


def unsigned_tree_connect(daemon: Daemon) -> tuple[bool, BaseException | None]:
    """Log in as alice with a client that does not ask for signing and then sends its tree
    connect unsigned: whether the server demanded signing at negotiate, and its refusal.
    SMB 3.0.2, as SMB 3.1.1 signs every tree connect whatever the server's settings."""
    connection = Connection(uuid.uuid4(), HOST, daemon.smb_port, require_signing=False)
    connection.connect(dialect=Dialects.SMB_3_0_2, timeout=10)
    try:
        required = bool(connection.require_signing)  # set when the server requires it
        session = Session(connection, "alice", password("alice"), require_encryption=False)
        session.connect()
        session.signing_required = False  # from here on, send unsigned
        try:
            TreeConnect(session, rf"\\{HOST}\docs").connect()
        except SMBResponseException as exc:
            return required, exc
        return required, None
    finally:
        with contextlib.suppress(SMBException, OSError, ValueError):
            connection.disconnect(close=True, timeout=5)
