"""The immutable attribute of a file (``chattr +i``): no write, truncation, rename, link or
unlink of it, by anyone, root included, until it is lifted (which needs
``CAP_LINUX_IMMUTABLE``). The append-only attribute of a folder (``chattr +a``): names may be
added to it, none renamed away or removed, and the folder itself can be neither renamed nor
removed (S3 Object Lock's "sealed" folders, docs/s3.md). Set and read through
``FS_IOC_GETFLAGS``/``FS_IOC_SETFLAGS`` on a descriptor opened without following links."""

from __future__ import annotations

import fcntl
import os

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010
FS_APPEND_FL = 0x00000020
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def flags(fd: int) -> int:
    raw = fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))
    return int.from_bytes(raw[:4], "little")


def immutable(fd: int) -> bool:
    return bool(flags(fd) & FS_IMMUTABLE_FL)


def append_only(fd: int) -> bool:
    return bool(flags(fd) & FS_APPEND_FL)


def _set(fd: int, flag: int, on: bool) -> None:
    now = flags(fd)
    wanted = now | flag if on else now & ~flag
    if wanted != now:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, wanted.to_bytes(4, "little") + bytes(4))


def set_immutable(fd: int, on: bool) -> None:
    """Set or lift the attribute of the file open as ``fd`` (a no-op if it is so already)."""
    _set(fd, FS_IMMUTABLE_FL, on)


def set_append_only(fd: int, on: bool) -> None:
    """Set or lift the append-only attribute of the folder open as ``fd`` (a no-op if it is
    so already)."""
    _set(fd, FS_APPEND_FL, on)


def set_immutable_at(dir_fd: int, name: str, on: bool) -> None:
    """The same for entry ``name`` of the folder open as ``dir_fd`` (not followed)."""
    fd = os.open(name, OPEN_FLAGS, dir_fd=dir_fd)
    try:
        set_immutable(fd, on)
    finally:
        os.close(fd)
