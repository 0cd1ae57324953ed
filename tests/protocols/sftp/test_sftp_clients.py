"""Real clients against Speicher's SFTP server: OpenSSH's sftp (batch mode) and scp, rclone,
sshfs, resumed transfers, many small files. Files land in the share as the user's own, and
what a client reads back is byte for byte what it wrote. One daemon and pool for the module."""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sftp_helpers import (
    MiB,
    make_pool,
    make_share,
    make_user,
    remote,
    run_rclone,
    run_scp,
    run_sftp,
    sshfs,
    temp_files,
    wait_for,
)

from speicher_testing import Daemon

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    """Pool ``tank``; share ``docs`` with alice rw and bob ro."""
    make_pool(daemon)
    for user in ("alice", "bob"):
        make_user(daemon, user)
    docs = make_share(daemon, "docs", {"alice": "rw", "bob": "ro"})
    return {"docs": docs}


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def test_sftp_batch_session(daemon: Daemon, world: dict[str, Any], tmp_path: Path) -> None:
    docs: Path = world["docs"]
    local = tmp_path / "report.bin"
    local.write_bytes(os.urandom(3 * MiB + 12345))
    back = tmp_path / "back.bin"
    result = run_sftp(
        daemon,
        "alice",
        "ls",
        "cd docs",
        "mkdir inbox",
        f"put {local} inbox/report.bin",
        "ls -l inbox",
        "rename inbox/report.bin inbox/renamed.bin",
        f"get inbox/renamed.bin {back}",
        "df",
        "pwd",
    )
    assert result.returncode == 0, result.stdout
    assert back.read_bytes() == local.read_bytes()
    stored = docs / "inbox" / "renamed.bin"
    assert stored.read_bytes() == local.read_bytes()
    assert stored.stat().st_uid == pwd.getpwnam(daemon.unix_name("alice")).pw_uid
    # ls -l shows the owner by their Speicher name and rw permissions
    assert "-rw-r--r--" in result.stdout and " alice " in result.stdout, result.stdout
    assert "Remote working directory: /docs" in result.stdout, result.stdout

    result = run_sftp(
        daemon, "alice", "cd docs/inbox", "rm renamed.bin", "cd ..", "rmdir inbox", "ls"
    )
    assert result.returncode == 0, result.stdout
    assert not (docs / "inbox").exists()
    assert temp_files(docs) == []


