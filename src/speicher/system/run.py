"""The one way Speicher runs an external command."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Tools live in sbin on Debian; a daemon started from a user's shell may lack it on PATH.
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


SYSTEM_ZONE = ":/etc/localtime"


def minimal_env() -> dict[str, str]:
    """The whole environment of every child: a fixed PATH, the C locale (output we parse is
    English and stable), root's HOME, and the time zone. Never the daemon's own
    environment, which may hold secrets (``SPEICHER_*`` settings, an admin password given at
    first start) that a child could reveal: smbd expands ``%$(VAR)`` from its environment.

    Without a TZ, the system's zone is named (``:/etc/localtime``, the zone glibc uses when
    TZ is unset): glibc then reads the file once instead of checking it at every
    ``localtime()``; smbd's audit module calls that four times for every file closed."""
    return {
        "PATH": _PATH,
        "LC_ALL": "C",
        "LANG": "C",
        "HOME": "/root",
        "TZ": os.environ.get("TZ") or SYSTEM_ZONE,
    }


class CommandError(Exception):
    """A command failed or could not be run; carries the command and what it printed."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{' '.join(self.argv)} exited {returncode}: {self.output}")

    @property
    def output(self) -> str:
        """The most telling text the command printed, stripped, on one line."""
        text = (self.stderr.strip() or self.stdout.strip()).replace("\n", " | ")
        return text[:2000]


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 300,
    input: str | None = None,
    pass_fds: Sequence[int] = (),
) -> Result:
    """Run ``argv`` (no shell) and return its output; raise :class:`CommandError` on failure.
    ``pass_fds`` stay open in the child under the same numbers (for ``/proc/self/fd/N`` paths)."""
    env = minimal_env()
    log.debug("run %s", argv)
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=env,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError:
        raise CommandError(argv, 127, "", f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, -1, "", f"timed out after {exc.timeout:.0f} s") from None
    result = Result(list(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return result
