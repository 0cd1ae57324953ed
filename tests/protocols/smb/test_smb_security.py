"""What an attacker tries against Speicher's Samba, with real clients: smb.conf injection
through free text, Samba's %-substitutions, the environment smbd gets, guessing passwords,
anonymous share lists, unsigned clients. One daemon and pool for the module."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from smb_helpers import (
    HOST,
    make_pool,
    make_share,
    make_user,
    password,
    smbd_pid,
)

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
    assert comment == "hi ％$(SPEICHER_ADMIN_PASSWORD) ％h ％v ％m ％U", comment
    assert "%" not in sections["docs"]["comment"]

    listed = share_list(daemon, "-U", f"alice%{password('alice')}")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    line = next(x for x in listed.stdout.splitlines() if re.match(r"\s+docs\s+Disk", x))
    assert line.split("Disk", 1)[1].strip() == comment, line
    assert ADMIN_PASSWORD not in listed.stdout
    version = subprocess.run(["smbd", "--version"], capture_output=True, text=True).stdout
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
