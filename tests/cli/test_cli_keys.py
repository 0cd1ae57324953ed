"""``speicher share ... --webdav/--sftp`` and ``speicher user add-key/list-keys/remove-key``, as
an admin types them. The steps share one daemon and build on each other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speicher_testing import Daemon
from sshkeys import (
    DSA_1024,
    bare,
    ed25519_key,
    fingerprint,
    private_openssh,
    rfc4716,
    rsa_key,
    slash_key,
)

pytestmark = pytest.mark.system


def js(daemon: Daemon, *args: str, input: str | None = None) -> Any:
    return json.loads(daemon.cli(*args, "--json", input=input).stdout)


def fails(daemon: Daemon, *args: str, input: str | None = None) -> str:
    """Run a command that must be refused: exit code 2 and exactly one line on stderr."""
    result = daemon.cli(*args, input=input, check=False)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def world(daemon: Daemon) -> Iterator[None]:
    daemon.cli("disk", "create-virtual", "c1", "--size", "1G")
    daemon.cli("pool", "create", "tank", "--profile", "single", "--disk", "c1")
    daemon.cli("user", "create", "alice", "--password-stdin", input="alice-password-1\n")
    yield


def shown(daemon: Daemon, share: str) -> dict[str, str]:
    """``share show``'s lines as a mapping."""
    out = daemon.cli("share", "show", share).stdout
    pairs = [line.split(None, 1) for line in out.splitlines() if line.strip()]
    return {p[0]: p[1].strip() for p in pairs if len(p) == 2}


# -- protocol switches -----------------------------------------------------------------------


def test_share_create_with_switches(daemon: Daemon) -> None:
    out = daemon.cli("share", "create", "docs", "--pool", "tank", "--webdav", "on").stdout
    assert out.strip().startswith("share docs created at ")
    share = js(daemon, "share", "show", "docs")
    assert (share["webdav"], share["sftp"]) == (True, False)
    assert (shown(daemon, "docs")["webdav"], shown(daemon, "docs")["sftp"]) == ("on", "off")
    share = js(daemon, "share", "create", "plain", "--pool", "tank")
    assert (share["webdav"], share["sftp"]) == (False, False)


def test_share_update_switches(daemon: Daemon) -> None:
    out = daemon.cli("share", "update", "docs", "--sftp", "on", "--webdav", "off").stdout
    assert out.strip() == "share docs updated"
    assert (shown(daemon, "docs")["webdav"], shown(daemon, "docs")["sftp"]) == ("off", "on")
    daemon.cli("share", "update", "docs", "--smb", "on")  # the others stay as they are
    share = js(daemon, "share", "show", "docs")
    assert (share["smb"]["enabled"], share["webdav"], share["sftp"]) == (True, False, True)


def test_switches_take_on_or_off(daemon: Daemon) -> None:
    assert fails(daemon, "share", "update", "docs", "--webdav", "yes") == (
        "error: --webdav: must be 'on' or 'off'"
    )
    assert fails(daemon, "share", "create", "x", "--pool", "tank", "--sftp", "1") == (
        "error: --sftp: must be 'on' or 'off'"
    )
    assert fails(daemon, "share", "update", "docs", "--smb", "maybe") == (
        "error: --smb: must be 'on' or 'off'"
    )
    assert js(daemon, "share", "show", "docs")["sftp"] is True
    assert "x" not in {s["name"] for s in js(daemon, "share", "list")}


def test_share_sync(daemon: Daemon) -> None:
    assert shown(daemon, "plain")["sync"] == "always"  # durable unless asked otherwise
    out = daemon.cli("share", "update", "plain", "--sync", "standard").stdout
    assert out.strip() == "share plain updated"
    assert js(daemon, "share", "show", "plain")["sync"] == "standard"
    assert js(daemon, "share", "create", "quick", "--pool", "tank", "--sync", "standard")[
        "sync"
    ] == ("standard")
    assert fails(daemon, "share", "update", "plain", "--sync", "never") == (
        "error: --sync: must be 'always' or 'standard'"
    )
    assert js(daemon, "share", "show", "plain")["sync"] == "standard"


# -- SSH keys --------------------------------------------------------------------------------


def test_add_key_from_a_file(daemon: Daemon, tmp_path: Path) -> None:
    line = ed25519_key("alice@laptop [work]")
    pub = tmp_path / "id_ed25519.pub"
    pub.write_text(line + "\n")
    out = daemon.cli("user", "add-key", "alice", str(pub)).stdout
    assert out.strip() == (
        f"key {fingerprint(line)} (ssh-ed25519, alice@laptop [work]) added to alice"
    )
    pem = tmp_path / "id_rsa.pub.rfc"
    block = rsa_key(2048, "")
    pem.write_text(rfc4716(block, "from ssh-keygen -e"))
    info = js(daemon, "user", "add-key", "alice", str(pem))
    assert info["fingerprint"] == fingerprint(block) and info["public_key"] == bare(block)


