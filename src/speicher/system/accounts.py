"""Unix accounts and groups: ``useradd``, ``usermod``, ``userdel``, ``groupadd``, ``gpasswd``.

Speicher users get locked Unix accounts (no password, no shell, no home): they exist so files
have owners and Samba can map users; passwords live in Speicher (and Samba's passdb).
"""

from __future__ import annotations

import grp
import pwd
import time

from speicher.system.run import CommandError, Result, run

_BUSY = 10  # shadow-utils: "cannot lock /etc/passwd; try again later"


def _run_locked(argv: list[str]) -> Result:
    for attempt in range(20):
        try:
            return run(argv)
        except CommandError as exc:
            if exc.returncode != _BUSY or attempt == 19:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def uid_taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def gid_taken(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True


def gid_of(name: str) -> int:
    return grp.getgrnam(name).gr_gid


def uid_of(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def gecos(text: str) -> str:
    """``text`` as the comment field of /etc/passwd: one line, no ``:`` (the field separator),
    no control characters; ``useradd`` refuses anything else."""
    return "".join(" " if ch == ":" or ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in text)


def useradd(name: str, uid: int, primary_group: str, comment: str = "") -> None:
    _run_locked(
        [
            "useradd",
            "--uid",
            str(uid),
            "--gid",
            primary_group,
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            gecos(comment),
            name,
        ]
    )


def usermod_comment(name: str, comment: str) -> None:
    _run_locked(["usermod", "--comment", gecos(comment), name])


def userdel(name: str) -> None:
    _run_locked(["userdel", name])


def groupadd(name: str, gid: int) -> None:
    _run_locked(["groupadd", "--gid", str(gid), name])


def groupdel(name: str) -> None:
    _run_locked(["groupdel", name])


def group_members(name: str) -> list[str]:
    return list(grp.getgrnam(name).gr_mem)


def add_member(group: str, user: str) -> None:
    _run_locked(["gpasswd", "--add", user, group])


def remove_member(group: str, user: str) -> None:
    _run_locked(["gpasswd", "--delete", user, group])
