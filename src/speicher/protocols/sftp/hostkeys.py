"""The SFTP server's host keys: made once into ``<state_dir>/ssh/`` and kept, so clients that
trusted the server once keep trusting it.

Ed25519 (every current client) and ECDSA P-256 (older ones). Private keys are mode 0600 in a
0700 folder, written to a temp file and renamed, so a crash never leaves half a key; each
has its ``.pub`` beside it for ``ssh-keygen -lf``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from speicher.errors import SpeicherError

KEYS = (("ssh-ed25519", "ssh_host_ed25519_key"), ("ecdsa-sha2-nistp256", "ssh_host_ecdsa_key"))


@dataclass(frozen=True)
class HostKey:
    algorithm: str
    fingerprint: str  # SHA256:..., as ssh-keygen -l and the ssh client show it


def _write(path: Path, data: bytes, mode: int) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temp, mode)
    os.rename(temp, path)


def ensure(folder: Path) -> list[asyncssh.SSHKey]:
    """The host keys, made the first time."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    keys = []
    for algorithm, name in KEYS:
        path = folder / name
        try:
            if path.exists():
                key = asyncssh.read_private_key(path)
            else:
                key = asyncssh.generate_private_key(algorithm)
                _write(path, key.export_private_key("openssh"), 0o600)
                _write(path.with_suffix(".pub"), key.export_public_key("openssh"), 0o644)
            os.chmod(path, 0o600)
        except (OSError, ValueError, asyncssh.KeyImportError) as exc:
            raise SpeicherError(f"the SFTP host key {path} cannot be used: {exc}") from None
        keys.append(key)
    return keys


def describe(keys: list[asyncssh.SSHKey]) -> list[HostKey]:
    return [HostKey(k.get_algorithm(), k.get_fingerprint("sha256")) for k in keys]


def read(folder: Path) -> list[HostKey]:
    """The fingerprints of the host keys there (none made yet: none)."""
    found = []
    for _algorithm, name in KEYS:
        with contextlib.suppress(OSError, ValueError, asyncssh.KeyImportError):
            found += describe([asyncssh.read_public_key(folder / f"{name}.pub")])
    return found
