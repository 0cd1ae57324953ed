"""Running Debian's ``restic`` for a backup target (docs/backup.md).

Every call gets a minimal environment (the repository, its password and the S3 keys, restic's
cache in the state dir) and no shell; what the user typed reaches restic only as single argv
items or as values checked by :mod:`speicher.backup.targets`. restic's messages are turned into
Speicher's errors here, so a wrong password or an unreachable server is one clear line.

A backup reads a read-only btrfs snapshot of the share that the task takes for it at the
same place every time (:mod:`speicher.backup.tasks`): restic remembers a backup by its path,
so it finds the previous backup of the share as its parent and reads only what changed.
(A bind mount in a mount namespace of restic's own would do the same for any snapshot, but a
mount namespace holds a copy of every mount of the box while it lives: a pool exported during
a long backup would stay mounted in it, its disks busy.)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speicher.errors import Conflict, InvalidInput, OperationFailed, SpeicherError
from speicher.system.run import minimal_env

log = logging.getLogger(__name__)

RESTIC = "restic"


class Unreachable(SpeicherError):
    """restic could not reach the repository's server."""

    status = 502
    exit_code = 1
    title = "Backup target unreachable"


class WrongPassword(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            field="password",
            reason="is not the repository's password (restic: wrong password or no key found)",
        )


class NoRepository(SpeicherError):
    status = 409
    exit_code = 2
    title = "No repository"


@dataclass(frozen=True)
class Repository:
    """What restic needs to open one repository."""

    url: str  # restic's repository string: a path, s3:https://..., sftp:user@host:/path
    password: str
    env: dict[str, str] = field(default_factory=dict)  # e.g. AWS_ACCESS_KEY_ID
    options: tuple[str, ...] = ()  # e.g. ("--cacert", path), ("-o", "sftp.command=...")
    cache: Path | None = None


def environment(repo: Repository) -> dict[str, str]:
    env = minimal_env()
    env.update(repo.env)
    env["RESTIC_REPOSITORY"] = repo.url
    env["RESTIC_PASSWORD"] = repo.password  # root's environment: only root reads it
    env["RESTIC_PROGRESS_FPS"] = "2"
    env["TZ"] = "UTC"  # `backup --time` is read in local time: ours are UTC
    if repo.cache is not None:
        env["RESTIC_CACHE_DIR"] = str(repo.cache)
    else:
        env.pop("HOME", None)
    return env


def _failure(stderr: str, what: str) -> SpeicherError:
    """restic's complaint (its last lines) as Speicher's error."""
    text = stderr.strip()
    lower = text.lower()
    last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
    last = last.removeprefix("Fatal: ").strip()
    if "wrong password" in lower:
        return WrongPassword()
    if "config file already exists" in lower:
        return Conflict(
            "a restic repository exists there already; give its password to use it", "password"
        )
    if "is there a repository at the following location" in lower or (
        "unable to open config file" in lower and "no such file" in lower
    ):
        return NoRepository(f"{what}: there is no restic repository there")
    if "repository is already locked" in lower:
        return Conflict(f"{what}: the repository is in use by another restic ({last})")
    for sign in (
        "connection refused",
        "no such host",
        "i/o timeout",
        "network is unreachable",
        "connection reset",
        "connection closed",
        "unable to start the sftp session",
        "host key verification failed",
        "permission denied (publickey",
        "server has gone away",
        "tls: failed",
        "x509:",
    ):
        if sign in lower:
            return Unreachable(f"{what}: the server did not let restic in ({last})")
    if "no space left on device" in lower:
        return OperationFailed(f"{what}: the backup target is full")
    return OperationFailed(f"{what}: restic failed: {last or 'no message'}")


Messages = Callable[[dict[str, Any]], None]


def run(
    repo: Repository,
    args: Sequence[str],
    what: str,
    *,
    on_message: Messages | None = None,
    cwd: Path | None = None,
    pass_fds: Sequence[int] = (),
    timeout: float | None = None,
    ok: Sequence[int] = (0,),
) -> str:
    """Run ``restic ARGS`` for ``repo`` and return its standard output (``on_message`` gets
    each JSON line instead, as it comes), in folder ``cwd``. ``ok``:
    the exit codes that are success (a backup's 3: made, but some files were unreadable)."""
    argv = [RESTIC, *repo.options, *args]
    # restic dies with the daemon (a restic left running would hold the repository's lock)
    argv = ["setpriv", "--pdeathsig", "KILL", "--", *argv]
    log.debug("run restic %s", args[:1])
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(repo),
            pass_fds=tuple(pass_fds),
            close_fds=True,
            cwd=cwd,
        )
    except OSError as exc:
        raise OperationFailed(f"{what}: restic could not be started ({exc.strerror})") from None
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    out: list[str] = []
    assert proc.stdout is not None
    # the whole call's limit, also while restic prints nothing (a server that never answers)
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        proc.kill()

    watchdog = threading.Timer(timeout, expire) if timeout is not None else None
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    try:
        _read(proc.stdout, on_message, out)
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
        proc.stdout.close()
        reader.join(timeout=10)
    if fired.is_set() and code < 0:
        raise OperationFailed(f"{what}: restic took longer than {timeout:.0f} s")
    stderr = b"".join(errors).decode("utf-8", "replace")
    if code != 0 and code in ok:
        log.warning("%s: restic exited %d: %s", what, code, stderr[-2000:])
    elif code != 0:
        log.info("%s: restic exited %d: %s", what, code, stderr[-4000:])
        raise _failure(stderr, what)
    return "".join(out)


def _read(stdout: Any, on_message: Messages | None, out: list[str]) -> None:
    """restic's output: JSON lines to ``on_message`` (if given), the rest into ``out``."""
    for raw in stdout:
        line = raw.decode("utf-8", "replace")
        if on_message is not None and line.startswith("{"):
            try:
                message = json.loads(line)
            except ValueError:
                out.append(line)
                continue
            on_message(message)
        else:
            out.append(line)


def run_json(repo: Repository, args: Sequence[str], what: str, **kw: Any) -> Any:
    """``restic --json ARGS``, its whole output parsed."""
    text = run(repo, ["--json", *args], what, **kw)
    try:
        return json.loads(text or "null")
    except ValueError:
        raise OperationFailed(f"{what}: restic answered something that is not JSON") from None


def ensure_dir(path: Path) -> Path:
    """A root-only folder (restic's cache, a target's files)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
