"""The one error of ShareFS: an errno and a sentence, which every adapter maps to its
protocol's answer (WebDAV status, SFTP status code, S3 error code)."""

from __future__ import annotations

import errno
import os


class FsError(Exception):
    """A refused or failed file operation. ``code`` is an ``errno`` value."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def no_space(self) -> bool:
        return self.code in (errno.ENOSPC, errno.EDQUOT)


_MESSAGES = {
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "it exists already",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENOTEMPTY: "the folder is not empty",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read only",
    errno.ENOSPC: "no space left: the pool is full",
    errno.EDQUOT: "no space left: the share's quota is used up",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EXDEV: "the path leaves the share",
    errno.ELOOP: "no such file or folder",  # a symbolic link: never followed, never shown
    errno.EINVAL: "invalid name",
}


def from_os(exc: OSError) -> FsError:
    """An OSError from the kernel in ShareFS's words (never the server's own paths)."""
    code = exc.errno or errno.EIO
    if code == errno.ELOOP:
        code = errno.ENOENT
    return FsError(code, _MESSAGES.get(code, os.strerror(code).lower()))
