"""ShareFS's errors as SFTP status codes (version 3, what OpenSSH, rclone and sshfs speak)
and a sentence the client can show: never a traceback, never a server path."""

from __future__ import annotations

import errno

from asyncssh import (
    FX_FAILURE,
    FX_NO_SUCH_FILE,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    SFTPError,
)

from speicher.files.errors import FsError

_CODES = {
    errno.ENOENT: FX_NO_SUCH_FILE,
    errno.ENOTDIR: FX_NO_SUCH_FILE,  # as OpenSSH's sftp-server answers it in version 3
    errno.ELOOP: FX_NO_SUCH_FILE,
    errno.EACCES: FX_PERMISSION_DENIED,
    errno.EPERM: FX_PERMISSION_DENIED,
    errno.EROFS: FX_PERMISSION_DENIED,
    errno.ENOSYS: FX_OP_UNSUPPORTED,
    errno.EOPNOTSUPP: FX_OP_UNSUPPORTED,
    # everything else, no space (ENOSPC, EDQUOT) included, is SSH_FX_FAILURE with its words
}


def to_sftp(exc: FsError) -> SFTPError:
    return SFTPError(_CODES.get(exc.code, FX_FAILURE), exc.message)


def refused(reason: str) -> SFTPError:
    return SFTPError(FX_PERMISSION_DENIED, reason)


def unsupported(reason: str) -> SFTPError:
    return SFTPError(FX_OP_UNSUPPORTED, reason)
