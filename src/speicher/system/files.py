"""Whole-tree file chores inside shares, done as root without ever following a symbolic link.

Users can change a share's folders at any moment, so these walk with
:func:`speicher.system.beneath.walk` (folders entered through the descriptor of what was
checked, links never followed, one filesystem) and delete by name relative to the folder's
descriptor: the worst a racing user can do is have their own entry in that folder deleted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path

from speicher.system import beneath
from speicher.system.run import run

log = logging.getLogger(__name__)

INTERNAL = ".speicher"
"""The share's internal folder in its top folder: root's alone (mode 0700, no ACL), left out of
the walks that apply grants, vetoed over SMB."""


def delete_older_than(folder: Path, days: int) -> None:
    """Delete files (and symbolic links, never their targets) in ``folder`` last modified
    ``days`` or more days ago, then the folders left empty. ``folder``'s own last part must be
    a real folder: a symbolic link there (a user's ``#recycle -> /etc``) is left alone."""
    try:
        with beneath.opened(beneath.open_root(folder.parent)) as share:
            top = beneath.open_dir(share, folder.name)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.warning("not purging %s: %s", folder, exc.strerror)
        return
    cutoff = time.time() - days * 86400
    with beneath.opened(top):
        for node in beneath.walk(top, post=True):
            if node.parent is None:
                continue
            mode = node.st.st_mode
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISDIR(mode):
                    _rmdir_if_empty(node.parent, node.name)
                elif (stat.S_ISREG(mode) or stat.S_ISLNK(mode)) and node.st.st_mtime <= cutoff:
                    _unlink_if_same(node)


def copy(source: str, target: str, *, pass_fds: Sequence[int] = ()) -> None:
    """Copy a file or folder with owner, mode, ACLs, xattrs and times; on btrfs the data is
    shared (reflink), so a restore costs no space until one side changes. Callers name source
    and target as :func:`beneath.proc_path` of folders they opened, passed in ``pass_fds``,
    so ``cp`` resolves nothing a user could redirect; ``cp -a`` copies a link as a link."""
    run(
        ["cp", "-a", "--reflink=auto", "--no-target-directory", source, target],
        timeout=24 * 3600,
        pass_fds=pass_fds,
    )


def remove_tree(dir_fd: int, name: str) -> None:
    """Delete entry ``name`` of the folder open as ``dir_fd`` with everything in it (on its
    filesystem: a nested mount or subvolume is left, and then so is the folder holding it)."""
    st = beneath.lstat(dir_fd, name)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    with beneath.opened(beneath.open_dir(dir_fd, name)) as top:
        for node in beneath.walk(top, post=True):
            if node.parent is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISDIR(node.st.st_mode):
                    _rmdir_if_empty(node.parent, node.name)
                else:
                    os.unlink(node.name, dir_fd=node.parent)
    _rmdir_if_empty(dir_fd, name)


def _rmdir_if_empty(dir_fd: int, name: str) -> None:
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.ENOENT):
            raise


def _unlink_if_same(node: beneath.Node) -> None:
    """Unlink the node's name only while it still is the object that was checked."""
    assert node.parent is not None
    now = beneath.lstat(node.parent, node.name)
    if now is not None and (now.st_dev, now.st_ino) == (node.st.st_dev, node.st.st_ino):
        os.unlink(node.name, dir_fd=node.parent)
