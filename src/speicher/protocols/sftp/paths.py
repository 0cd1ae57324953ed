"""SFTP paths: the virtual root lists the shares, ``/share/...`` is inside one.

Clients send any bytes. They are resolved lexically here, once, before ShareFS sees them:
relative paths are taken from ``/`` (every user's home), ``.`` and empty parts are dropped and
``..`` removes the part before it, clamped at ``/`` as ``realpath`` does (``/../docs`` is
``/docs``). ShareFS then checks what is left below the share (UTF-8, lengths, hidden names)
and resolves it beneath the share's top without following links.
"""

from __future__ import annotations

import errno

from speicher.files.errors import FsError

MAX_PATH = 8192  # bytes a client may send; ShareFS refuses more than 4,096 below the share


def normalize(path: bytes) -> tuple[bytes, ...]:
    """The parts of ``path`` after lexical resolution (``()`` is the root)."""
    if len(path) > MAX_PATH:
        raise FsError(errno.ENAMETOOLONG, "the path is too long")
    if b"\x00" in path:
        raise FsError(errno.EINVAL, "the path contains a NUL byte")
    parts: list[bytes] = []
    for part in path.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


def display(parts: tuple[bytes, ...]) -> bytes:
    """The absolute path a client is told (``realpath``)."""
    return b"/" + b"/".join(parts)


def split(parts: tuple[bytes, ...]) -> tuple[str, bytes]:
    """(share name, path inside the share) of a path that is not the root."""
    try:
        share = parts[0].decode("utf-8")
    except UnicodeDecodeError:
        raise FsError(errno.ENOENT, "no such share") from None
    return share, b"/".join(parts[1:])
