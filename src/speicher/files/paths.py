"""Paths as protocols send them, checked before anything touches the disk.

A path inside a share is a sequence of names. Every adapter hands ShareFS what its client
sent (``str`` or, from SFTP, ``bytes``); :func:`parse` makes the one decision for all of them:

- bytes must be valid UTF-8 (a name that is not cannot be shown the same on every protocol);
- no NUL, no path over 4,096 bytes, no name over 255 bytes (the kernel's limits, refused
  before the kernel sees them);
- ``""`` and ``.`` parts are dropped, ``..`` removes the part before it and is refused where
  it would leave the share (an adapter with a virtual folder above the shares, SFTP, resolves
  its own ``..`` first, lexically);
- the internal folder ``.speicher`` at the top and upload temp files anywhere are unreachable
  (:func:`hidden`), as Samba's ``veto files`` makes them.

Names of *new* entries must also be names every client can show (:func:`check_new_name`): no
control characters and no backslash (Windows clients take it for a separator).
"""

from __future__ import annotations

import errno
import unicodedata

from speicher.files.errors import FsError
from speicher.protocols.smb.render import INTERNAL_DIR, RECYCLE_DIR, UPLOAD_PREFIX

MAX_NAME = 255
MAX_PATH = 4096
SNAPSHOTS_DIR = ".snapshots"

__all__ = ["INTERNAL_DIR", "RECYCLE_DIR", "SNAPSHOTS_DIR", "UPLOAD_PREFIX", "parse"]


def parse(path: str | bytes) -> tuple[str, ...]:
    """The names of ``path`` below the share's top; raises FsError for what may not be."""
    if isinstance(path, bytes):
        raw = path
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError:
            raise FsError(errno.EINVAL, "the path is not valid UTF-8") from None
    else:
        text = path
        try:
            raw = path.encode("utf-8")
        except UnicodeEncodeError:
            raise FsError(errno.EINVAL, "the path is not valid UTF-8") from None
    if "\x00" in text:
        raise FsError(errno.EINVAL, "the path contains a NUL byte")
    if len(raw) > MAX_PATH:
        raise FsError(errno.ENAMETOOLONG, f"the path is longer than {MAX_PATH} bytes")
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise FsError(errno.EACCES, "the path leaves the share")
            parts.pop()
            continue
        if len(part.encode("utf-8")) > MAX_NAME:
            raise FsError(errno.ENAMETOOLONG, f"a name is longer than {MAX_NAME} bytes")
        parts.append(part)
    if hidden(parts):
        raise FsError(errno.ENOENT, "no such file or folder")
    return tuple(parts)


def hidden(parts: list[str] | tuple[str, ...]) -> bool:
    """Whether the path is Speicher's own: the internal folder or an upload in progress."""
    if parts and parts[0] == INTERNAL_DIR:
        return True
    return any(p.startswith(UPLOAD_PREFIX) for p in parts)


def visible(name: str, top: bool) -> bool:
    """Whether a listing shows entry ``name`` (``top``: of the share's top folder)."""
    if top and name in (INTERNAL_DIR, SNAPSHOTS_DIR):
        return False
    return not name.startswith(UPLOAD_PREFIX)


def check_new_name(name: str) -> None:
    """Refuse a name for a new file or folder that some client could not show or use."""
    if any(unicodedata.category(c) == "Cc" for c in name) or "\u2028" in name or "\u2029" in name:
        raise FsError(errno.EINVAL, "a name may not contain control characters")
    if "\\" in name:
        raise FsError(errno.EINVAL, "a name may not contain a backslash")
    if name in (INTERNAL_DIR, SNAPSHOTS_DIR):
        raise FsError(errno.EACCES, f"'{name}' is reserved")


def display(parts: tuple[str, ...]) -> str:
    """The path as events and messages show it: ``/a/b``."""
    return "/" + "/".join(parts)