def test_add_key_from_standard_input(daemon: Daemon) -> None:
    first, second = ed25519_key("piped"), ed25519_key("")
    out = daemon.cli("user", "add-key", "alice", "-", input=first + "\n").stdout
    assert f"key {fingerprint(first)} (ssh-ed25519, piped) added to alice" in out
    out = daemon.cli("user", "add-key", "alice", input=second).stdout  # no FILE: stdin
    assert out.strip() == f"key {fingerprint(second)} (ssh-ed25519) added to alice"


def test_list_keys(daemon: Daemon) -> None:
    keys = js(daemon, "user", "list-keys", "alice")
    assert [k["comment"] for k in keys] == [
        "alice@laptop [work]",
        "from ssh-keygen -e",
        "piped",
        "",
    ]
    wide = daemon.cli("user", "list-keys", "alice", env={"COLUMNS": "200"}).stdout
    header, *rows = wide.strip().splitlines()
    assert header.split() == ["FINGERPRINT", "TYPE", "ADDED", "COMMENT"]
    assert [r.split()[:2] for r in rows] == [
        [keys[0]["fingerprint"], "ED25519"],
        [keys[1]["fingerprint"], "RSA"],
        [keys[2]["fingerprint"], "ED25519"],
        [keys[3]["fingerprint"], "ED25519"],
    ]
    assert rows[0].endswith("alice@laptop [work]")  # brackets are text, not markup
    assert rows[3].split()[3] == "-"  # no comment
    # on 80 columns the comment wraps; a fingerprint is never cut (it is copied to remove-key)
    narrow = daemon.cli("user", "list-keys", "alice", env={"COLUMNS": "80"}).stdout
    assert [k["fingerprint"] in narrow for k in keys] == [True] * 4


def test_refusals_are_one_line(daemon: Daemon, tmp_path: Path) -> None:
    private = tmp_path / "id_ed25519"
    private.write_text(private_openssh())
    line = fails(daemon, "user", "add-key", "alice", str(private))
    assert line == (
        "error: key: this is a private key; give the .pub file (and keep the private key secret)"
    )
    dsa = tmp_path / "id_dsa.pub"
    dsa.write_text(DSA_1024 + "\n")
    assert "key: DSA keys are not accepted" in fails(daemon, "user", "add-key", "alice", str(dsa))
    weak = rsa_key(1024)
    assert "at least 2048 bits" in fails(daemon, "user", "add-key", "alice", input=weak)
    options = f'command="ls" {ed25519_key()}'
    assert "authorized_keys options" in fails(daemon, "user", "add-key", "alice", input=options)
    two = f"{ed25519_key()}\n{ed25519_key()}\n"
    assert "holds 2 keys" in fails(daemon, "user", "add-key", "alice", input=two)
    assert "control characters" in fails(
        daemon, "user", "add-key", "alice", input=ed25519_key("evil\x1b[2J")
    )
    assert fails(daemon, "user", "add-key", "alice", str(tmp_path / "missing.pub")) == (
        f"error: cannot read {tmp_path / 'missing.pub'}: No such file or directory"
    )
    assert fails(daemon, "user", "add-key", "alice", input="") == (
        "error: standard input is empty; give the public key (.pub) file"
    )
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "is not text" in fails(daemon, "user", "add-key", "alice", str(binary))
    existing = js(daemon, "user", "list-keys", "alice")[0]["public_key"]
    assert "already has key" in fails(daemon, "user", "add-key", "alice", input=existing)
    assert "user 'nobody' does not exist" in fails(
        daemon, "user", "add-key", "nobody", input=ed25519_key()
    )
    assert len(js(daemon, "user", "list-keys", "alice")) == 4


def test_remove_key(daemon: Daemon) -> None:
    line = slash_key()
    fp = fingerprint(line)
    daemon.cli("user", "add-key", "alice", input=line)
    out = daemon.cli("user", "remove-key", "alice", fp).stdout
    assert out.strip() == f"key {fp} removed from alice"
    assert fp not in {k["fingerprint"] for k in js(daemon, "user", "list-keys", "alice")}
    assert fails(daemon, "user", "remove-key", "alice", fp) == (
        f"error: user alice has no key {fp}"
    )


def test_deleting_the_user_removes_its_keys(daemon: Daemon) -> None:
    daemon.cli("user", "delete", "alice", "--yes")
    assert "does not exist" in fails(daemon, "user", "list-keys", "alice")
    daemon.cli("user", "create", "alice", "--password-stdin", input="alice-password-2\n")
    assert js(daemon, "user", "list-keys", "alice") == []
    assert daemon.cli("user", "list-keys", "alice").stdout.strip() == (
        "alice has no SSH keys (speicher user add-key)"
    )
