"""Who may do what over SFTP: grants, disabled, unknown and file-access-less users, no shell
or forwarding, lockouts, uploads that end without a close, full quotas, links, host keys.
One daemon and pool for the module; each test makes the users and shares it needs."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import asyncssh
import pytest
from sftp_helpers import (
    HOST,
    MiB,
    add_key,
    connect,
    grant,
    kill_group,
    make_key,
    make_pool,
    make_share,
    make_user,
    password,
    run,
    run_scp,
    run_sftp,
    run_ssh,
    ssh_options,
    temp_files,
    wait_for,
)

from speicher_testing import Daemon

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    """Pool ``tank``; share ``docs`` with alice rw and bob ro; carol has no grant; dave is an
    API user without file access."""
    make_pool(daemon)
    for user in ("alice", "bob", "carol"):
        make_user(daemon, user)
    make_user(daemon, "dave", file_access=False)
    docs = make_share(daemon, "docs", {"alice": "rw", "bob": "ro"})
    return {"docs": docs}


def alice_uid(daemon: Daemon) -> int:
    return pwd.getpwnam(daemon.unix_name("alice")).pw_uid


def seed(daemon: Daemon, path: Path, data: bytes) -> None:
    """A file of alice's, made on the server."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chown(path, alice_uid(daemon), -1)


