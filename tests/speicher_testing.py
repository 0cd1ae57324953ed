"""Running real Speicher daemons for system tests, and removing every trace of them afterwards.

Each daemon gets its own state directory, mount root, TCP port and Unix account prefix, so
tests can run in parallel on one machine. ``cleanup()`` unmounts, detaches loop devices and
deletes Unix accounts by what it finds on the machine, not by what the daemon remembers, so
it also cleans up after a test that failed half-way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ADMIN_PASSWORD = "admin-secret-1"


# Ports for test servers come from below the kernel's ephemeral range (32768-60999 on
# Debian): a port the kernel handed out with bind(0) can be taken by any outgoing
# connection before the daemon listens on it ("Address already in use" in CI). Each xdist
# worker draws from its own slice, so two workers never pick the same port; a run without
# xdist (one module by hand, beside a full run) from the last slice.
_PORT_FLOOR = 20000
_PORT_SLICE = 1500
_next_port: list[int] = []


def free_port() -> int:
    if not _next_port:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
        index = int(worker) % 7 if worker.isdigit() else 7
        start = _PORT_FLOOR + index * _PORT_SLICE
        _next_port.append(start + secrets.randbelow(_PORT_SLICE))
    start = _PORT_FLOOR + (_next_port[0] - _PORT_FLOOR) // _PORT_SLICE * _PORT_SLICE
    for _ in range(_PORT_SLICE):
        port = _next_port[0]
        _next_port[0] = start + (port + 1 - start) % _PORT_SLICE
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise AssertionError("no free port for a test server")


def speicher_executable() -> str:
    path = Path(sys.executable).parent / "speicher"
    assert path.exists(), f"{path} is missing: install the project (make test does)"
    return str(path)


class Daemon:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.state_dir = base / "state"
        self.mount_root = base / "mnt"
        self.port = free_port()  # plain HTTP on localhost, what most tests talk to
        self.https_port = free_port()
        self.smb_port = free_port()
        self.sftp_port = free_port()
        self.s3_port = free_port()
        self.prefix = f"t{secrets.token_hex(2)}-"
        self.log_path = base / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "SPEICHER_STATE_DIR": str(self.state_dir),
            "SPEICHER_MOUNT_ROOT": str(self.mount_root),
            "SPEICHER_HTTPS_HOST": "127.0.0.1",
            "SPEICHER_HTTPS_PORT": str(self.https_port),
            "SPEICHER_HTTP_HOST": "127.0.0.1",
            "SPEICHER_HTTP_PORT": str(self.port),
            # the CLI's pinned certificates (known_hosts) stay with this instance
            "XDG_CONFIG_HOME": str(base / "config"),
            "SPEICHER_ACCOUNT_PREFIX": self.prefix,
            "SPEICHER_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SPEICHER_MONITOR_INTERVAL": "2",
            "SPEICHER_SMB_PORT": str(self.smb_port),
            "SPEICHER_SFTP_HOST": "127.0.0.1",
            "SPEICHER_SFTP_PORT": str(self.sftp_port),
            "SPEICHER_S3_HOST": "127.0.0.1",
            "SPEICHER_S3_PORT": str(self.s3_port),
        }
        for name in (
            "SPEICHER_URL",
            "SPEICHER_TOKEN",
            "SPEICHER_TOKEN_FILE",
            "SPEICHER_CA",
            "SPEICHER_USER",
            "SPEICHER_PASSWORD",
            "SPEICHER_CONFIG",
        ):
            self.env.pop(name, None)
        self.url = f"http://127.0.0.1:{self.port}"
        self.https_url = f"https://127.0.0.1:{self.https_port}"
        # like the CLI, it says it is no browser (state changes need it or a JSON body)
        self.api = httpx.Client(
            base_url=f"{self.url}/api/v1",
            auth=("admin", ADMIN_PASSWORD),
            headers={"X-Speicher-Request": "1"},
            timeout=120,
        )

    # -- process -------------------------------------------------------------------------------

    def start(self, *serve_args: str, timeout: float = 60) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [speicher_executable(), "serve", *serve_args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.api.get("/system").status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"daemon did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- clients -------------------------------------------------------------------------------

    def cli(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [speicher_executable(), *args],
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check and result.returncode != 0:
            command = " ".join(args)
            output = result.stderr + result.stdout
            raise AssertionError(f"speicher {command} exited {result.returncode}:\n{output}")
        return result

    def wait_job(
        self,
        job: dict[str, Any],
        timeout: float = 300,
        poll: float | Callable[[dict[str, Any]], float] = 0.3,
    ) -> dict[str, Any]:
        """The job once it has ended. ``poll``: seconds between looks, or what to wait after
        seeing the job as it is (a bench timing a job polls more often near its end)."""
        deadline = time.monotonic() + timeout
        while job["state"] == "running":
            assert time.monotonic() < deadline, f"job {job['id']} still running: {job}"
            time.sleep(poll(job) if callable(poll) else poll)
            job = self.api.get(f"/jobs/{job['id']}").json()
        return job

    def use_token(self) -> None:
        """Talk to the API with a new admin token from now on, not the admin's password:
        every password login is an Argon2 check, and a bench polling a job three times a
        second would measure those checks competing with the job for the CPU."""
        r = self.api.post("/tokens", json={"name": f"bench-{secrets.token_hex(3)}"})
        assert r.status_code == 201, r.text
        self.api.auth = None  # type: ignore[assignment]
        self.api.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def unix_name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    # -- removing every trace ------------------------------------------------------------------

    def cleanup(self) -> None:
        self.stop()
        # shown by pytest only when a test of this daemon failed
        sys.stderr.write("---- daemon log (last 80 lines) ----\n")
        sys.stderr.write("\n".join(self.log().splitlines()[-80:]) + "\n")
        self.api.close()
        remove_traces(self.base, self.prefix)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=120)


def remove_traces(base: Path, prefix: str) -> None:
    """Unmount, detach, and delete accounts of one test instance, whatever state it is in."""
    _kill_processes_of(base)
    targets = [
        line
        for line in _run("findmnt", "--list", "--noheadings", "--output", "TARGET").stdout.split(
            "\n"
        )
        if line.startswith(str(base) + "/")
    ]
    for target in sorted(targets, key=len, reverse=True):
        _unmount(target)
    for line in _run(
        "losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"
    ).stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith(str(base) + "/"):
            _run("losetup", "--detach", parts[0])
    for name in _accounts("/etc/passwd", prefix):
        _run("userdel", name)
    for name in _accounts("/etc/group", prefix):
        _run("groupdel", name)
    shutil.rmtree(base, ignore_errors=True)


def _unmount(target: str) -> None:
    """Unmount for real: a lazily unmounted btrfs lives on in the kernel and still claims its
    loop devices' numbers, so a pool made later on a reused loop device cannot be mounted
    ("belongs to fsid ..., and the fs is already mounted"). Whatever still holds the mount
    (a child of a killed daemon) is killed first; lazy only as the very last resort."""
    for _ in range(20):
        if _run("umount", target).returncode == 0:
            return
        _kill_holders(target)
        time.sleep(0.5)
    _run("umount", "--lazy", target)


def _kill_holders(target: str) -> None:
    """Kill the processes whose working directory, root or an open file is under ``target``."""
    prefix = target.rstrip("/") + "/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            links = [entry / "cwd", entry / "root", *(entry / "fd").iterdir()]
            held = any(
                (where := os.readlink(link)) == target or where.startswith(prefix) for link in links
            )
        except OSError:
            continue
        if held:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _accounts(path: str, prefix: str) -> list[str]:
    with open(path) as fh:
        return [line.split(":", 1)[0] for line in fh if line.startswith(prefix)]


def _kill_processes_of(base: Path) -> None:
    """Processes whose command line names the instance's directory (an smbd a killed daemon
    left behind, its RPC helpers)."""
    needle = str(base).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue
