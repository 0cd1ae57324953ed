"""What the audit log holds: one :class:`Record` per file operation, admin action or login.

The operations of files (``category="file"``), named the same for every protocol:

========================  =====================================================================
``create``                a new file (SMB: one the open made, by its birth time)
``open_write``            a file that was there opened for writing (its size after)
``read``                  a file opened for reading; only on shares that audit reads
``rename``                ``path`` renamed to ``target``
``copy``                  ``path`` copied to ``target`` (WebDAV COPY, S3 CopyObject)
``delete``                a file removed
``mkdir`` / ``rmdir``     a folder made or removed
``set_permission``        mode, owner or ACL changed
========================  =====================================================================

Admin actions (``category="admin"``) have the request as ``operation`` (``POST
/shares/{name}``), the object (``finance``) as ``path`` and the answer as ``outcome``;
logins (``category="login"``) have ``login`` as operation and ``ok`` or ``failed``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import Literal

Category = Literal["file", "admin", "login"]

FILE_OPERATIONS = (
    "create",
    "open_write",
    "read",
    "rename",
    "copy",
    "delete",
    "mkdir",
    "rmdir",
    "set_permission",
)


@dataclass(frozen=True, slots=True)
class Record:
    time: float  # seconds since the epoch
    category: Category
    protocol: str  # smb, webdav, sftp, s3, web (the file manager); api, console, cli for admin
    user: str
    address: str
    share: str
    operation: str
    path: str  # "/a/b" inside the share; the object of an admin action
    target: str = ""  # the new name of a rename or copy
    size: int = 0  # a written file's size afterwards
    outcome: str = "ok"  # ok, failed, or an HTTP status for admin actions
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def without_controls(text: str, limit: int = 4096) -> str:
    """A field as stored: control characters (which a path may hold, over SMB or SFTP)
    become U+FFFD so that no reader of the log, a terminal or a CSV file, takes them for
    more than text; and at most ``limit`` characters."""
    if text.isprintable():  # the quick answer for almost every field
        return text[:limit]
    return "".join("\ufffd" if _control(c) else c for c in text[:limit])


def _control(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in "\u2028\u2029"
