"""Who may do what over SMB, checked with real clients logged in as ordinary users: grants,
passwords, disabled and deleted users, access-based enumeration, internal folders, SMB1,
guests. One daemon and pool for the module; each test makes the users and shares it needs."""

from __future__ import annotations

import functools
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest
from smb_helpers import (
    ACCESS_DENIED,
    ACCOUNT_DISABLED,
    LOGON_FAILURE,
    NOT_FOUND,
    RawSmb,
    dropped,
    grant,
    list_shares,
    make_pool,
    make_share,
    make_user,
    raw_smb,
    refused,
    run_smbclient,
    set_smb,
    smb_user,
    status_of,
    wait_for,
)
from smbprotocol.connection import Dialects  # type: ignore[import-untyped]
from smbprotocol.exceptions import SMBResponseException  # type: ignore[import-untyped]

from speicher_testing import Daemon

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    """Pool ``tank``; share ``docs`` with alice rw and bob ro; carol has no grant."""
    make_pool(daemon)
    for user in ("alice", "bob", "carol"):
        make_user(daemon, user)
    docs = make_share(daemon, "docs", {"alice": "rw", "bob": "ro"})
    return {"docs": docs}


def session_users(daemon: Daemon) -> set[str]:
    status = daemon.api.get("/smb/status")
    assert status.status_code == 200, status.text
    return {s["user"] for s in status.json()["sessions"]}


def test_rw_user_reads_writes_renames_and_deletes(daemon: Daemon, world: dict[str, Any]) -> None:
    docs: Path = world["docs"]
    with smb_user(daemon, "alice") as alice:
        alice.write("docs", "notes.txt", b"first draft")
        assert alice.read("docs", "notes.txt") == b"first draft"
        alice.write("docs", "notes.txt", b"second draft")
        alice.write("docs", "notes.txt", b", reviewed", mode="ab")
        alice.mkdir("docs", "plans")
        alice.mkdir("docs", "plans/2025")
        alice.rename("docs", "notes.txt", "plans/2025/notes.txt")
        alice.rename("docs", "plans", "archive")
        assert "archive" in alice.listdir("docs") and "plans" not in alice.listdir("docs")
        assert alice.listdir("docs", "archive/2025") == ["notes.txt"]
        assert alice.read("docs", "archive/2025/notes.txt") == b"second draft, reviewed"

        # the server wrote it as alice's own account, not as root
        stored = docs / "archive" / "2025" / "notes.txt"
        assert stored.read_bytes() == b"second draft, reviewed"
        assert stored.stat().st_uid == pwd.getpwnam(daemon.unix_name("alice")).pw_uid

        alice.remove("docs", "archive/2025/notes.txt")
        alice.rmdir("docs", "archive/2025")
        alice.rmdir("docs", "archive")
        assert "archive" not in alice.listdir("docs")
    assert not (docs / "archive").exists()


def test_rw_user_with_smbclient(daemon: Daemon, world: dict[str, Any], tmp_path: Path) -> None:
    docs: Path = world["docs"]
    local = tmp_path / "upload.txt"
    local.write_text("uploaded with smbclient\n")
    back = tmp_path / "back.txt"
    result = run_smbclient(
        daemon,
        "docs",
        "mkdir inbox",
        f"put {local} inbox\\upload.txt",
        "rename inbox\\upload.txt inbox\\renamed.txt",
        f"get inbox\\renamed.txt {back}",
        user="alice",
    )
    assert result.returncode == 0, result.stdout
    assert back.read_text() == "uploaded with smbclient\n"
    assert (docs / "inbox" / "renamed.txt").read_text() == "uploaded with smbclient\n"
    result = run_smbclient(
        daemon, "docs", "del inbox\\renamed.txt", "rmdir inbox", "ls", user="alice"
    )
    assert result.returncode == 0, result.stdout
    assert "inbox" not in result.stdout
    assert not (docs / "inbox").exists()