def test_root_lists_the_shares_and_dotdot_stays_at_the_root(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    make_share(daemon, "others", {"bob": "rw"})  # alice has no grant here
    result = run_sftp(daemon, "alice", "ls -1 /", "cd /../../docs/../..", "pwd", "ls -1")
    assert result.returncode == 0, result.stdout
    assert "docs" in result.stdout and "others" not in result.stdout, result.stdout
    assert "Remote working directory: /\n" in result.stdout, result.stdout
    result = run_sftp(daemon, "alice", "cd /others")
    assert result.returncode != 0, result.stdout
    assert "No such file" in result.stdout, result.stdout
    # the share's internal folder and the upload temp files are nowhere to be reached
    result = run_sftp(daemon, "alice", "ls /docs/.speicher")
    assert result.returncode != 0, result.stdout


def test_scp_in_sftp_mode_copies_trees_both_ways(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    for i, folder in enumerate((tree, tree / "a", tree / "a" / "b")):
        (folder / f"f{i}.bin").write_bytes(os.urandom(1000 * i + 7))
    result = run_scp(daemon, "alice", "-r", str(tree), remote("alice", "/docs/scp-tree"))
    assert result.returncode == 0, result.stdout
    assert (docs / "scp-tree" / "a" / "b" / "f2.bin").read_bytes() == (
        tree / "a" / "b" / "f2.bin"
    ).read_bytes()
    back = tmp_path / "back"
    result = run_scp(daemon, "alice", "-r", remote("alice", "/docs/scp-tree"), str(back))
    assert result.returncode == 0, result.stdout
    for path in tree.rglob("*.bin"):
        assert (back / path.relative_to(tree)).read_bytes() == path.read_bytes()
    # -p keeps modification times (and permissions are ignored, not refused)
    old = tmp_path / "old.txt"
    old.write_text("old\n")
    os.utime(old, (1_500_000_000, 1_500_000_000))
    result = run_scp(daemon, "alice", "-p", str(old), remote("alice", "/docs/old.txt"))
    assert result.returncode == 0, result.stdout
    assert int((docs / "old.txt").stat().st_mtime) == 1_500_000_000


def test_many_small_files_of_unaligned_sizes_with_rclone(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    src = tmp_path / "small"
    for i in range(300):
        folder = src / f"d{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file-{i}.dat").write_bytes(os.urandom((i * 4099) % 70_001 + i % 3))
    result = run_rclone(daemon, "alice", "copy", str(src), "nas:/docs/rclone", "--transfers", "8")
    assert result.returncode == 0, result.stdout
    for path in src.rglob("*.dat"):
        assert (docs / "rclone" / path.relative_to(src)).read_bytes() == path.read_bytes()
    listed = run_rclone(daemon, "alice", "lsf", "-R", "--files-only", "nas:/docs/rclone")
    assert listed.returncode == 0, listed.stdout
    assert len(listed.stdout.split()) == 300
    # rclone keeps modification times (setstat after the upload)
    sample = src / "d3" / "file-3.dat"
    assert int((docs / "rclone" / "d3" / "file-3.dat").stat().st_mtime) == int(
        sample.stat().st_mtime
    )
    back = tmp_path / "back"
    result = run_rclone(daemon, "alice", "copy", "nas:/docs/rclone", str(back), "--transfers", "8")
    assert result.returncode == 0, result.stdout
    for path in src.rglob("*.dat"):
        assert (back / path.relative_to(src)).read_bytes() == path.read_bytes()
    # sync deletes what the source no longer has
    for path in list((src / "d0").iterdir()):
        path.unlink()
    result = run_rclone(daemon, "alice", "sync", str(src), "nas:/docs/rclone")
    assert result.returncode == 0, result.stdout
    assert list((docs / "rclone" / "d0").iterdir()) == []
    assert temp_files(docs) == []


def arrived(path: Path, data: bytes) -> None:
    wait_for(
        f"{path.name} on the server",
        lambda: path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data,
    )


def test_sshfs_mount_reads_writes_renames_and_deletes(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    with sshfs(daemon, "alice", tmp_path / "mnt") as mnt:
        assert "docs" in os.listdir(mnt)
        share = mnt / "docs"
        (share / "fuse").mkdir()
        data = os.urandom(5 * MiB + 3)
        (share / "fuse" / "big.bin").write_bytes(data)
        # sshfs closes the SFTP handle after close() returned (FUSE's release is
        # asynchronous); the upload becomes the file then
        arrived(docs / "fuse" / "big.bin", data)
        assert (share / "fuse" / "big.bin").read_bytes() == data
        # editing in place: open an existing file without truncating it
        with (share / "fuse" / "big.bin").open("r+b") as fh:
            fh.seek(MiB)
            fh.write(b"patched")
        expected = data[:MiB] + b"patched" + data[MiB + 7 :]
        arrived(docs / "fuse" / "big.bin", expected)
        with (share / "fuse" / "log.txt").open("a") as fh:
            fh.write("one\n")
        arrived(docs / "fuse" / "log.txt", b"one\n")
        with (share / "fuse" / "log.txt").open("a") as fh:
            fh.write("two\n")
        arrived(docs / "fuse" / "log.txt", b"one\ntwo\n")
        (share / "fuse" / "big.bin").rename(share / "fuse" / "moved.bin")
        assert sorted(os.listdir(share / "fuse")) == ["log.txt", "moved.bin"]
        os.truncate(share / "fuse" / "moved.bin", 10)
        arrived(docs / "fuse" / "moved.bin", expected[:10])
        statvfs = os.statvfs(share)
        assert statvfs.f_blocks > 0
        for name in ("log.txt", "moved.bin"):
            (share / "fuse" / name).unlink()
        (share / "fuse").rmdir()
        assert not (docs / "fuse").exists()
    assert temp_files(docs) == []


def test_reget_and_reput_resume_transfers(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    data = os.urandom(8 * MiB + 4321)
    whole = tmp_path / "whole.bin"
    whole.write_bytes(data)
    # an upload that stopped half-way: the server has the first part
    (docs / "resume.bin").write_bytes(data[: 3 * MiB + 17])
    os.chown(docs / "resume.bin", pwd.getpwnam(daemon.unix_name("alice")).pw_uid, -1)
    result = run_sftp(daemon, "alice", f"reput {whole} /docs/resume.bin")
    assert result.returncode == 0, result.stdout
    assert digest(docs / "resume.bin") == digest(whole)
    # a download that stopped half-way
    part = tmp_path / "part.bin"
    part.write_bytes(data[: 5 * MiB + 1])
    result = run_sftp(daemon, "alice", f"reget /docs/resume.bin {part}")
    assert result.returncode == 0, result.stdout
    assert digest(part) == digest(whole)
    assert temp_files(docs) == []


def test_big_file_both_ways_with_checksums(
    daemon: Daemon, world: dict[str, Any], tmp_path: Path
) -> None:
    docs: Path = world["docs"]
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(64):
            fh.write(os.urandom(MiB))
        fh.write(os.urandom(777))
    back = tmp_path / "back.bin"
    result = run_sftp(daemon, "alice", f"put {big} /docs/big.bin", f"get /docs/big.bin {back}")
    assert result.returncode == 0, result.stdout
    assert digest(docs / "big.bin") == digest(big) == digest(back)
    subprocess.run(["rm", "-f", str(big), str(back)], check=True)