def test_ro_user_reads_but_every_write_is_refused(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    seed(daemon, docs / "shared" / "report.txt", b"quarterly numbers")
    (docs / "shared" / "empty").mkdir()

    async def check() -> None:
        async with await connect(daemon, "bob") as conn, conn.start_sftp_client() as sftp:
            async with sftp.open("/docs/shared/report.txt", "rb") as fh:
                assert cast(bytes, await fh.read()) == b"quarterly numbers"
            attrs = await sftp.stat("/docs/shared/report.txt")
            assert attrs.permissions is not None and attrs.permissions & 0o222 == 0
            writes: dict[str, Any] = {
                "create": sftp.open("/docs/shared/bob.txt", "wb"),
                "overwrite": sftp.open("/docs/shared/report.txt", "wb"),
                "append": sftp.open("/docs/shared/report.txt", "ab"),
                "in place": sftp.open("/docs/shared/report.txt", "r+b"),
                "rename": sftp.rename("/docs/shared/report.txt", "/docs/shared/moved.txt"),
                "posix-rename": sftp.posix_rename(
                    "/docs/shared/report.txt", "/docs/shared/moved.txt"
                ),
                "remove": sftp.remove("/docs/shared/report.txt"),
                "mkdir": sftp.mkdir("/docs/shared/bobdir"),
                "rmdir": sftp.rmdir("/docs/shared/empty"),
                "mtime": sftp.utime("/docs/shared/report.txt", (1, 1)),
                "truncate": sftp.truncate("/docs/shared/report.txt", 1),
            }
            for what, action in writes.items():
                with pytest.raises(asyncssh.SFTPPermissionDenied):
                    await action
                    raise AssertionError(f"{what} was allowed")

    run(check())
    assert (docs / "shared" / "report.txt").read_bytes() == b"quarterly numbers"
    assert sorted(os.listdir(docs / "shared")) == ["empty", "report.txt"]
    local = tmp_path / "bob.txt"
    local.write_text("bob was here")
    result = run_sftp(daemon, "bob", f"put {local} /docs/shared/bob.txt")
    assert result.returncode != 0 and "Permission denied" in result.stdout, result.stdout
    result = run_sftp(daemon, "bob", "ls -l /docs/shared")
    assert result.returncode == 0 and "-r--r--r--" in result.stdout, result.stdout


def test_unknown_disabled_and_fileless_users_are_refused_alike(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    make_user(daemon, "erin")
    grant(daemon, "docs", "erin", "rw")
    r = daemon.api.patch("/users/erin", json={"enabled": False})
    assert r.status_code == 200, r.text

    async def refused(user: str, secret: str | None = None) -> str:
        with pytest.raises(asyncssh.PermissionDenied) as caught:
            await connect(daemon, user, secret, source="127.0.0.3")
        return str(caught.value)

    answers = {
        "unknown": run(refused("nobody")),
        "wrong password": run(refused("alice", "wrong-password-1")),
        "disabled": run(refused("erin")),
        "without file access": run(refused("dave")),
        "admin without file access": run(refused("admin", "admin-secret-1")),
    }
    # the same words for all, but the name the client gave
    assert (
        len(
            {
                a.replace(f"user {u} ", "user X ")
                for a, u in zip(
                    answers.values(), ("nobody", "alice", "erin", "dave", "admin"), strict=True
                )
            }
        )
        == 1
    ), answers
    for user in ("erin", "dave", "nobody"):
        result = run_sftp(daemon, user, "ls")
        assert result.returncode != 0, result.stdout


def test_disabling_a_user_ends_their_session(daemon: Daemon, world: dict[str, Any]) -> None:
    make_user(daemon, "frank")
    grant(daemon, "docs", "frank", "rw")

    async def check() -> None:
        conn = await connect(daemon, "frank")
        sftp = await conn.start_sftp_client()
        assert "docs" in await sftp.listdir("/")
        r = await asyncio.to_thread(daemon.api.patch, "/users/frank", json={"enabled": False})
        assert r.status_code == 200, r.text
        await asyncio.wait_for(conn.wait_closed(), 15)

    run(check())


def test_revoked_grant_takes_effect_at_the_next_request(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    make_user(daemon, "grace")
    grant(daemon, "docs", "grace", "rw")

    async def check() -> None:
        async with await connect(daemon, "grace") as conn, conn.start_sftp_client() as sftp:
            await sftp.mkdir("/docs/grace")
            r = await asyncio.to_thread(daemon.api.delete, "/shares/docs/grants/user/grace")
            assert r.status_code in (200, 204), r.text
            with pytest.raises(asyncssh.SFTPNoSuchFile):
                await sftp.listdir("/docs")
            assert "docs" not in await sftp.listdir("/")

    run(check())


def test_no_shell_no_exec_no_legacy_scp_no_forwarding(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    assert run_ssh(daemon, "alice", "-T").returncode != 0
    result = run_ssh(daemon, "alice", "id")
    assert result.returncode != 0 and "uid=" not in result.stdout, result.stdout
    local = tmp_path / "x.txt"
    local.write_text("x")
    result = run_scp(daemon, "alice", str(local), f"alice@{HOST}:/docs/x.txt", legacy=True)
    assert result.returncode != 0, result.stdout
    assert not (world["docs"] / "x.txt").exists()

    async def check() -> None:
        async with await connect(daemon, "alice") as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_connection(HOST, daemon.port)  # direct-tcpip (-L)
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.start_server(lambda *_: None, "127.0.0.1", 0)  # tcpip-forward (-R)
            for request in ({"command": "id"}, {}, {"subsystem": "netconf"}):
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.create_process(**request)

    run(check())


def test_repeated_failed_logins_lock_the_address_and_the_user_out(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    make_user(daemon, "heidi")
    grant(daemon, "docs", "heidi", "rw")
    source = "127.0.0.2"  # locking 127.0.0.2 leaves the other tests' 127.0.0.1 alone

    async def attempt(user: str, secret: str) -> bool:
        try:
            conn = await connect(daemon, user, secret, source=source)
        except asyncssh.PermissionDenied:
            return False
        conn.close()
        await conn.wait_closed()
        return True

    async def check() -> None:
        started = time.monotonic()
        results = await asyncio.gather(*(attempt("heidi", f"guess-{i}") for i in range(10)))
        assert not any(results)
        assert time.monotonic() - started >= 1.0, "failures must be answered slowly"
        # now even the right password is refused, from that address and for that user
        assert not await attempt("heidi", password("heidi"))
        assert not await attempt("alice", password("alice"))

    run(check())
    events = daemon.api.get("/events", params={"kind": "auth.lockout"}).json()
    subjects = {e["subject"] for e in events}
    assert {"heidi", source} <= subjects, events
    assert sum(1 for e in events if e["subject"] == "heidi") == 1  # one event per lockout
    info = daemon.api.get("/sftp").json()
    assert info["failed_logins"] >= 12 and info["lockouts"] >= 2, info
    # one failure is no event: the event log holds no per-failure noise
    assert not daemon.api.get("/events", params={"kind": "sftp.login_failed"}).json()
    # other addresses and users are not affected
    result = run_sftp(daemon, "alice", "ls /docs")
    assert result.returncode == 0, result.stdout


def test_killed_client_mid_upload_leaves_the_old_file_and_no_temp_file(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    seed(daemon, docs / "keep.bin", b"the old content")

    async def abandoned() -> None:
        conn = await connect(daemon, "alice")
        sftp = await conn.start_sftp_client()
        fh = await sftp.open("/docs/keep.bin", "wb")
        for _ in range(4):
            await fh.write(os.urandom(MiB))
        assert temp_files(docs), "the upload writes to a temp file"
        conn.abort()  # the connection drops without a close of the handle

    run(abandoned())
    wait_for("the temp file removed", lambda: not temp_files(docs))
    assert (docs / "keep.bin").read_bytes() == b"the old content"

    # the same with OpenSSH, killed (with its ssh) in the middle of a large put
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(256):
            fh.write(os.urandom(MiB))
    argv = [
        "sshpass",
        "-p",
        password("alice"),
        "sftp",
        *ssh_options(daemon),
        "-P",
        str(daemon.sftp_port),
        "-b",
        "-",
        f"alice@{HOST}",
    ]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(f"put {big} /docs/keep.bin\n".encode())
    proc.stdin.close()
    try:
        wait_for(
            "the upload under way",
            lambda: any(p.stat().st_size > 8 * MiB for p in temp_files(docs)),
            timeout=60,
        )
    finally:
        kill_group(proc)
    wait_for("the temp file removed", lambda: not temp_files(docs))
    assert (docs / "keep.bin").read_bytes() == b"the old content"


def test_full_quota_is_no_space_and_the_old_file_stays(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    path = make_share(daemon, "small", {"alice": "rw"}, quota="20M")
    seed(daemon, path / "data.bin", b"old")

    async def check() -> None:
        async with await connect(daemon, "alice") as conn, conn.start_sftp_client() as sftp:
            with pytest.raises(asyncssh.SFTPFailure) as caught:
                async with sftp.open("/small/data.bin", "wb") as fh:
                    for _ in range(40):
                        await fh.write(os.urandom(MiB))
            assert "no space left" in caught.value.reason, caught.value.reason

    run(check())
    assert (path / "data.bin").read_bytes() == b"old"
    assert temp_files(path) == []
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * MiB))
    result = run_sftp(daemon, "alice", f"put {big} /small/data.bin")
    assert result.returncode != 0, result.stdout
    assert (path / "data.bin").read_bytes() == b"old"
    assert temp_files(path) == []


def test_links_are_neither_followed_nor_made(daemon: Daemon, world: dict[str, Any]) -> None:
    docs: Path = world["docs"]
    outside = docs.parent.parent / "outside.txt"  # in the mount root, outside every share
    outside.write_text("secret")
    (docs / "links").mkdir()
    (docs / "links" / "to-outside").symlink_to(outside)
    (docs / "links" / "to-etc").symlink_to("/etc")
    seed(daemon, docs / "links" / "real.txt", b"real")
    # a second name of one inode: either may be a file outside the share's reach
    seed(daemon, docs / "links" / "twin.txt", b"twin")
    os.link(docs / "links" / "twin.txt", docs / "links" / "hard.txt")

    async def check() -> None:
        async with await connect(daemon, "alice") as conn, conn.start_sftp_client() as sftp:
            assert await sftp.listdir("/docs/links") == [".", "..", "real.txt"]
            for name in ("to-outside", "to-etc/passwd", "hard.txt", "twin.txt"):
                with pytest.raises((asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied)):
                    async with sftp.open(f"/docs/links/{name}", "rb") as fh:
                        await fh.read()
            with pytest.raises(asyncssh.SFTPOpUnsupported):
                await sftp.symlink("/docs/links/real.txt", "/docs/links/new-link")
            with pytest.raises(asyncssh.SFTPOpUnsupported):
                await sftp.link("/docs/links/real.txt", "/docs/links/new-hard")
            # writing through a link is refused too; the target stays as it was
            with pytest.raises((asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied)):
                async with sftp.open("/docs/links/to-outside", "r+b") as fh:
                    await fh.write(b"overwritten")
            # odd paths: NUL, not UTF-8, parent of the root
            for bad in (b"/docs/a\x00b", b"/docs/\xff\xfe", b"/../../../etc/passwd"):
                with pytest.raises(asyncssh.SFTPError) as caught:
                    await sftp.stat(bad)
                assert "exception" not in caught.value.reason.lower(), caught.value.reason
            with pytest.raises(asyncssh.SFTPError) as caught:
                await sftp.realpath(b"/docs/a\x00b")
            assert caught.value.reason == "the path contains a NUL byte"
            assert await sftp.realpath("/../../docs/../docs/./links/..") == "/docs"

    run(check())
    assert outside.read_text() == "secret"


def test_chmod_and_chown_are_ignored_mtime_fsync_and_renames_work(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    docs: Path = world["docs"]
    seed(daemon, docs / "meta.txt", b"meta")
    mode = (docs / "meta.txt").stat().st_mode

    async def check() -> None:
        async with await connect(daemon, "alice") as conn, conn.start_sftp_client() as sftp:
            await sftp.chmod("/docs/meta.txt", 0o777)
            await sftp.chown("/docs/meta.txt", 0, 0)
            await sftp.utime("/docs/meta.txt", (1_600_000_000, 1_600_000_000))
            attrs = await sftp.stat("/docs/meta.txt")
            assert attrs.mtime == 1_600_000_000
            vfs = await sftp.statvfs("/docs")
            assert vfs.blocks > 0 and vfs.bavail > 0
            # fsync@openssh.com on an upload and on a file written in place
            async with sftp.open("/docs/synced.txt", "wb") as fh:
                await fh.write(b"durable")
                await fh.fsync()
            async with sftp.open("/docs/synced.txt", "r+b") as fh:
                await fh.write(b"D", 0)
                await fh.fsync()
            # SFTP v3 rename does not replace; posix-rename@openssh.com does
            with pytest.raises(asyncssh.SFTPFailure) as caught:
                await sftp.rename("/docs/synced.txt", "/docs/meta.txt")
            assert "exists" in caught.value.reason
            await sftp.posix_rename("/docs/synced.txt", "/docs/replaced.txt")

    run(check())
    st = (docs / "meta.txt").stat()
    assert st.st_mode == mode and st.st_uid == alice_uid(daemon)
    assert int(st.st_mtime) == 1_600_000_000
    assert (docs / "meta.txt").read_bytes() == b"meta"
    assert (docs / "replaced.txt").read_bytes() == b"Durable"


def test_public_key_login(daemon: Daemon, world: dict[str, Any], tmp_path: Path) -> None:
    key = make_key(tmp_path)
    add_key(daemon, "alice", (key.with_suffix(".pub")).read_text())
    result = run_sftp(daemon, "alice", "ls /docs", key=key)
    assert result.returncode == 0, result.stdout
    other = make_key(tmp_path, "other")
    result = run_sftp(daemon, "alice", "ls /docs", key=other)
    assert result.returncode != 0, result.stdout
    # bob's key is no way in as alice; a key of a disabled user lets nobody in
    bob = make_key(tmp_path, "bob")
    add_key(daemon, "bob", (bob.with_suffix(".pub")).read_text())
    assert run_sftp(daemon, "alice", "ls /docs", key=bob).returncode != 0
    make_user(daemon, "ivan")
    grant(daemon, "docs", "ivan", "rw")
    ivan = make_key(tmp_path, "ivan")
    add_key(daemon, "ivan", (ivan.with_suffix(".pub")).read_text())
    assert run_sftp(daemon, "ivan", "ls /docs", key=ivan).returncode == 0
    r = daemon.api.patch("/users/ivan", json={"enabled": False})
    assert r.status_code == 200, r.text
    result = run_sftp(daemon, "ivan", "ls /docs", key=ivan)
    assert result.returncode != 0, result.stdout


def test_keys_are_no_way_around_a_password_lockout(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    """A stranger who keeps a user's password logins locked does not lock out their key."""
    make_user(daemon, "judy")
    grant(daemon, "docs", "judy", "rw")
    key = make_key(tmp_path)
    add_key(daemon, "judy", (key.with_suffix(".pub")).read_text())

    async def guess(i: int) -> None:
        with pytest.raises(asyncssh.PermissionDenied):
            await connect(daemon, "judy", f"guess-{i}", source="127.0.0.4")

    async def guesses() -> None:
        await asyncio.gather(*(guess(i) for i in range(10)))

    run(guesses())
    result = run_sftp(daemon, "judy", "ls /docs")  # the password: locked
    assert result.returncode != 0, result.stdout
    result = run_sftp(daemon, "judy", "ls /docs", key=key)
    assert result.returncode == 0, result.stdout


def test_a_share_with_sftp_off_is_not_there(daemon: Daemon, world: dict[str, Any]) -> None:
    make_share(daemon, "smbonly", {"alice": "rw"}, sftp=False)
    result = run_sftp(daemon, "alice", "ls -1 /")
    assert result.returncode == 0 and "smbonly" not in result.stdout, result.stdout
    assert run_sftp(daemon, "alice", "ls /smbonly").returncode != 0
    r = daemon.api.patch("/shares/smbonly", json={"sftp": True})
    assert r.status_code == 200, r.text
    result = run_sftp(daemon, "alice", "ls -1 /")
    assert result.returncode == 0 and "smbonly" in result.stdout, result.stdout


def test_host_key_fingerprints_are_shown_and_kept_across_restarts(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    shown = daemon.cli("sftp", "show").stdout
    assert f"port {daemon.sftp_port}" in shown, shown
    listed = set(re.findall(r"SHA256:[A-Za-z0-9+/]+", shown))
    assert len(listed) == 2, shown
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(daemon.sftp_port), HOST],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    fingerprints = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"], input=scanned, capture_output=True, text=True, check=True
    ).stdout
    assert set(re.findall(r"SHA256:[A-Za-z0-9+/]+", fingerprints)) == listed
    folder = daemon.state_dir / "ssh"
    assert folder.stat().st_mode & 0o777 == 0o700
    for key in folder.glob("ssh_host_*_key"):
        assert key.stat().st_mode & 0o777 == 0o600
    status = daemon.cli("status").stdout
    assert f"sftp: up (port {daemon.sftp_port})" in status, status
    daemon.stop()
    daemon.start()
    assert set(re.findall(r"SHA256:[A-Za-z0-9+/]+", daemon.cli("sftp", "show").stdout)) == listed
    result = run_sftp(daemon, "alice", "ls /docs")
    assert result.returncode == 0, result.stdout


def test_stopping_the_daemon_ends_sessions_and_throws_open_uploads_away(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    docs: Path = world["docs"]
    seed(daemon, docs / "during-stop.bin", b"before")

    async def upload_during_stop() -> None:
        conn = await connect(daemon, "alice")
        sftp = await conn.start_sftp_client()
        fh = await sftp.open("/docs/during-stop.bin", "wb")
        await fh.write(os.urandom(MiB))
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(conn.wait_closed(), 30)

    run(upload_during_stop())
    assert daemon.proc is not None
    daemon.proc.wait(30)
    assert (docs / "during-stop.bin").read_bytes() == b"before"
    assert temp_files(docs) == []
    daemon.start()


def test_a_session_holds_a_bounded_number_of_open_files(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    seed(daemon, world["docs"] / "many.txt", b"many")

    async def check() -> None:
        async with await connect(daemon, "alice") as conn, conn.start_sftp_client() as sftp:
            handles = [await sftp.open("/docs/many.txt", "rb") for _ in range(256)]
            with pytest.raises(asyncssh.SFTPFailure) as caught:
                await sftp.open("/docs/many.txt", "rb")
            assert "too many open files" in caught.value.reason
            for handle in handles:
                await handle.close()
            async with sftp.open("/docs/many.txt", "rb") as fh:
                assert cast(bytes, await fh.read()) == b"many"
            sessions = [await conn.start_sftp_client() for _ in range(7)]
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.start_sftp_client()
            for session in sessions:
                session.exit()

    run(check())


def test_a_user_name_no_user_can_have_never_reaches_events_or_the_log(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    """Control characters in a user name are refused by asyncssh already (SASLprep); what is
    left, any other text, is counted as '(invalid name)'."""
    forged = "alice 2026-01-01 00:00:00 INFO speicher.events: forged line " + "x" * 300

    async def guess(i: int) -> None:
        with pytest.raises(asyncssh.PermissionDenied):
            await connect(daemon, forged, f"guess-{i}", source="127.0.0.5")

    async def guesses() -> None:
        await asyncio.gather(*(guess(i) for i in range(10)))

    run(guesses())
    events = daemon.api.get("/events", params={"kind": "auth.lockout"}).json()
    subjects = {e["subject"] for e in events}
    assert "127.0.0.5" in subjects and "(invalid name)" in subjects, subjects
    assert not any("forged" in e["subject"] + e["message"] for e in events), events
    assert "forged line" not in daemon.log()
