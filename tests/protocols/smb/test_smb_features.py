"""Share features over SMB, with real clients: the recycle bin and its purge, Previous Versions
from snapshots, quotas as the disk size clients see, required encryption."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smb_helpers import (
    ACCESS_DENIED,
    DISK_FULL,
    RawSmb,
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

from speicher.protection.snapshots import parse_name
from speicher_testing import Daemon

pytestmark = pytest.mark.system

MiB = 1024**2
DAY = 24 * 3600


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    """Pool ``tank`` with users alice and bob."""
    make_pool(daemon)
    for user in ("alice", "bob"):
        make_user(daemon, user)
    return {}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_recycle_bin_keeps_deleted_files_and_purges_old_ones(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    path = make_share(daemon, "bin", {"alice": "rw", "bob": "ro"}, recycle=True)
    recycle = path / "#recycle"
    with smb_user(daemon, "alice") as alice:
        for folder in ("reports", "reports/2024", "old", "fresh"):
            alice.mkdir("bin", folder)
        alice.write("bin", "reports/2024/q1.txt", b"q1 numbers")
        alice.write("bin", "old/a.txt", b"aged in the bin")
        alice.write("bin", "fresh/b.txt", b"last touched long ago")
        # the bin counts days from the deletion, not from the file's last change
        long_ago = time.time() - 10 * DAY
        os.utime(path / "fresh" / "b.txt", (long_ago, long_ago))

        for name in ("reports/2024/q1.txt", "old/a.txt", "fresh/b.txt"):
            alice.remove("bin", name)
        assert alice.listdir("bin", "reports/2024") == []

        # the folder tree is kept inside #recycle, and the files are intact there
        assert (recycle / "reports" / "2024" / "q1.txt").read_bytes() == b"q1 numbers"
        assert (recycle / "old" / "a.txt").read_bytes() == b"aged in the bin"
        assert time.time() - (recycle / "fresh" / "b.txt").stat().st_mtime < 120
        assert "#recycle" in alice.listdir("bin")
        assert alice.listdir("bin", "#recycle/reports/2024") == ["q1.txt"]
        assert alice.read("bin", "#recycle/reports/2024/q1.txt") == b"q1 numbers"

        # deleting a file of the same name again keeps both versions
        alice.write("bin", "fresh/b.txt", b"second b")
        alice.remove("bin", "fresh/b.txt")
        assert sorted(p.name for p in (recycle / "fresh").iterdir()) == [
            "Copy #1 of b.txt",
            "b.txt",
        ]
        assert (recycle / "fresh" / "Copy #1 of b.txt").read_bytes() == b"second b"

    # three days in the bin: kept while the share keeps deleted files 30 days ...
    three_days_ago = time.time() - 3 * DAY
    os.utime(recycle / "old" / "a.txt", (three_days_ago, three_days_ago))
    assert daemon.api.get("/shares/bin").json()["smb"]["recycle_days"] == 30
    time.sleep(4.5)  # two runs of the monitor
    assert (recycle / "old" / "a.txt").exists()

    # ... purged by the monitor once it keeps them one day; fresh deletions stay
    set_smb(daemon, "bin", recycle_days=1)
    wait_for("the aged file is purged", lambda: not (recycle / "old" / "a.txt").exists())
    assert not (recycle / "old").exists()  # emptied folders go too
    assert (recycle / "reports" / "2024" / "q1.txt").read_bytes() == b"q1 numbers"
    assert (recycle / "fresh" / "b.txt").exists()
    assert (recycle / "fresh" / "Copy #1 of b.txt").exists()


def test_previous_versions_from_snapshots(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    path = make_share(daemon, "history", {"alice": "rw", "bob": "ro"})
    with smb_user(daemon, "alice") as alice:
        alice.mkdir("history", "folder")
        alice.write("history", "plan.txt", b"version 1")
        alice.write("history", "folder/deep.txt", b"deep 1")

        r = daemon.api.post("/shares/history/snapshots", json={})
        assert r.status_code == 201, r.text
        snap = r.json()["name"]
        taken = parse_name(snap)
        assert taken is not None

        alice.write("history", "plan.txt", b"version 2, longer")
        alice.remove("history", "folder/deep.txt")
        alice.write("history", "new.txt", b"not in the snapshot")
    assert [s["name"] for s in daemon.api.get("/shares/history/snapshots").json()] == [snap]

    # smbclient (as the read-only user): the snapshot is a previous version of plan.txt
    info = run_smbclient(daemon, "history", "allinfo plan.txt", user="bob")
    assert info.returncode == 0, info.stdout
    assert snap in info.stdout
    old, now, deep = tmp_path / "old.txt", tmp_path / "now.txt", tmp_path / "deep.txt"
    got = run_smbclient(
        daemon,
        "history",
        f"get {snap}\\plan.txt {old}",
        f"get plan.txt {now}",
        f"get {snap}\\folder\\deep.txt {deep}",
        user="bob",
    )
    assert got.returncode == 0, got.stdout
    assert old.read_bytes() == b"version 1"
    assert now.read_bytes() == b"version 2, longer"
    assert deep.read_bytes() == b"deep 1"  # deleted since, still there in the snapshot
    listing = run_smbclient(daemon, "history", f"ls {snap}\\*", user="bob")
    assert "plan.txt" in listing.stdout and "new.txt" not in listing.stdout, listing.stdout

    # smbprotocol: what Windows Explorer does for "Previous Versions"
    with raw_smb(daemon, "bob", "history") as bob:
        assert bob.snapshots() == [snap]
        handle = bob.open("plan.txt", timewarp=taken)
        try:
            assert handle.read(0, 100) == b"version 1"
        finally:
            handle.close()
        handle = bob.open("plan.txt")
        try:
            assert handle.read(0, 100) == b"version 2, longer"
        finally:
            handle.close()

    # snapshots are read-only, even for a user who may write the share
    upload = tmp_path / "upload.txt"
    upload.write_text("tampered")
    put = run_smbclient(daemon, "history", f"put {upload} {snap}\\plan.txt", user="alice")
    assert put.returncode != 0, put.stdout
    snapshot_dir = Path(daemon.api.get("/shares/history").json()["snapshots_dir"]) / snap
    assert (snapshot_dir / "plan.txt").read_bytes() == b"version 1"
    assert (path / "plan.txt").read_bytes() == b"version 2, longer"


def test_quota_is_the_disk_size_and_full_means_disk_full(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    path = make_share(daemon, "limited", {"alice": "rw"}, quota="50M")
    pool_size = daemon.api.get("/pools/tank").json()["size"]
    assert pool_size > 1024 * MiB
    keep = os.urandom(MiB)
    with smb_user(daemon, "alice") as alice:
        alice.write("limited", "keep.bin", keep)
        total, free = alice.disk("limited")
        assert total == 50 * MiB, (total, pool_size)
        assert 40 * MiB < free <= 50 * MiB

        du = run_smbclient(daemon, "limited", "du", user="alice")
        blocks = re.search(r"(\d+) blocks of size (\d+)\. (\d+) blocks available", du.stdout)
        assert blocks, du.stdout
        assert int(blocks[1]) * int(blocks[2]) == 50 * MiB

        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(80 * MiB))
        put = run_smbclient(daemon, "limited", f"put {big} big.bin", user="alice")
        assert put.returncode != 0, put.stdout
        assert "NT_STATUS_DISK_FULL" in put.stdout, put.stdout

        # the share is full: smbprotocol's writes fail the same way
        refused(lambda: alice.write("limited", "more.bin", os.urandom(8 * MiB)), DISK_FULL)

        # what was there before is intact
        assert sha256(alice.read("limited", "keep.bin")) == sha256(keep)
        assert sha256((path / "keep.bin").read_bytes()) == sha256(keep)

        # and the free space clients see follows the usage (the monitor updates it)
        os.sync()  # commit, so the quota group counts what was written
        wait_for("free space shrinks", lambda: alice.disk("limited")[1] < 5 * MiB)
        assert alice.disk("limited")[0] == 50 * MiB


def test_granting_access_to_a_full_share(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    make_share(daemon, "tiny", {"alice": "rw"}, quota="10M")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * MiB))
    put = run_smbclient(daemon, "tiny", f"put {big} big.bin", user="alice")
    assert "NT_STATUS_DISK_FULL" in put.stdout, put.stdout
    r = daemon.api.post("/shares/tiny/grants", json={"user": "bob", "access": "ro"})
    assert r.status_code == 200, r.text
    listed = run_smbclient(daemon, "tiny", "ls", user="bob")
    assert listed.returncode == 0 and "big.bin" in listed.stdout, listed.stdout


def test_required_encryption(daemon: Daemon, world: dict[str, Any]) -> None:
    make_share(daemon, "vault", {"alice": "rw"}, encrypt=True)
    make_share(daemon, "open", {"alice": "rw"})
    config = daemon.api.get("/smb/config").text
    vault = config.split("[vault]")[1].split("\n[")[0]
    assert "server smb encrypt = required" in vault
    assert "smb encrypt" not in config.split("[open]")[1].split("\n[")[0]

    # an SMB3 client that did not ask for encryption is made to encrypt by the share
    with raw_smb(daemon, "alice", "vault") as alice:
        assert alice.session.encrypt_data is False
        assert alice.tree.encrypt_data is True
        handle = alice.open("sealed.txt", write=True)
        try:
            handle.write(b"top secret", 0)
            assert handle.read(0, 100) == b"top secret"
        finally:
            handle.close()
        sessions = daemon.api.get("/smb/status").json()["sessions"]
        ciphers = [s["encryption"] for s in sessions if s["user"] == "alice"]
        assert ciphers and all(c.startswith("AES") for c in ciphers), sessions
        other = alice.connect_tree("open")  # the same session on a share without the rule
        assert other.encrypt_data is False
        other.disconnect()

    # a client that cannot encrypt (SMB 2.1) is refused at the share, and only there
    with pytest.raises(SMBResponseException) as raised:
        RawSmb(daemon, "alice", "vault", dialect=Dialects.SMB_2_1_0)
    assert status_of(raised.value) == ACCESS_DENIED
    with raw_smb(daemon, "alice", "open", dialect=Dialects.SMB_2_1_0) as plain:
        assert not plain.tree.encrypt_data

    smb21 = run_smbclient(daemon, "vault", "ls", user="alice", options=("-m", "SMB2_10"))
    assert smb21.returncode != 0 and "NT_STATUS_ACCESS_DENIED" in smb21.stdout, smb21.stdout
    sealed = run_smbclient(
        daemon, "vault", "ls", user="alice", options=("--client-protection=encrypt",)
    )
    assert sealed.returncode == 0 and "sealed.txt" in sealed.stdout, sealed.stdout

    # turning the rule off lets the old client in
    set_smb(daemon, "vault", encrypt=False)
    smb21 = run_smbclient(daemon, "vault", "ls", user="alice", options=("-m", "SMB2_10"))
    assert smb21.returncode == 0 and "sealed.txt" in smb21.stdout, smb21.stdout


def test_status_shows_no_cipher_for_an_unencrypted_session(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    make_share(daemon, "plain", {"bob": "rw"})
    with raw_smb(daemon, "bob", "plain") as bob:
        assert bob.tree.encrypt_data is False
        sessions = daemon.api.get("/smb/status").json()["sessions"]
        assert [s["encryption"] for s in sessions if s["user"] == "bob"] == [""], sessions


@pytest.fixture
def slow_monitor_daemon() -> Iterator[Daemon]:
    """A daemon of its own whose monitor runs once a minute, as in production."""
    base = Path(tempfile.mkdtemp(prefix="speicher-test-", dir="/tmp"))
    base.chmod(0o755)
    d = Daemon(base)
    d.env["SPEICHER_MONITOR_INTERVAL"] = "60"
    try:
        d.start()
        make_pool(d)
        make_user(d, "alice")
        yield d
    finally:
        d.cleanup()


def test_first_upload_past_a_fresh_quota_is_disk_full_and_the_share_shows_full(
    slow_monitor_daemon: Daemon, tmp_path: Path
) -> None:
    """smbclient on a fresh 20M share, 30M upload. The server answers DISK_FULL; smbclient
    itself then prints NT_STATUS_INVALID_NETWORK_RESPONSE for the close (its cli_push drops the
    writes it still had in flight, and their answers make it call the connection broken; see
    docs/architecture.md). Right after, clients see the share as full, not as empty."""
    daemon = slow_monitor_daemon
    path = make_share(daemon, "fresh", {"alice": "rw"}, quota="20M")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(30 * MiB))
    put = run_smbclient(daemon, "fresh", f"put {big} big.bin", user="alice")
    assert put.returncode != 0, put.stdout
    assert "NT_STATUS_DISK_FULL" in put.stdout, put.stdout
    listed = run_smbclient(daemon, "fresh", "ls", user="alice")
    assert listed.returncode == 0 and "big.bin" in listed.stdout, listed.stdout
    # what the failed upload left: what fitted (Samba cannot know the client gave up)
    assert (path / "big.bin").stat().st_size <= 20 * MiB
    with smb_user(daemon, "alice") as alice:
        # no os.sync() here: the figures must not wait for btrfs's next commit
        wait_for("clients see the share full", lambda: alice.disk("fresh")[1] < MiB, timeout=20)
        assert alice.disk("fresh")[0] == 20 * MiB
        refused(lambda: alice.write("fresh", "more.bin", os.urandom(MiB)), DISK_FULL)


def test_pipelined_writes_past_a_quota_each_get_disk_full(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    """What a client that keeps several writes in flight gets: every write an answer, OK until
    the quota is reached and DISK_FULL after; the connection stays sound and the close works."""
    make_share(daemon, "piped", {"alice": "rw"}, quota="20M")
    size = 64 * 1024  # one credit each: smbprotocol waits for no credits
    chunk = os.urandom(size)
    with raw_smb(daemon, "alice", "piped") as alice:
        handle = alice.open("big.bin", write=True)
        session, tree = alice.session.session_id, alice.tree.tree_connect_id
        in_flight: list[tuple[Any, Any]] = []
        statuses: list[int] = []

        def collect() -> None:
            request, receive = in_flight.pop(0)
            try:
                assert receive(request) == size
                statuses.append(0)
            except SMBResponseException as exc:
                statuses.append(status_of(exc))

        for n in range(30 * MiB // size):
            write, receive = handle.write(chunk, n * size, send=False)
            in_flight.append((alice.connection.send(write, session, tree), receive))
            if len(in_flight) >= 16:
                collect()
        while in_flight:
            collect()
        handle.close()
        assert set(statuses) == {0, DISK_FULL}, statuses
        first_full = statuses.index(DISK_FULL)
        assert 10 * MiB <= first_full * size <= 20 * MiB, first_full
        # btrfs accounts quota per transaction: right at the limit a write may still fit after
        # a refused one, but never more than the quota is taken
        accepted = statuses.count(0) * size
        assert accepted <= 20 * MiB + 16 * size, (accepted, statuses.count(DISK_FULL))
        assert statuses[-64:].count(DISK_FULL) == 64, "writes well past the quota must fail"
        again = alice.open("big.bin")  # the same connection still works
        assert again.read(0, size) == chunk
        again.close()
