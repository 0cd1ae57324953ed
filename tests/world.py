"""Building a protocol test's world through the API: a pool, users, shares with grants. The
protocols' helpers (smb_helpers, dav_helpers, sftp_helpers) wrap ``make_share`` with their
switch on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speicher_testing import Daemon


def password(user: str) -> str:
    return f"{user}-password-1"


def make_pool(daemon: Daemon, size: str = "2G") -> None:
    """One virtual disk ``d1`` in a single-profile pool ``tank``: protocols need no
    redundancy."""
    r = daemon.api.post("/disks/virtual", json={"name": "d1", "size": size})
    assert r.status_code == 201, r.text
    job = daemon.api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["d1"]})
    assert job.status_code == 202, job.text
    done = daemon.wait_job(job.json())
    assert done["state"] == "succeeded", f"{done}\n{daemon.log()[-4000:]}"


def make_user(daemon: Daemon, name: str, **extra: Any) -> None:
    """A user whose password is ``password(name)``; ``extra``: more fields of the request."""
    r = daemon.api.post("/users", json={"name": name, "password": password(name), **extra})
    assert r.status_code == 201, r.text


def grant(daemon: Daemon, share: str, user: str, access: str) -> None:
    r = daemon.api.post(f"/shares/{share}/grants", json={"user": user, "access": access})
    assert r.status_code == 200, r.text


def make_share(
    daemon: Daemon,
    name: str,
    grants: dict[str, str],
    quota: str | None = None,
    **fields: Any,
) -> Path:
    """A share on ``tank`` with ``grants`` (user -> rw/ro) and ``fields`` (``smb={...}``,
    ``webdav=True``, ...); returns its folder on the server."""
    r = daemon.api.post("/shares", json={"name": name, "pool": "tank", "quota": quota, **fields})
    assert r.status_code == 201, r.text
    for user, access in grants.items():
        grant(daemon, name, user, access)
    return Path(r.json()["path"])
