"""Sealed folders: the folders above a locked S3 object version.

The immutable attribute of a locked file keeps its bytes and its own name, but renaming a
folder above it (over SMB, WebDAV or SFTP) would take the object away from its key. Linux
has no attribute that keeps one name of a folder in place and nothing else, so every folder
between the share's top and a locked file is made *append-only* (``chattr +a``): it can be
neither renamed nor removed, and nothing in it can be renamed away or removed, by anyone,
root included; new names can still be added (a file created in place over SMB, a new
folder). The rule, which :func:`settle` keeps: a folder is sealed while it directly holds an
immutable file or a sealed folder.

S3 itself changes sealed folders: a bucket with Object Lock is versioned, so an overwrite
moves the old bytes away and a delete leaves a marker. A view of such a bucket
(``ShareView.seals``) lifts the seal of the folder it changes for the change and sets it
again, under the seal lock (:func:`held`): one ``flock`` of the share's top folder, taken by every
process that lifts, sets or settles a seal, so the daemon's expiry can never unseal a folder
that a request is just sealing, and no request sees a folder sealed under its feet.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Iterator

from speicher.system import attrs, beneath


class _ShareLock:
    def __init__(self) -> None:
        self.local = threading.RLock()
        self.depth = 0
        self.fd = -1


_locks: dict[tuple[int, int], _ShareLock] = {}
_locks_guard = threading.Lock()


@contextlib.contextmanager
def held(top_fd: int) -> Iterator[None]:
    """The seal lock of the share whose top folder is open as ``top_fd``: an ``flock`` of
    it against other processes, and a lock per share against this process's other threads
    (re-entrant in the thread that holds it, through any descriptor of the share)."""
    st = os.fstat(top_fd)
    with _locks_guard:
        share = _locks.setdefault((st.st_dev, st.st_ino), _ShareLock())
    with share.local:
        if share.depth == 0:
            fcntl.flock(top_fd, fcntl.LOCK_EX)
            share.fd = top_fd
        share.depth += 1
        try:
            yield
        finally:
            share.depth -= 1
            if share.depth == 0:
                fcntl.flock(share.fd, fcntl.LOCK_UN)
                share.fd = -1


@contextlib.contextmanager
def lifted(top_fd: int, dir_fd: int) -> Iterator[None]:
    """The folder open as ``dir_fd`` (of the share open as ``top_fd``) changeable for the
    block: its seal lifted, if it has one, and set again after."""
    with held(top_fd):
        sealed = attrs.append_only(dir_fd)
        if sealed:
            attrs.set_append_only(dir_fd, False)
        try:
            yield
        finally:
            if sealed:
                with contextlib.suppress(OSError):
                    attrs.set_append_only(dir_fd, True)


def seal_above(top_fd: int, parts: tuple[str, ...]) -> None:
    """Seal every folder between the share's top (not itself) and entry ``parts`` (hold
    the lock across this and setting the entry's own attribute)."""
    with held(top_fd):
        for end in range(1, len(parts)):
            fd = beneath.open_dir(top_fd, "/".join(parts[:end]))
            try:
                attrs.set_append_only(fd, True)
            finally:
                os.close(fd)


def settle(top_fd: int, folder: tuple[str, ...]) -> int:
    """Lift the seal of ``folder`` and of the folders above it, as far up as each holds no
    immutable file and no sealed folder any more (after a lock ended in ``folder``); how
    many were lifted. Reads each folder it looks at once, one attribute per entry."""
    lifted_count = 0
    with held(top_fd):
        while folder:
            try:
                fd = beneath.open_dir(top_fd, "/".join(folder))
            except OSError:  # removed with the last file in it: the folders above may go
                folder = folder[:-1]
                continue
            try:
                if not attrs.append_only(fd) or holds_lock(fd):
                    return lifted_count
                attrs.set_append_only(fd, False)
                lifted_count += 1
            finally:
                os.close(fd)
            folder = folder[:-1]
    return lifted_count


def holds_lock(dir_fd: int) -> bool:
    """Whether the folder open as ``dir_fd`` directly holds an immutable file or a sealed
    folder."""
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            try:
                kind = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
                continue
            try:
                fd = os.open(entry.name, attrs.OPEN_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                flags = attrs.flags(fd)
            except OSError:
                continue
            finally:
                os.close(fd)
            wanted = attrs.FS_IMMUTABLE_FL if stat.S_ISREG(kind) else attrs.FS_APPEND_FL
            if flags & wanted:
                return True
    return False
