"""Rules for names and sizes a user types. Pure functions: each returns the reason a value is
wrong, or None when it is fine.

Names of pools, shares, users and groups are case-insensitive: what an admin types (``Finance``,
``HR``) is stored and shown in lower case (:func:`normalize`), because SMB share names and user
names are case-insensitive and a Unix account must be lower case. The rules below apply to the
lower-cased name, and each reason says the whole rule."""

from __future__ import annotations

import re

_POOL = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
# One name on every protocol: valid as an SMB share name and as a folder; as an S3 bucket name
# too unless it has an '_' or only two characters (see bucket_name). No dots: they would make
# virtual-host-style S3 addresses fail TLS, and '.' and '..' are no folder names.
_SHARE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,61}[a-z0-9]$")
# What useradd, groupadd and Samba accept: dots too (bob.smith), but not at the end.
_ACCOUNT = re.compile(r"^[a-z_](?:[a-z0-9_.-]*[a-z0-9_-])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_DISK = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_RESERVED_SHARES = {"global", "homes", "printers", "print", "ipc", "admin", "api", "dav"}
_RESERVED_ACCOUNTS = {
    "root",
    "nobody",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "_apt",
    "sshd",
    "messagebus",
    "systemd-network",
    "systemd-resolve",
    "speicher",
    "guest",
    "users",
    "wheel",
    "sudo",
    "adm",
    "staff",
    "shadow",
    "disk",
    "tty",
    "kmem",
    "operator",
}


def normalize(name: str) -> str:
    """How a pool, share, user or group name is stored: in lower case."""
    return name.lower()


def pool_name(name: str) -> str | None:
    if not _POOL.fullmatch(name):
        return (
            "must be 3-32 characters: letters (stored in lower case), digits and '-', starting "
            "with a letter and not ending with '-'"
        )
    return None


def share_name(name: str) -> str | None:
    """A share's name (already lower case): the same on SMB, in folders and, where the name
    allows it, as an S3 bucket."""
    if not _SHARE.fullmatch(name):
        return (
            "must be 2-63 characters: letters (stored in lower case), digits, '-' and '_', "
            "starting and ending with a letter or digit"
        )
    if name in _RESERVED_SHARES:
        return f"'{name}' is reserved"
    return None


def bucket_name(name: str) -> str | None:
    """Why a share of this name cannot be an S3 bucket, or None (S3's own rules)."""
    if not _BUCKET.fullmatch(name):
        return (
            "an S3 bucket name must be 3-63 characters: lower-case letters, digits and '-' "
            "(no '_'), starting and ending with a letter or digit"
        )
    if (
        "--" in name
        or name.startswith(("xn-", "sthree-", "amzn-s3-demo-"))
        or name.endswith("-s3alias")
    ):
        return (
            "an S3 bucket name must not contain '--', start with 'xn-', 'sthree-' or "
            "'amzn-s3-demo-', or end with '-s3alias' (reserved by S3)"
        )
    return None


def account_name(name: str, max_length: int = 32) -> str | None:
    """A user or group name; ``max_length`` leaves room for the instance's account prefix."""
    if not name or len(name) > max_length or not _ACCOUNT.fullmatch(name) or ".." in name:
        return (
            f"must be 1-{max_length} characters: letters (stored in lower case), digits, '_', "
            "'-' and '.', starting with a letter or '_' and not ending with '.'"
        )
    if name in _RESERVED_ACCOUNTS:
        return f"'{name}' is reserved for the system"
    return None


def disk_name(name: str) -> str | None:
    if not _DISK.fullmatch(name):
        return "must be 1-63 characters: lower-case letters, digits, '_' and '-'"
    return None


_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([KMGTP])(?:I?B)?|B)?\s*", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """``10G`` -> bytes. Units are binary (K=1024); ``GiB``/``GB`` mean the same. Raises
    ValueError with a readable reason."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError("must not be negative")
        return text
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"'{text}' is not a size (examples: 500M, 10G, 2T)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


def format_size(size: int | float | None) -> str:
    """Bytes as a short human figure: 1.5G."""
    if size is None:
        return "-"
    value = float(size)
    if abs(value) < 1024:
        return f"{value:.0f}B"
    for unit in ("K", "M", "G", "T", "P"):
        value /= 1024
        if abs(value) < 1023.95 or unit == "P":
            return f"{value:.1f}{unit}"
    raise AssertionError("unreachable")
