"""The S3 endpoint with the clients people back up and sync with: the AWS CLI (Debian's v2),
rclone's s3 backend and restic with an S3 repository, against a running daemon. One daemon,
bucket and key for the module."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system

AWS = "/usr/bin/aws"  # Debian's AWS CLI v2, not one a developer's PATH may put first


@pytest.fixture(scope="module")
def world(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    make_pool(daemon, "3G")
    make_user(daemon, "alice")
    folder = make_share(daemon, "backups", {"alice": "rw"}, s3=True)
    r = daemon.api.post("/users/alice/s3-keys")
    assert r.status_code == 201, r.text
    key = r.json()
    home = tmp_path_factory.mktemp("home")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": key["access_key"],
        "AWS_SECRET_ACCESS_KEY": key["secret"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "RESTIC_PASSWORD": "restic-test-password",
    }
    return {"folder": folder, "key": key, "env": env, "url": f"http://127.0.0.1:{daemon.s3_port}"}


def run(world: dict[str, Any], *argv: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        argv, env=world["env"], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


def tree(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file below ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".speicher" not in p.parts
    }


def make_tree(root: Path) -> None:
    """Files as the world has them: odd sizes, many small ones, nested folders, spaces and
    non-ASCII names."""
    for i in range(120):
        folder = root / f"dir {i % 7}" / ("tiefer/ä" if i % 3 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file-{i}.bin").write_bytes(os.urandom((i * 7919) % 20_000))
    (root / "empty.txt").write_bytes(b"")
    (root / "bigger.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))


def test_aws_cli(world: dict[str, Any], tmp_path: Path) -> None:
    url = world["url"]
    src = tmp_path / "src"
    make_tree(src)
    run(world, AWS, "--endpoint-url", url, "s3", "sync", str(src), "s3://backups/aws/")
    assert tree(world["folder"] / "aws") == tree(src)  # the objects are the files
    listed = run(world, AWS, "--endpoint-url", url, "s3", "ls", "--recursive", "s3://backups/aws/")
    assert len(listed.splitlines()) == len(tree(src))
    back = tmp_path / "back"
    run(
        world, AWS, "--endpoint-url", url, "s3", "cp", "--recursive", "s3://backups/aws/", str(back)
    )
    assert tree(back) == tree(src)
    head = run(
        world, AWS, "--endpoint-url", url, "s3api", "head-object",
        "--bucket", "backups", "--key", "aws/bigger.bin",
    )  # fmt: skip
    assert str(3 * 1024 * 1024 + 17) in head
    run(world, AWS, "--endpoint-url", url, "s3", "rm", "--recursive", "s3://backups/aws/")
    assert not (world["folder"] / "aws").exists()


def test_rclone_sync_and_check(world: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    remote = (
        ":s3,provider=Other,env_auth=true,force_path_style=true,"
        f"endpoint='{world['url']}':backups/rclone"
    )
    run(world, "rclone", "sync", str(src), remote)
    run(world, "rclone", "check", str(src), remote)  # sizes and MD5s (our ETags) agree
    assert tree(world["folder"] / "rclone") == tree(src)
    (src / "dir 3" / "file-3.bin").unlink()
    (src / "new.txt").write_text("new\n")
    run(world, "rclone", "sync", str(src), remote)
    run(world, "rclone", "check", str(src), remote)
    assert tree(world["folder"] / "rclone") == tree(src)


def test_restic(world: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "data"
    make_tree(src)
    repo = ["-r", f"s3:{world['url']}/backups/restic"]
    run(world, "restic", *repo, "init")
    run(world, "restic", *repo, "backup", str(src))
    run(world, "restic", *repo, "check", "--read-data")
    target = tmp_path / "restored"
    run(world, "restic", *repo, "restore", "latest", "--target", str(target))
    assert tree(target / src.relative_to("/")) == tree(src)
