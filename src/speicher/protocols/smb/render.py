"""smb.conf as a pure function of Speicher's model: ``smb_conf()`` builds the sections as a
dict (unit-tested with plain values), ``to_text()`` prints them.

Nothing a user typed may become smb.conf syntax. ``to_text()`` refuses (``ValueError``) any
section name, key or value with a control character (a newline would start a new line, so a
new parameter or section), a section name with ``[`` or ``]``, a key with ``=``, a value that
ends in a backslash (Samba continues the line) or has leading or trailing white space (Samba
strips it), and a ``%`` anywhere but in the few values whose ``%`` is ours (Samba expands
``%h``, ``%v``, ``%$(VAR)``... in most values and has no escape for ``%``). Free text (the
share comment, from the description) is made harmless first by :func:`harmless_text`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from speicher.audit import smb as audit_smb

SNAPSHOT_FORMAT = "@GMT-%Y.%m.%d-%H.%M.%S"
RECYCLE_DIR = "#recycle"
INTERNAL_DIR = ".speicher"
UPLOAD_PREFIX = ".speicher-upload-"  # ShareFS's temp files (speicher.files.paths)

# New files and folders are made with ``0777 & create mask`` / ``0777 & directory mask`` when
# the parent has a default ACL (``inherit acls``); the group bits of that mode become the ACL
# mask, which caps every named user and group entry. Samba's defaults (0744, 0755) capped the
# share's rw grantees at r-- / r-x on each other's files, so a team could not edit each
# other's documents. Only the group bits are widened: the owner keeps Samba's rwx on files
# (a client asking for all rights, GENERIC_ALL, on its new file needs FILE_EXECUTE: with 0666
# smbtorture's smb2.connect failed), grantees get rw- on files and rwx on folders, and the
# other bits are Samba's (the share's default ACL has other::---, so they end up ---).
CREATE_MASK = "0764"
DIRECTORY_MASK = "0775"

# Values whose ``%`` is Speicher's own (no user's text is in them): vfs_shadow_copy2 reads its
# format with strftime; vfs_full_audit's prefix uses Samba's variables on purpose.
_PERCENT_KEYS = frozenset({"shadow:format", "full_audit:prefix"})
# Samba's username map: ``unix = client`` per line; ``!``, ``*``, ``@``, ``+``, ``&``, quotes and
# ``=`` have meanings there, so a name may only have the characters of account names.
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
FULLWIDTH_PERCENT = "\uff05"
_TRAILING = re.compile(r"[\s\\]+$")  # white space and backslashes at the end, mixed


@dataclass(frozen=True)
class SambaDirs:
    private: str
    lock: str
    state: str
    cache: str
    pid: str
    ncalrpc: str


@dataclass(frozen=True)
class GlobalOptions:
    workgroup: str
    server_name: str
    port: int
    interfaces: list[str]
    dirs: SambaDirs
    username_map: str | None = None
    signing_required: bool = False
    audit_prefix: str | None = None  # vfs_full_audit's prefix (audit/smb.py); None: no audit


@dataclass(frozen=True)
class ShareOptions:
    name: str
    path: str
    snapshots: str
    comment: str = ""
    readers: list[str] = field(default_factory=list)  # Unix users, or +group
    writers: list[str] = field(default_factory=list)
    browseable: bool = True
    abe: bool = False
    recycle: bool = False
    mac: bool = False
    time_machine: bool = False
    time_machine_size: int | None = None
    encrypt: bool = False
    guest: bool = False
    dfree_command: str | None = None
    audit: bool = False  # vfs_full_audit first: it sees what clients ask, before recycle


def smb_conf(glob: GlobalOptions, shares: list[ShareOptions]) -> dict[str, dict[str, str]]:
    """Every section of smb.conf with its parameters, in order."""
    d = glob.dirs
    conf: dict[str, dict[str, str]] = {
        "global": {
            "server role": "standalone server",
            "workgroup": glob.workgroup,
            "server string": "Speicher",
            "smb ports": str(glob.port),
            "disable netbios": "yes",
            "server min protocol": "SMB2_02",  # SMB1 is never offered
            "private dir": d.private,
            "lock directory": d.lock,
            "state directory": d.state,
            "cache directory": d.cache,
            "pid directory": d.pid,
            "ncalrpc dir": d.ncalrpc,
            "passdb backend": f"tdbsam:{d.private}/passdb.tdb",
            "logging": "stdout",
            "log level": "1",
            # counts and bytes of every SMB2 call for /metrics (smbstatus --profile); no timing
            "smbd profiling level": "count",
            "load printers": "no",
            "printing": "bsd",
            "printcap name": "/dev/null",
            "disable spoolss": "yes",
            "map to guest": "Bad User" if any(s.guest for s in shares) else "Never",
            # anonymous sessions get no share list, user list or other RPC answers; guest
            # access (a bad user mapped to the guest account) is not anonymous and still works
            "restrict anonymous": "2",
            "guest account": "nobody",
            "unix password sync": "no",
            "obey pam restrictions": "no",
            "inherit acls": "yes",  # new files follow the share's default ACL
            "create mask": CREATE_MASK,  # ... with a mask that lets grantees write (see above)
            "directory mask": DIRECTORY_MASK,
            "nt acl support": "no",  # permissions are Speicher's grants, not set by clients
            "store dos attributes": "yes",
            "ea support": "yes",
        }
    }
    if glob.server_name:
        conf["global"]["netbios name"] = glob.server_name
    if glob.interfaces:
        conf["global"]["interfaces"] = " ".join(glob.interfaces)
        conf["global"]["bind interfaces only"] = "yes"
    if glob.username_map:
        conf["global"]["username map"] = glob.username_map
    if glob.signing_required:
        conf["global"]["server signing"] = "mandatory"
    if glob.audit_prefix:
        # the audit log's lines go to smbd's stdout (the daemon reads them), not to syslog
        conf["global"]["full_audit:prefix"] = glob.audit_prefix
        conf["global"]["full_audit:success"] = audit_smb.OPERATIONS_LOGGED
        conf["global"]["full_audit:failure"] = audit_smb.FAILURES_LOGGED
        conf["global"]["full_audit:syslog"] = "false"
    if any(s.mac for s in shares):
        conf["global"]["fruit:aapl"] = "yes"
        conf["global"]["fruit:model"] = "MacSamba"
    for share in shares:
        conf[share.name] = _share(share)
    return conf


def _share(s: ShareOptions) -> dict[str, str]:
    readers = sorted(set(s.readers) | set(s.writers)) + (["nobody"] if s.guest else [])
    section = {
        "path": s.path,
        "comment": harmless_text(s.comment),
        "browseable": _yes(s.browseable),
        "read only": "yes",
        "valid users": " ".join(readers),
        "write list": " ".join(sorted(set(s.writers))),
        "guest ok": _yes(s.guest),
        # Speicher's folder and ShareFS's uploads in progress are invisible, as over WebDAV
        "veto files": f"/{INTERNAL_DIR}/{UPLOAD_PREFIX}*/",
        "delete veto files": "no",
        # a symbolic link in a share is never followed, by any protocol (docs/files.md)
        "follow symlinks": "no",
    }
    if s.abe:
        section["access based share enum"] = "yes"
        section["hide unreadable"] = "yes"
    if s.encrypt:
        section["server smb encrypt"] = "required"
    if s.dfree_command:
        section["dfree command"] = s.dfree_command
    vfs = ["full_audit"] if s.audit else []
    if s.mac:
        vfs += ["catia", "fruit", "streams_xattr"]
        section["fruit:metadata"] = "stream"
        section["fruit:resource"] = "stream"
        section["fruit:posix_rename"] = "yes"
        section["fruit:wipe_intentionally_left_blank_rfork"] = "yes"
        section["fruit:delete_empty_adfiles"] = "yes"
        if s.time_machine:
            section["fruit:time machine"] = "yes"
            if s.time_machine_size:
                section["fruit:time machine max size"] = f"{s.time_machine_size // 1024**2}M"
    vfs.append("shadow_copy2")
    section["shadow:snapdir"] = s.snapshots
    section["shadow:basedir"] = s.path
    section["shadow:format"] = SNAPSHOT_FORMAT
    section["shadow:localtime"] = "no"
    section["shadow:sort"] = "desc"
    if s.recycle:
        vfs.append("recycle")
        section["recycle:repository"] = RECYCLE_DIR
        section["recycle:keeptree"] = "yes"
        section["recycle:versions"] = "yes"
        section["recycle:touch_mtime"] = "yes"  # the purge counts days from the deletion
        section["recycle:directory_mode"] = "0770"
        section["recycle:exclude_dir"] = RECYCLE_DIR
    section["vfs objects"] = " ".join(vfs)
    return section


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def is_control(char: str) -> bool:
    """Control characters (Unicode category Cc: ASCII controls, DEL, C1) and the Unicode line
    and paragraph separators: what can end a line for some reader."""
    return unicodedata.category(char) == "Cc" or char in "\u2028\u2029"


def harmless_text(text: str) -> str:
    """Free text as an smb.conf value that Samba shows as typed and never interprets.

    Samba has no escape for ``%`` (``%%`` is not one), so ``%`` becomes U+FF05 FULLWIDTH PERCENT
    SIGN, which looks the same to a person and means nothing to Samba. Control characters
    become spaces (the API refuses them; older rows may hold them), white space at the ends
    is stripped as Samba would, and trailing backslashes, which would continue the line,
    are dropped."""
    text = "".join(" " if is_control(c) else c for c in text).replace("%", FULLWIDTH_PERCENT)
    return _TRAILING.sub("", text).strip()


def to_text(conf: dict[str, dict[str, str]]) -> str:
    """smb.conf's text; ``ValueError`` for anything that would be read as more, or other,
    than the section name, key or value it is (see the module's docstring)."""
    lines = ["# Written by Speicher; changes here are overwritten."]
    for section, params in conf.items():
        _check(section, f"section name {section!r}")
        if not section or "[" in section or "]" in section:
            raise ValueError(f"section name {section!r} is not a plain name")
        lines.append(f"\n[{section}]")
        for key, value in params.items():
            _check(key, f"key {key!r} of [{section}]")
            if not key or "=" in key or key != key.strip():
                raise ValueError(f"key {key!r} of [{section}] is not a plain name")
            _check_value(section, key, value)
            lines.append(f"    {key} = {value}")
    return "\n".join(lines) + "\n"


def _check(text: str, what: str) -> None:
    if any(is_control(c) for c in text):
        raise ValueError(f"{what} contains a control character")


def _check_value(section: str, key: str, value: str) -> None:
    where = f"value of {key!r} in [{section}]"
    _check(value, where)
    if value != value.strip():
        raise ValueError(f"{where} has white space at its ends, which Samba would strip")
    if value.endswith("\\"):
        raise ValueError(f"{where} ends in a backslash, which Samba reads as a continued line")
    if "%" in value and key not in _PERCENT_KEYS:
        raise ValueError(f"{where} contains '%', which Samba would expand")


def usermap_text(names: dict[str, str]) -> str:
    """Samba's username map (``unix = client`` per line) for ``{unix name: client name}``;
    ``ValueError`` for a name with anything but the characters of account names."""
    lines = []
    for unix, client in sorted(names.items()):
        for name in (unix, client):
            if not _ACCOUNT_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an account name for Samba's username map")
        lines.append(f"{unix} = {client}")
    return "\n".join(lines) + "\n"
