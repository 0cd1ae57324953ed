"""Restores write only where they should: never through a ``.speicher`` (or any folder) a user
replaced with a symbolic link, and a restore over the live copy keeps a safety snapshot."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fsaccess import as_user
from speicher_testing import Daemon

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> Iterator[dict[str, Any]]:
    api = daemon.api
    assert api.post("/disks/virtual", json={"name": "r1", "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["r1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    r = api.post("/users", json={"name": "erin", "password": "erin-password-1"})
    assert r.status_code == 201, r.text
    r = api.post("/shares", json={"name": "docs", "pool": "tank"})
    assert r.status_code == 201, r.text
    assert api.post("/shares/docs/grants", json={"user": "erin", "access": "rw"}).status_code == 200
    share = Path(r.json()["path"])
    erin = daemon.unix_name("erin")
    made = as_user(
        erin, "sh", "-c", f"cd {share} && mkdir folder && echo v1 > plan.txt && echo a1 > folder/a"
    )
    assert made.returncode == 0, made.stderr
    snap = api.post("/shares/docs/snapshots", json={})
    assert snap.status_code == 201, snap.text
    time.sleep(1.05)  # snapshot names are to the second
    outside = daemon.base / "outside"
    outside.mkdir()
    outside.chmod(0o777)  # the worst case: anyone could write there
    yield {"share": share, "erin": erin, "snap": snap.json()["name"], "outside": outside}


def erin(world: dict[str, Any], script: str) -> None:
    r = as_user(world["erin"], "sh", "-c", f"cd {world['share']} && {script}")
    assert r.returncode == 0, r.stderr


def restore(daemon: Daemon, world: dict[str, Any], path: str, to: str) -> Any:
    return daemon.api.post(
        f"/shares/docs/snapshots/{world['snap']}/restore", json={"path": path, "to": to}
    )


def private(path: Path) -> bool:
    """Root's alone: a real folder, owner root, mode 0700, no ACL."""
    st = os.stat(path, follow_symlinks=False)
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == 0
        and stat.S_IMODE(st.st_mode) == 0o700
        and not os.listxattr(path, follow_symlinks=False)
    )


def test_the_staging_folder_is_root_only(daemon: Daemon, world: dict[str, Any]) -> None:
    r = restore(daemon, world, "plan.txt", "beside")
    assert r.status_code == 200, r.text
    share = world["share"]
    assert private(share / ".speicher") and private(share / ".speicher/restore")
    assert as_user(world["erin"], "ls", str(share / ".speicher")).returncode != 0


@pytest.mark.parametrize("replacement", ["symlink", "erins-folder"])
def test_a_replaced_internal_folder_is_moved_aside_not_followed(
    daemon: Daemon, world: dict[str, Any], replacement: str
) -> None:
    share, outside = world["share"], world["outside"]
    if not (share / ".speicher").exists():
        assert restore(daemon, world, "plan.txt", "beside").status_code == 200
    # erin renames root's folder away (she may write the top folder) and puts hers there
    erin(world, "mv .speicher stolen-$$")
    if replacement == "symlink":
        erin(world, f"ln -s {outside} .speicher")
    else:
        erin(world, f"mkdir .speicher && ln -s {outside} .speicher/restore")
    erin(world, "echo edited > plan.txt")

    r = restore(daemon, world, "plan.txt", "original")
    assert list(outside.iterdir()) == []  # nothing written through erin's link
    assert r.status_code == 200, r.text
    assert (share / "plan.txt").read_text() == "v1\n"
    assert private(share / ".speicher") and private(share / ".speicher/restore")
    moved = [p for p in share.iterdir() if p.name.startswith(".speicher.moved-")]
    assert len(moved) == 1
    if replacement == "symlink":
        assert os.readlink(moved[0]) == str(outside)
    else:
        assert os.readlink(moved[0] / "restore") == str(outside)
    events = daemon.api.get("/events", params={"kind": "share.internal-moved"}).json()
    assert events and moved[0].name in events[0]["message"]
    for path in moved:
        erin(world, f"rm -rf {path.name}")


def test_a_target_folder_swapped_for_a_link_is_refused(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    share, outside = world["share"], world["outside"]
    erin(world, f"mv folder real-folder && ln -s {outside} folder")
    r = restore(daemon, world, "folder/a", "original")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "symbolic link" in r.json()["errors"][0]["reason"]
    assert list(outside.iterdir()) == []
    assert os.readlink(share / "folder") == str(outside)
    erin(world, "rm folder && mv real-folder folder")


def test_restoring_over_the_live_copy_keeps_a_safety_snapshot(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    share = world["share"]
    erin(world, "echo 'edits of today' > plan.txt")
    r = restore(daemon, world, "plan.txt", "original")
    assert r.status_code == 200, r.text
    safety = r.json()["safety_snapshot"]
    assert safety and safety.startswith("@GMT-")
    assert (share / "plan.txt").read_text() == "v1\n"
    snap = daemon.api.get(f"/shares/docs/snapshots/{safety}")
    assert snap.status_code == 200, snap.text
    assert Path(snap.json()["path"], "plan.txt").read_text() == "edits of today\n"
    events = daemon.api.get("/events", params={"kind": "snapshot.restored"}).json()
    assert safety in events[0]["message"]

    # beside replaces nothing, nor does restoring what is gone: no safety snapshot then
    beside = restore(daemon, world, "folder", "beside")
    assert beside.status_code == 200, beside.text
    assert beside.json()["safety_snapshot"] is None
    erin(world, "rm -rf folder")
    back = restore(daemon, world, "folder", "original")
    assert back.status_code == 200 and back.json()["safety_snapshot"] is None
    assert (share / "folder/a").read_text() == "a1\n"

    # the CLI says where the replaced version is
    time.sleep(1.05)
    erin(world, "echo 'more edits' > plan.txt")
    out = daemon.cli("snapshot", "restore", "docs", world["snap"], "plan.txt", "--to", "original")
    assert "what was there before is kept in snapshot @GMT-" in " ".join(out.stdout.split())
