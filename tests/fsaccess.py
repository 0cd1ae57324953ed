"""Acting on files as an ordinary Unix user, to check what the operating system enforces."""

from __future__ import annotations

import pwd
import subprocess


def as_user(
    unix_name: str, *argv: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``unix_name`` with that account's groups (not root)."""
    gid = pwd.getpwnam(unix_name).pw_gid
    return subprocess.run(
        ["setpriv", f"--reuid={unix_name}", f"--regid={gid}", "--init-groups", "--", *argv],
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def can_write(unix_name: str, path: str, text: str = "data") -> bool:
    return as_user(unix_name, "sh", "-c", f'cat > "{path}"', input=text).returncode == 0


def read(unix_name: str, path: str) -> str | None:
    result = as_user(unix_name, "cat", path)
    return result.stdout if result.returncode == 0 else None
