"""kill -9 between any two steps of a multi-step operation: after the restart, database and
machine agree, and the operation is either undone or finished.

The daemon is started with ``SPEICHER_CRASH_POINT`` naming one step boundary; it kills itself
with SIGKILL there (``speicher.faults``), as a power cut would. Every boundary of share
create/delete, user and group create/delete, pool create/destroy, add/remove/replace disk,
rollback and clone is visited in turn; after each, the daemon starts normally and
``consistency.agree`` compares what the API says with what btrfs, the mount table,
/etc/passwd, /etc/group, the ACLs and Samba's passdb say.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consistency import agree
from speicher_testing import Daemon

pytestmark = pytest.mark.system

ENV = "SPEICHER_CRASH_POINT"


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> Iterator[Daemon]:
    api = daemon.api
    for name in ("d1", "d2", "d3", "d4"):
        assert api.post("/disks/virtual", json={"name": name, "size": "2G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": ["d1", "d2"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    assert (
        api.post("/users", json={"name": "erin", "password": "erin-password-1"}).status_code == 201
    )
    assert api.post("/shares", json={"name": "base", "pool": "tank"}).status_code == 201
    r = api.post("/shares/base/grants", json={"user": "erin", "access": "rw"})
    assert r.status_code == 200, r.text
    (Path(r.json()["path"]) / "before.txt").write_text("before")
    agree(daemon)
    yield daemon


def crash(daemon: Daemon, point: str, action: Callable[[], Any]) -> None:
    """Restart the daemon armed at ``point``, run ``action``, see it die by SIGKILL, start it
    again unarmed and check that model and machine agree."""
    daemon.stop()
    daemon.env[ENV] = point
    try:
        daemon.start()
        with contextlib.suppress(httpx.HTTPError):
            action()
        assert daemon.proc is not None
        daemon.proc.wait(120)
        assert daemon.proc.returncode == -9, f"{point} was not reached"
    finally:
        daemon.env.pop(ENV, None)
    daemon.start()
    agree(daemon)


def job(daemon: Daemon, method: str, path: str, body: dict[str, Any] | None = None) -> None:
    """Start a job; the daemon dies while it runs."""
    daemon.api.request(method, path, json=body)


@pytest.mark.parametrize("point", ["share.create.recorded", "share.create.subvolume"])
def test_share_create_is_undone(world: Daemon, point: str) -> None:
    crash(world, point, lambda: world.api.post("/shares", json={"name": "s1", "pool": "tank"}))
    assert world.api.get("/shares/s1").status_code == 404
    # and the name is free again
    assert world.api.post("/shares", json={"name": "s1", "pool": "tank"}).status_code == 201
    assert world.api.delete("/shares/s1").status_code == 204


@pytest.mark.parametrize(
    "point", ["share.delete.recorded", "share.delete.snapshots", "share.delete.subvolume"]
)
def test_share_delete_is_finished(world: Daemon, point: str) -> None:
    assert world.api.post("/shares", json={"name": "s2", "pool": "tank"}).status_code == 201
    assert world.api.post("/shares/s2/snapshots", json={}).status_code == 201
    crash(world, point, lambda: world.api.delete("/shares/s2"))
    assert world.api.get("/shares/s2").status_code == 404
    assert not (world.mount_root / "tank" / ".snapshots" / "s2").exists()


@pytest.mark.parametrize(
    "point", ["user.create.recorded", "user.create.account", "user.create.smb"]
)
def test_user_create_is_undone(world: Daemon, point: str) -> None:
    body = {"name": "ulf", "password": "ulf-password-1"}
    crash(world, point, lambda: world.api.post("/users", json=body))
    assert world.api.get("/users/ulf").status_code == 404
    assert world.api.post("/users", json=body).status_code == 201
    assert world.api.delete("/users/ulf").status_code == 204


@pytest.mark.parametrize("point", ["user.delete.recorded", "user.delete.account"])
def test_user_delete_is_finished(world: Daemon, point: str) -> None:
    body = {"name": "vera", "password": "vera-password-1"}
    assert world.api.post("/users", json=body).status_code == 201
    r = world.api.post("/shares/base/grants", json={"user": "vera", "access": "ro"})
    assert r.status_code == 200, r.text
    crash(world, point, lambda: world.api.delete("/users/vera"))
    assert world.api.get("/users/vera").status_code == 404


@pytest.mark.parametrize(
    "point",
    ["group.create.recorded", "group.create.unix"],
)
def test_group_create_is_undone(world: Daemon, point: str) -> None:
    crash(world, point, lambda: world.api.post("/groups", json={"name": "crew"}))
    assert world.api.get("/groups/crew").status_code == 404


@pytest.mark.parametrize("point", ["group.delete.recorded", "group.delete.unix"])
def test_group_delete_is_finished(world: Daemon, point: str) -> None:
    assert world.api.post("/groups", json={"name": "team"}).status_code == 201
    r = world.api.post("/shares/base/grants", json={"group": "team", "access": "rw"})
    assert r.status_code == 200, r.text
    crash(world, point, lambda: world.api.delete("/groups/team"))
    assert world.api.get("/groups/team").status_code == 404


@pytest.mark.parametrize("point", ["pool.create.mkfs", "pool.create.mounted"])
def test_pool_create_is_undone(world: Daemon, point: str) -> None:
    body = {"name": "spare", "profile": "single", "disks": ["d3"]}
    crash(world, point, lambda: job(world, "POST", "/pools", body))
    assert world.api.get("/pools/spare").status_code == 404


def test_pool_destroy_is_finished(world: Daemon) -> None:
    body = {"name": "spare", "profile": "single", "disks": ["d3"]}
    done = world.wait_job(world.api.post("/pools", json=body).json())
    assert done["state"] == "succeeded", done
    crash(world, "pool.destroy.recorded", lambda: world.api.delete("/pools/spare"))
    assert world.api.get("/pools/spare").status_code == 404


def test_add_remove_and_replace_disk(world: Daemon) -> None:
    crash(
        world,
        "pool.add-disk.added",
        lambda: job(world, "POST", "/pools/tank/disks", {"disk": "d3"}),
    )
    disks = {d["disk"] for d in world.api.get("/pools/tank").json()["disks"]}
    assert disks == {"d1", "d2", "d3"}  # btrfs took it, so the database knows it
    crash(world, "pool.remove-disk.removed", lambda: job(world, "DELETE", "/pools/tank/disks/d3"))
    disks = {d["disk"] for d in world.api.get("/pools/tank").json()["disks"]}
    assert disks == {"d1", "d2"}
    crash(
        world,
        "pool.replace-disk.rebuilt",
        lambda: job(world, "POST", "/pools/tank/replace", {"old": "d2", "new": "d4"}),
    )
    pool = world.api.get("/pools/tank").json()
    assert {d["disk"]: d["devid"] for d in pool["disks"]} == {"d1": 1, "d4": 2}
    assert pool["health"] == "ok"
    # the disk that left is free for a new pool, the member is refused
    states = {d["name"]: d["state"] for d in world.api.get("/disks").json()}
    assert states["d2"] == "available" and states["d4"] == "in-use"


@pytest.mark.parametrize("point", ["share.rollback.parked", "share.rollback.snapshot"])
def test_rollback_is_finished_or_undone(world: Daemon, point: str) -> None:
    snap = world.api.post("/shares/base/snapshots", json={}).json()["name"]
    path = world.mount_root / "tank" / "base"
    (path / "after.txt").write_text("after")
    crash(world, point, lambda: world.api.post(f"/shares/base/snapshots/{snap}/rollback"))
    assert (path / "before.txt").read_text() == "before"
    # undone: the later file is there; finished: it is gone; never anything in between
    assert world.api.get("/shares/base").json()["state"] == "ready"
    (path / "after.txt").unlink(missing_ok=True)


def test_clone_without_its_grants_opens_to_nobody(world: Daemon) -> None:
    snap = world.api.post("/shares/base/snapshots", json={}).json()["name"]
    crash(
        world,
        "share.clone.created",
        lambda: world.api.post(f"/shares/base/snapshots/{snap}/clone", json={"name": "copy"}),
    )
    clone = world.api.get("/shares/copy").json()
    assert clone["state"] == "ready" and clone["grants"] == []