def test_ro_user_reads_but_every_write_is_refused(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    with smb_user(daemon, "alice") as alice:
        alice.mkdir("docs", "shared")
        alice.mkdir("docs", "shared/empty")
        alice.write("docs", "shared/report.txt", b"quarterly numbers")

    with smb_user(daemon, "bob") as bob:
        assert bob.read("docs", "shared/report.txt") == b"quarterly numbers"
        assert set(bob.listdir("docs", "shared")) == {"empty", "report.txt"}
        writes = {
            "create": lambda: bob.write("docs", "shared/bob.txt", b"mine"),
            "overwrite": lambda: bob.write("docs", "shared/report.txt", b"changed"),
            "append": lambda: bob.write("docs", "shared/report.txt", b"more", mode="ab"),
            "rename": lambda: bob.rename("docs", "shared/report.txt", "shared/moved.txt"),
            "delete": lambda: bob.remove("docs", "shared/report.txt"),
            "mkdir": lambda: bob.mkdir("docs", "shared/bobdir"),
            "rmdir": lambda: bob.rmdir("docs", "shared/empty"),
        }
        for what, action in writes.items():
            try:
                refused(action, ACCESS_DENIED)
            except AssertionError as exc:
                raise AssertionError(f"{what}: {exc}") from None
        assert bob.read("docs", "shared/report.txt") == b"quarterly numbers"

    local = tmp_path / "bob.txt"
    local.write_text("bob was here")
    result = run_smbclient(daemon, "docs", f"put {local} shared\\bob.txt", user="bob")
    assert result.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in result.stdout, result.stdout

    assert sorted(p.name for p in (docs / "shared").iterdir()) == ["empty", "report.txt"]
    assert (docs / "shared" / "report.txt").read_bytes() == b"quarterly numbers"


def test_user_without_grant_is_refused_at_tree_connect(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    # carol's password is right, so the session is set up; the share is what she may not use
    with pytest.raises(SMBResponseException) as raised:
        RawSmb(daemon, "carol", "docs")
    assert status_of(raised.value) == ACCESS_DENIED
    with raw_smb(daemon, "alice", "docs") as alice:  # the same way in works for alice
        assert alice.tree.tree_connect_id

    result = run_smbclient(daemon, "docs", "ls", user="carol")
    assert result.returncode != 0, result.stdout
    assert "tree connect failed: NT_STATUS_ACCESS_DENIED" in result.stdout


def test_wrong_password_is_a_logon_failure(daemon: Daemon, world: dict[str, Any]) -> None:
    for user, secret in (("alice", "not-her-password"), ("nosuchuser", "any-password-1")):
        with pytest.raises(SMBResponseException) as raised:
            RawSmb(daemon, user, "docs", secret=secret)
        assert status_of(raised.value) == LOGON_FAILURE, user
        result = run_smbclient(daemon, "docs", "ls", user=user, secret=secret)
        assert result.returncode != 0
        assert "session setup failed: NT_STATUS_LOGON_FAILURE" in result.stdout, result.stdout


def test_abe_hides_shares_a_user_may_not_open(daemon: Daemon, world: dict[str, Any]) -> None:
    make_share(daemon, "projects", {"alice": "rw"}, access_based_enumeration=True)
    assert "projects" in list_shares(daemon, "alice")
    assert "projects" not in list_shares(daemon, "carol")
    assert "docs" in list_shares(daemon, "carol")  # docs has no ABE: listed, though not hers

    set_smb(daemon, "projects", access_based_enumeration=False)
    assert "projects" in list_shares(daemon, "carol")
    set_smb(daemon, "projects", access_based_enumeration=True)
    assert "projects" not in list_shares(daemon, "carol")


def test_abe_hides_unreadable_files_and_folders(daemon: Daemon, world: dict[str, Any]) -> None:
    path = make_share(daemon, "team", {"alice": "rw", "bob": "ro"}, access_based_enumeration=True)
    # as root, after every grant: the default ACL makes visible.txt readable for the grantees;
    # secret.txt and private/ lose their ACL and are root's alone
    (path / "visible.txt").write_text("for everyone")
    (path / "secret.txt").write_text("root only")
    (path / "private").mkdir()
    for name in ("secret.txt", "private"):
        subprocess.run(["setfacl", "-b", str(path / name)], check=True)
    os.chmod(path / "secret.txt", 0o600)
    os.chmod(path / "private", 0o700)

    with smb_user(daemon, "bob") as bob:
        assert sorted(bob.listdir("team")) == ["visible.txt"]
        assert bob.read("team", "visible.txt") == b"for everyone"

        set_smb(daemon, "team", access_based_enumeration=False)
        bob.close()  # a new connection sees the share's new settings
        assert sorted(bob.listdir("team")) == ["private", "secret.txt", "visible.txt"]
        refused(lambda: bob.read("team", "secret.txt"), ACCESS_DENIED)
        set_smb(daemon, "team", access_based_enumeration=True)


def test_password_change_takes_effect_at_once(daemon: Daemon, world: dict[str, Any]) -> None:
    make_user(daemon, "dave")
    grant(daemon, "docs", "dave", "rw")
    assert run_smbclient(daemon, "docs", "ls", user="dave").returncode == 0

    r = daemon.api.put("/users/dave/password", json={"password": "dave-password-2"})
    assert r.status_code == 204, r.text

    result = run_smbclient(daemon, "docs", "ls", user="dave")
    assert "NT_STATUS_LOGON_FAILURE" in result.stdout, result.stdout
    with pytest.raises(SMBResponseException) as raised:
        RawSmb(daemon, "dave", "docs")
    assert status_of(raised.value) == LOGON_FAILURE

    result = run_smbclient(daemon, "docs", "ls", user="dave", secret="dave-password-2")
    assert result.returncode == 0, result.stdout
    with smb_user(daemon, "dave", "dave-password-2") as dave:
        dave.write("docs", "dave.txt", b"new password works")
        assert dave.read("docs", "dave.txt") == b"new password works"


def test_disabling_a_user_refuses_logins_and_drops_sessions(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    make_user(daemon, "erin")
    grant(daemon, "docs", "erin", "rw")
    with raw_smb(daemon, "erin", "docs") as erin:
        handle = erin.open("erin.txt", write=True)
        handle.write(b"before", 0)
        assert "erin" in session_users(daemon)

        r = daemon.api.patch("/users/erin", json={"enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False, r.text

        dropped(lambda: handle.write(b" after", 6))
        wait_for("erin's session is gone", lambda: "erin" not in session_users(daemon))

    with pytest.raises(SMBResponseException) as raised:
        RawSmb(daemon, "erin", "docs")
    assert status_of(raised.value) in (ACCOUNT_DISABLED, LOGON_FAILURE)
    result = run_smbclient(daemon, "docs", "ls", user="erin")
    assert result.returncode != 0
    assert "NT_STATUS_ACCOUNT_DISABLED" in result.stdout or "LOGON_FAILURE" in result.stdout
    assert (world["docs"] / "erin.txt").read_bytes() == b"before"

    # enabling the account again lets erin back in with the same password
    r = daemon.api.patch("/users/erin", json={"enabled": True})
    assert r.status_code == 200, r.text
    with smb_user(daemon, "erin") as again:
        assert again.read("docs", "erin.txt") == b"before"


def test_deleting_a_user_refuses_logins_and_drops_sessions(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    make_user(daemon, "frank")
    grant(daemon, "docs", "frank", "rw")
    with raw_smb(daemon, "frank", "docs") as frank:
        handle = frank.open("frank.txt", write=True)
        handle.write(b"frank's", 0)
        assert "frank" in session_users(daemon)

        assert daemon.api.delete("/users/frank").status_code == 204

        dropped(lambda: handle.read(0, 7))
        wait_for("frank's session is gone", lambda: "frank" not in session_users(daemon))

    with pytest.raises(SMBResponseException) as raised:
        RawSmb(daemon, "frank", "docs")
    assert status_of(raised.value) == LOGON_FAILURE
    result = run_smbclient(daemon, "docs", "ls", user="frank")
    assert "NT_STATUS_LOGON_FAILURE" in result.stdout, result.stdout


def test_internal_folder_is_invisible_and_unreachable(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    with smb_user(daemon, "alice") as alice:
        # a client cannot make the folder where it does not exist yet
        refused(lambda: alice.mkdir("docs", ".speicher"), *NOT_FOUND, ACCESS_DENIED)
        assert not (docs / ".speicher").exists()

        # created by root inside the share, so the share's default ACL lets alice read it:
        # only the veto keeps it out of reach
        (docs / ".speicher").mkdir()
        (docs / ".speicher" / "secret.txt").write_text("internal")
        alice.write("docs", "ordinary.txt", b"x")
        listing = alice.listdir("docs")
        assert "ordinary.txt" in listing and ".speicher" not in listing
        for name in (".speicher/secret.txt", ".SPEICHER/secret.txt", ".Speicher/secret.txt"):
            refused(functools.partial(alice.read, "docs", name), *NOT_FOUND, ACCESS_DENIED)
        refused(lambda: alice.listdir("docs", ".speicher"), *NOT_FOUND, ACCESS_DENIED)
        refused(
            lambda: alice.write("docs", ".speicher/planted.txt", b"x"), *NOT_FOUND, ACCESS_DENIED
        )
        refused(lambda: alice.remove("docs", ".speicher/secret.txt"), *NOT_FOUND, ACCESS_DENIED)
        refused(lambda: alice.rename("docs", ".speicher", "exposed"), *NOT_FOUND, ACCESS_DENIED)
    assert sorted(p.name for p in (docs / ".speicher").iterdir()) == ["secret.txt"]
    assert not (docs / "exposed").exists()

    result = run_smbclient(daemon, "docs", "ls", user="alice")
    assert result.returncode == 0, result.stdout
    names = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert "ordinary.txt" in names and ".speicher" not in names, result.stdout
    got = tmp_path / "secret.txt"
    result = run_smbclient(daemon, "docs", f"get .speicher\\secret.txt {got}", user="alice")
    assert result.returncode != 0 and "NT_STATUS_OBJECT_PATH_NOT_FOUND" in result.stdout
    assert not got.exists()


def test_smb_show_prints_the_effective_config_and_smb1_is_refused(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    shown = daemon.cli("smb", "show").stdout
    assert shown == (daemon.state_dir / "samba" / "smb.conf").read_text()
    assert shown == daemon.api.get("/smb/config").text
    assert "\n[docs]\n" in shown
    assert f"    path = {world['docs']}\n" in shown
    assert "    server min protocol = SMB2_02\n" in shown

    nt1 = run_smbclient(
        daemon,
        "docs",
        "ls",
        user="alice",
        options=("--option=client min protocol=NT1", "--option=client max protocol=NT1"),
    )
    assert nt1.returncode != 0, nt1.stdout
    assert "protocol negotiation failed" in nt1.stdout or "No compatible protocol" in nt1.stdout
    assert "blocks of size" not in nt1.stdout

    # the lowest dialect offered is SMB 2.0.2, and it works
    result = run_smbclient(daemon, "docs", "ls", user="alice", options=("-m", "SMB2_02"))
    assert result.returncode == 0, result.stdout
    with raw_smb(daemon, "alice", "docs", dialect=Dialects.SMB_2_0_2) as old:
        assert old.dialect == Dialects.SMB_2_0_2


def test_guest_reads_only_where_guest_access_is_on(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    make_share(daemon, "public", {"alice": "rw"})
    got = tmp_path / "welcome.txt"
    off = run_smbclient(daemon, "public", "ls")
    assert off.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in off.stdout, off.stdout

    set_smb(daemon, "public", guest=True)
    try:
        assert "map to guest = Bad User" in daemon.api.get("/smb/config").text
        with smb_user(daemon, "alice") as alice:
            alice.write("public", "welcome.txt", b"hello, guest")
        on = run_smbclient(daemon, "public", f"get welcome.txt {got}")
        assert on.returncode == 0, on.stdout
        assert got.read_text() == "hello, guest"
        # guests only read
        put = run_smbclient(daemon, "public", f"put {got} guest.txt")
        assert put.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in put.stdout, put.stdout
        # and only here
        other = run_smbclient(daemon, "docs", "ls")
        assert other.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in other.stdout, other.stdout
        # a wrong password of a real user still fails instead of falling back to guest
        wrong = run_smbclient(daemon, "public", "ls", user="alice", secret="wrong-password")
        assert "NT_STATUS_LOGON_FAILURE" in wrong.stdout, wrong.stdout
    finally:
        set_smb(daemon, "public", guest=False)

    got.unlink()
    again = run_smbclient(daemon, "public", f"get welcome.txt {got}")
    assert again.returncode != 0 and not got.exists(), again.stdout
    assert "map to guest = Never" in daemon.api.get("/smb/config").text


def test_guest_reads_files_written_before_guest_access_was_on(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    make_share(daemon, "lobby", {"alice": "rw"})
    with smb_user(daemon, "alice") as alice:
        alice.mkdir("lobby", "info")
        alice.write("lobby", "info/hours.txt", b"open 9 to 5")
    set_smb(daemon, "lobby", guest=True)
    got = tmp_path / "hours.txt"
    result = run_smbclient(daemon, "lobby", f"get info\\hours.txt {got}")
    assert result.returncode == 0, result.stdout
    assert got.read_text() == "open 9 to 5"


def acl_of(path: Path) -> dict[str, str]:
    """``getfacl`` of one file as {entry without its permissions: permissions}, e.g.
    ``{"user::": "rw-", "mask::": "rw-", "user:t1-ann:": "rwx"}`` (effective rights aside)."""
    out = subprocess.run(
        ["getfacl", "--omit-header", "--absolute-names", "--numeric", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries = {}
    for raw in out.splitlines():
        line = raw.split("#")[0].strip()
        if line and not line.startswith("default:"):
            head, perms = line.rsplit(":", 1)
            entries[head + ":"] = perms
    return entries


def test_a_team_edits_each_others_files_and_folders(daemon: Daemon, world: dict[str, Any]) -> None:
    """Two users granted rw directly, and two through a group: each edits, renames, deletes and
    writes into what the other made (a mask of r-- / r-x from Samba's create and directory
    masks used to cap the grantees' entries, so only the owner could)."""
    for user in ("ann", "ben", "cara", "dan"):
        make_user(daemon, user)
    assert daemon.api.post("/groups", json={"name": "crew"}).status_code == 201
    for user in ("cara", "dan"):
        assert daemon.api.put(f"/groups/crew/members/{user}").status_code == 200
    team = make_share(daemon, "team-room", {"ann": "rw", "ben": "rw"})
    r = daemon.api.post("/shares/team-room/grants", json={"group": "crew", "access": "rw"})
    assert r.status_code == 200, r.text

    def make(maker: str) -> None:
        with smb_user(daemon, maker) as c:
            c.write("team-room", f"{maker}.txt", f"by {maker}".encode())
            c.mkdir("team-room", f"{maker}-dir")
            c.write("team-room", f"{maker}-dir/inside.txt", b"inside")
            c.mkdir("team-room", f"{maker}-dir/sub")

    def edit(editor: str, maker: str) -> None:
        with smb_user(daemon, editor) as c:
            name, folder = f"{maker}.txt", f"{maker}-dir"
            c.write("team-room", name, f"{editor} rewrote it".encode())
            c.write("team-room", name, b", appended", mode="ab")
            assert c.read("team-room", name) == f"{editor} rewrote it, appended".encode()
            c.write("team-room", f"{folder}/inside.txt", f"{editor} was here".encode())
            c.write("team-room", f"{folder}/{editor}-new.txt", b"new in the other's folder")
            c.mkdir("team-room", f"{folder}/sub/{editor}-sub")
            c.rename("team-room", name, f"{folder}/{maker}-moved.txt")
            c.rename("team-room", folder, f"{folder}-renamed-by-{editor}")
            folder = f"{folder}-renamed-by-{editor}"
            assert sorted(c.listdir("team-room", folder)) == sorted(
                [f"{maker}-moved.txt", "inside.txt", f"{editor}-new.txt", "sub"]
            )
            for f in (f"{maker}-moved.txt", "inside.txt", f"{editor}-new.txt"):
                c.remove("team-room", f"{folder}/{f}")
            c.rmdir("team-room", f"{folder}/sub/{editor}-sub")
            c.rmdir("team-room", f"{folder}/sub")
            c.rmdir("team-room", folder)

    pairs = [("ann", "ben"), ("ben", "ann"), ("cara", "dan"), ("dan", "cara"), ("ann", "cara")]
    for maker in ("ann", "ben", "cara", "dan"):
        make(maker)
    # what Samba made: the grantees' entries are not capped (mask rw- on files, rwx on
    # folders); the owner keeps Samba's rwx; nobody else gets anything
    for maker in ("ann", "ben", "cara", "dan"):
        file_acl = acl_of(team / f"{maker}.txt")
        assert file_acl["user::"] == "rwx" and file_acl["mask::"] == "rw-", file_acl
        assert file_acl["group::"] == "---" and file_acl["other::"] == "---", file_acl
        dir_acl = acl_of(team / f"{maker}-dir")
        assert dir_acl["user::"] == "rwx" and dir_acl["mask::"] == "rwx", dir_acl
        assert dir_acl["group::"] == "---" and dir_acl["other::"] == "---", dir_acl
    # the grantees' named entries are there, with their grants' rights
    entries = acl_of(team / "ann.txt")
    uid = pwd.getpwnam(daemon.unix_name("ben")).pw_uid
    assert entries[f"user:{uid}:"] == "rwx", entries

    for editor, maker in pairs:
        if maker == "cara" and editor == "ann":
            make("cara")  # dan already took cara's things apart
        try:
            edit(editor, maker)
        except Exception as exc:
            raise AssertionError(f"{editor} on {maker}'s: {exc!r}") from exc
    assert sorted(p.name for p in team.iterdir()) == []
