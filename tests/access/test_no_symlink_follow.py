"""Grant changes walk a share as root: no walk may follow a user's symbolic link out of it,
not a link that lies there already, not one swapped in for a file while the walk runs."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fsaccess import as_user
from speicher_testing import Daemon

pytestmark = pytest.mark.system


def state(path: Path) -> tuple[int, str]:
    """Mode and ACL (access and default) of ``path`` itself."""
    acl = subprocess.run(
        ["getfacl", "--numeric", "--absolute-names", "--physical", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return os.stat(path, follow_symlinks=False).st_mode, acl


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> Iterator[dict[str, Any]]:
    api = daemon.api
    assert api.post("/disks/virtual", json={"name": "s1", "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["s1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    for name in ("erin", "frank"):
        r = api.post("/users", json={"name": name, "password": f"{name}-password-1"})
        assert r.status_code == 201, r.text
    r = api.post("/shares", json={"name": "team", "pool": "tank"})
    assert r.status_code == 201, r.text
    assert api.post("/shares/team/grants", json={"user": "erin", "access": "rw"}).status_code == 200

    # root's files outside the share, where erin can point links at
    outside = daemon.base / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "writable.txt").write_text("root's")
    (outside / "writable.txt").chmod(0o644)
    (outside / "readonly.txt").write_text("root's")
    (outside / "readonly.txt").chmod(0o444)
    (outside / "dir/inner.txt").write_text("root's")
    outside.chmod(0o755)
    (outside / "dir").chmod(0o755)
    share = Path(r.json()["path"])
    erin = daemon.unix_name("erin")
    script = (
        f"cd {share} && echo mine > own.txt && mkdir -p sub && "
        f"ln -s {outside}/writable.txt to-writable && ln -s {outside}/readonly.txt to-readonly "
        f"&& ln -s {outside}/dir to-dir && ln -s {outside}/writable.txt sub/deeper"
    )
    made = as_user(erin, "sh", "-c", script)
    assert made.returncode == 0, made.stderr
    yield {"share": share, "outside": outside, "erin": erin}


def outside_state(outside: Path) -> dict[str, tuple[int, str]]:
    return {p.name: state(p) for p in sorted(outside.rglob("*"))} | {".": state(outside)}


def test_grant_changes_leave_files_behind_links_alone(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    api, share, outside = daemon.api, world["share"], world["outside"]
    before = outside_state(outside)
    own = share / "own.txt"
    assert own.stat().st_mode & 0o200

    # rw -> ro clears the owner write bit of erin's files, and of nothing her links point at
    assert api.post("/shares/team/grants", json={"user": "erin", "access": "ro"}).status_code == 200
    assert not own.stat().st_mode & 0o200
    assert outside_state(outside) == before
    # ro -> rw sets it again, only on her files
    assert api.post("/shares/team/grants", json={"user": "erin", "access": "rw"}).status_code == 200
    assert own.stat().st_mode & 0o200
    assert outside_state(outside) == before
    # a new grant and a revoke rewrite ACLs all over the share
    r = api.post("/shares/team/grants", json={"user": "frank", "access": "ro"})
    assert r.status_code == 200, r.text
    assert f"user:{_uid(daemon, 'frank')}:r--" in state(own)[1]
    assert outside_state(outside) == before
    assert api.delete("/shares/team/grants/user/frank").status_code == 200
    assert f"user:{_uid(daemon, 'frank')}:" not in state(own)[1]
    assert outside_state(outside) == before
    # the links themselves are still there, untouched
    assert os.readlink(share / "to-writable") == f"{outside}/writable.txt"


def test_a_file_swapped_for_a_link_mid_walk_leads_nowhere(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    api, share, outside = daemon.api, world["share"], world["outside"]
    before = outside_state(outside)
    # erin keeps turning files into links to root's file and back while the grants change;
    # while she has rw, the walks of each change (hers and frank's) race her
    loop = (
        f"cd {share} && mkdir -p race && cd race && while :; do "
        f"for i in 1 2 3 4 5 6 7 8; do echo x > f$i; done; "
        f"for i in 1 2 3 4 5 6 7 8; do rm -f f$i; ln -s {outside}/writable.txt f$i; done; "
        f"for i in 1 2 3 4 5 6 7 8; do rm -f f$i; done; done"
    )
    gid = pwd.getpwnam(world["erin"]).pw_gid
    as_erin = ["setpriv", f"--reuid={world['erin']}", f"--regid={gid}", "--init-groups"]
    swapper = subprocess.Popen(
        [*as_erin, "sh", "-c", loop],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for access in ("ro", "rw", "ro", "rw", "ro", "rw"):
            r = api.post("/shares/team/grants", json={"user": "erin", "access": access})
            assert r.status_code == 200, r.text
            r = api.post("/shares/team/grants", json={"user": "frank", "access": access})
            assert r.status_code == 200, r.text
    finally:
        swapper.kill()
        swapper.wait(10)
    assert api.delete("/shares/team/grants/user/frank").status_code == 200
    assert outside_state(outside) == before


def _uid(daemon: Daemon, name: str) -> int:
    return pwd.getpwnam(daemon.unix_name(name)).pw_uid
