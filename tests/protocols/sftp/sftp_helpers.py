"""Real SFTP clients for the system tests, logged in as ordinary Speicher users: OpenSSH's
``sftp`` and ``scp`` (password through ``sshpass``, or a key the test makes), ``rclone``'s
sftp backend, ``sshfs`` (a FUSE mount) and asyncssh's client for what the command-line
clients cannot do on purpose (half an upload, then a dropped connection; exact status codes).

No client reads the machine's SSH configuration or known hosts: every one gets ``-F
/dev/null`` and ``UserKnownHostsFile=/dev/null``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh

import world
from speicher_testing import Daemon
from world import grant, make_user, password

# the world-building helpers, for the protocol's tests to import from here
__all__ = ["grant", "make_user", "password"]

HOST = "127.0.0.1"
MiB = 1024 * 1024


def make_pool(daemon: Daemon, size: str = "3G") -> None:
    world.make_pool(daemon, size)


def make_share(
    daemon: Daemon,
    name: str,
    grants: dict[str, str],
    quota: str | None = None,
    sftp: bool = True,
) -> Path:
    """A share offered over SFTP (unless ``sftp`` is False) with ``grants`` (user -> rw/ro);
    returns its server path."""
    return world.make_share(daemon, name, grants, quota, sftp=sftp)


def add_key(daemon: Daemon, user: str, public: str) -> None:
    r = daemon.api.post(f"/users/{user}/keys", json={"key": public})
    assert r.status_code == 201, r.text


def make_key(folder: Path, name: str = "id_ed25519") -> Path:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True
    )
    return key


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def temp_files(folder: Path) -> list[Path]:
    """Upload temp files ShareFS left (there must be none after an upload ended)."""
    return [p for p in folder.rglob(".speicher-upload-*")]


# -- OpenSSH ---------------------------------------------------------------------------------


def ssh_options(daemon: Daemon, key: Path | None = None) -> list[str]:
    options = [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=30",
        # sftp -b sets BatchMode (no password prompt); the first value given wins
        "-o",
        "BatchMode=no",
        "-o",
        "NumberOfPasswordPrompts=1",
    ]
    if key is None:
        options += ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"]
    else:
        options += [
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PreferredAuthentications=publickey",
        ]
    return options


def _with_password(argv: list[str], user: str, secret: str | None, key: Path | None) -> list[str]:
    if key is not None:
        return argv
    return ["sshpass", "-p", secret if secret is not None else password(user), *argv]


def run_sftp(
    daemon: Daemon,
    user: str,
    *commands: str,
    secret: str | None = None,
    key: Path | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``sftp -b -`` with ``commands``; stops at the first failing one (unless it starts with
    ``-``). Output is stdout plus stderr."""
    argv = [
        "sftp",
        *ssh_options(daemon, key),
        "-P",
        str(daemon.sftp_port),
        "-b",
        "-",
        f"{user}@{HOST}",
    ]
    result = subprocess.run(
        _with_password(argv, user, secret, key),
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    return subprocess.CompletedProcess(
        argv, result.returncode, result.stdout + result.stderr, result.stderr
    )


def run_scp(
    daemon: Daemon, user: str, *args: str, legacy: bool = False, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``scp`` in SFTP mode (the default of current OpenSSH), or ``-O`` (the old protocol,
    which needs a remote shell) with ``legacy``."""
    argv = ["scp", *ssh_options(daemon), "-P", str(daemon.sftp_port), *(["-O"] if legacy else [])]
    argv += list(args)
    result = subprocess.run(
        _with_password(argv, user, None, None),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        argv, result.returncode, result.stdout + result.stderr, result.stderr
    )


def run_ssh(
    daemon: Daemon, user: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", *ssh_options(daemon), "-p", str(daemon.sftp_port), f"{user}@{HOST}", *args]
    result = subprocess.run(
        _with_password(argv, user, None, None),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return subprocess.CompletedProcess(
        argv, result.returncode, result.stdout + result.stderr, result.stderr
    )


def remote(user: str, path: str) -> str:
    return f"{user}@{HOST}:{path}"


# -- rclone ----------------------------------------------------------------------------------


def run_rclone(
    daemon: Daemon, user: str, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """rclone with a remote ``nas:`` of its sftp backend, configured by environment only."""
    obscured = subprocess.run(
        ["rclone", "obscure", password(user)], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_NAS_TYPE": "sftp",
        "RCLONE_CONFIG_NAS_HOST": HOST,
        "RCLONE_CONFIG_NAS_PORT": str(daemon.sftp_port),
        "RCLONE_CONFIG_NAS_USER": user,
        "RCLONE_CONFIG_NAS_PASS": obscured,
        "RCLONE_CONFIG_NAS_KNOWN_HOSTS_FILE": "",
        "RCLONE_CONFIG_NAS_DISABLE_HASHCHECK": "true",  # no shell: no md5sum on the server
        "RCLONE_CONFIG_NAS_SHELL_TYPE": "none",
    }
    result = subprocess.run(
        ["rclone", *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    return subprocess.CompletedProcess(
        args, result.returncode, result.stdout + result.stderr, result.stderr
    )


# -- sshfs -----------------------------------------------------------------------------------


@contextlib.contextmanager
def sshfs(daemon: Daemon, user: str, mountpoint: Path, path: str = "/") -> Iterator[Path]:
    """A FUSE mount of ``path`` as ``user``, unmounted again also when the test fails."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    argv = [
        "sshfs",
        f"{user}@{HOST}:{path}",
        str(mountpoint),
        "-p",
        str(daemon.sftp_port),
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR",
        "-o",
        "PubkeyAuthentication=no,PreferredAuthentications=password,password_stdin",
    ]
    result = subprocess.run(
        argv, input=password(user) + "\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        yield mountpoint
    finally:
        if subprocess.run(["fusermount", "-u", str(mountpoint)], check=False).returncode != 0:
            subprocess.run(["fusermount", "-uz", str(mountpoint)], check=False)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


# -- asyncssh's client -----------------------------------------------------------------------


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def connect(
    daemon: Daemon,
    user: str,
    secret: str | None = None,
    source: str | None = None,
    **options: Any,
) -> asyncssh.SSHClientConnection:
    """An SSH connection as ``user`` by password (from ``source``, another loopback address,
    so a lockout test does not lock out 127.0.0.1)."""
    return await asyncssh.connect(
        HOST,
        daemon.sftp_port,
        username=user,
        password=secret if secret is not None else password(user),
        known_hosts=None,
        client_keys=None,
        agent_path=None,
        preferred_auth="password",
        config=None,
        local_addr=(source, 0) if source else None,
        **options,
    )
