"""SMB's file operations, as Samba's ``vfs_full_audit`` tells them, turned into audit records.

smbd runs with ``--debug-stdout``; ``full_audit:syslog = false`` makes the module write its
lines there too (as debug level 1 messages), so they reach the daemon through smbd's
stdout pipe and never the box's syslog. Each line starts with a prefix that holds a random
token of this daemon's start (smb.conf is root's), the smbd process, the Unix user, the
client's address and the share:

    SPAUDIT-<token>|<pid>|<unix user>|<address>|<share>|<operation>|<ok or fail (why)>|<args>

The operations that are logged (``render.py`` sets them) and what they become:

- ``create_file`` (every open): a file opened with write access is remembered and becomes
  ``create`` (disposition *create*, or a file the open made: its birth time) or
  ``open_write`` at its ``close``, when its size is known; a read-only open is ``read``,
  on shares that audit reads; a folder's open is remembered, so that its ``unlinkat`` is
  an ``rmdir``;
- ``renameat``, ``unlinkat``, ``mkdirat``: ``rename`` (both names), ``delete`` or
  ``rmdir``, ``mkdir``;
- ``fchmod``, ``fchown``, ``fset_nt_acl``: ``set_permission``.

Failures are recorded for changes that were refused (``Permission denied`` and the like);
a failed open of a file that does not exist is what every client does all day, and is not.

Paths are absolute in the lines; a record holds the path inside the share. A file name may
hold a ``|``: the arguments are split by the share's path, which starts every one of them.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypedDict

from speicher.audit.records import Category, Record, without_controls
from speicher.system import beneath

log = logging.getLogger(__name__)

OPERATIONS_LOGGED = (
    "create_file close renameat unlinkat mkdirat fchmod fchown fset_nt_acl"  # success
)
FAILURES_LOGGED = "create_file renameat unlinkat mkdirat fchmod fchown fset_nt_acl"

# access mask bits (MS-SMB2 2.2.13.1) that make an open a writing one
_WRITE_ACCESS = 0x2 | 0x4 | 0x40000000 | 0x10000000  # WRITE_DATA, APPEND_DATA, GENERIC_W/ALL
_READ_ACCESS = 0x1 | 0x80000000  # READ_DATA, GENERIC_READ
_DELETE = 0x10000
_CREATE = "create"
_MAYBE_NEW = frozenset({"open_if", "overwrite_if", "supersede"})  # create it if not there
_NOT_FOUND = ("No such file or directory", "Object name not found", "NT_STATUS_OBJECT_NAME_NOT")
_NUMBER = re.compile(r"-?[0-9a-fx]+")  # a mode, uid or gid after the path
BORN_SLACK = 5.0  # seconds a line may come after its open (smbd's pipe under load)
PENDING_SECONDS = 30.0  # a file open for writing longer than this is recorded without a size


class _Fields(TypedDict):
    """What the records of one line have in common."""

    time: float
    category: Category
    protocol: str
    user: str
    address: str
    share: str
    outcome: str
    detail: str


@dataclass(frozen=True)
class _Open:
    record: Record
    since: float
    root: str  # the share's folder, where the size is looked up at the close
    maybe_new: bool = False  # opened "create if not there": its birth time tells
    born: float | None = None  # its birth time, read after the read its open's line came in


def prefix(token: str) -> str:
    """``full_audit:prefix``: the start of every line (smb.conf variables, see above)."""
    return f"SPAUDIT-{token}|%d|%u|%I|%S"


class SmbAuditParser:
    """Lines in, records out (``emit``). ``shares`` gives each share's folder (absolute,
    as in smb.conf) and whether its reads are audited; ``user_of`` maps a Unix account to
    the Speicher user."""

    def __init__(
        self,
        token: str,
        shares: Callable[[], dict[str, tuple[str, bool]]],
        user_of: Callable[[str], str],
        emit: Callable[[Record], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.marker = f"SPAUDIT-{token}|"
        self.shares = shares
        self.user_of = user_of
        self.emit = emit
        self.clock = clock
        self.size_of = size_beneath
        self._writing: dict[tuple[str, str], _Open] = {}  # (pid, path) -> open for writing
        self._dirs: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._known: dict[str, tuple[str, bool]] = {}
        self._who: dict[str, str] = {}  # Unix account -> the user as recorded
        self._unlooked: set[tuple[str, str]] = set()  # opens to look at in settle()
        self._roots: dict[str, int] = {}  # shares' folders open during one read's lines

    def is_audit(self, line: str) -> bool:
        return self.marker in line

    def feed(self, line: str) -> None:
        """One line of smbd's output that :meth:`is_audit`."""
        start = line.find(self.marker)
        fields = line[start + len(self.marker) :].rstrip("\n").split("|", 6)
        if len(fields) < 6:
            return
        pid, unix, address, share, operation, status = fields[:6]
        args = fields[6] if len(fields) > 6 else ""
        place = self._share(share)
        if place is None:
            return  # IPC$ and the like
        root, reads = place
        if self._quick(pid, root, reads, operation, status, args):
            return
        ok = status == "ok"
        # the fields every record of this line has; each record is made once from them (a
        # record made and then replaced was a measurable share of the time per line)
        base: _Fields = {
            "time": self.clock(),
            "category": "file",
            "protocol": "smb",
            "user": self._user(unix),
            "address": without_controls(address),
            "share": share,
            "outcome": "ok" if ok else _failure(status),
            "detail": f"smbd {pid}" if pid.isdigit() else "",  # the session's process
        }
        if operation == "create_file":
            self._create_file(pid, base, root, reads, ok, args)
        elif operation == "renameat":
            old, new = _two_paths(root, args)
            if old is not None:
                self._changed(ok, status, Record(**base, operation="rename", path=old, target=new))
        elif operation == "unlinkat":
            path = _inside(root, args)
            if path is not None:
                folder = (pid, path) in self._dirs
                self._dirs.pop((pid, path), None)
                kind = "rmdir" if folder else "delete"
                self._changed(ok, status, Record(**base, operation=kind, path=path))
        elif operation == "mkdirat":
            path = _inside(root, args)
            if path is not None:
                self._changed(ok, status, Record(**base, operation="mkdir", path=path))
        elif operation in ("fchmod", "fchown", "fset_nt_acl"):
            head, cut, tail = args.rpartition("|")
            path = _inside(root, head if cut and _NUMBER.fullmatch(tail) else args)
            if path is not None:
                self._changed(ok, status, Record(**base, operation="set_permission", path=path))

    def _quick(
        self, pid: str, root: str, reads: bool, operation: str, status: str, args: str
    ) -> bool:
        """The most frequent lines, done without a record made: a close (a folder's too, and
        every read's), and a file's open to read on a share that does not audit reads."""
        if operation == "close":
            self._close(pid, _inside(root, args))
            return True
        if operation != "create_file" or status != "ok" or reads:
            return False
        parsed = _open_args(args)
        if parsed is None:
            return False
        mask, kind, disposition, _path = parsed
        return kind == "file" and _opened_as(mask, disposition) == "read"

    def expire(self) -> None:
        """Record the files open for writing for longer than PENDING_SECONDS (a client that
        holds a file open all day), with the size they have now."""
        now = self.clock()
        for key, opened in list(self._writing.items()):
            if now - opened.since > PENDING_SECONDS:
                del self._writing[key]
                self.emit(self._sized(opened))

    def _user(self, unix: str) -> str:
        """The user as recorded, of a Unix account (remembered: asked on every line)."""
        user = self._who.get(unix)
        if user is None:
            if len(self._who) > 4096:
                self._who.clear()
            user = self._who[unix] = without_controls(self.user_of(unix))
        return user

    def _share(self, share: str) -> tuple[str, bool] | None:
        place = self._known.get(share)
        if place is None:
            self._known = self.shares()
            place = self._known.get(share)
        return place

    def refresh(self) -> None:
        """The shares changed (their folders or read auditing)."""
        self._known = self.shares()

    def _create_file(
        self, pid: str, base: _Fields, root: str, reads: bool, ok: bool, args: str
    ) -> None:
        parsed = _open_args(args)
        if parsed is None:
            return
        mask, kind, disposition, full = parsed
        path = _inside(root, full)
        if path is None:
            return
        if kind == "dir":
            self._folder(pid, base, path, ok, disposition)
            return
        operation = _opened_as(mask, disposition)
        record = Record(**base, operation=operation, path=path)
        if not ok:
            # a refused change; Samba's reason is often a stale "No such file or directory"
            # (a share that is read-only for the user), so it is not repeated
            if operation == "read" and mask & _DELETE:
                operation = "delete"  # an open to delete or rename
            if operation != "read":
                self.emit(replace(record, operation=operation, outcome=_refused(base)))
            return
        if operation == "read":
            if reads and mask & _READ_ACCESS:
                self.emit(record)
            return
        key = (pid, path)
        earlier = self._writing.pop(key, None)
        if earlier is not None:  # opened again before the first close came: keep both
            self.emit(self._sized(earlier))
        maybe_new = disposition in _MAYBE_NEW
        if maybe_new:  # looked at after this read too: the file may be gone by its close
            self._unlooked.add(key)
        self._writing[key] = _Open(record, self.clock(), root, maybe_new)

    def settle(self) -> None:
        """After the lines of one read: look at the files opened "create if not there" in it
        whose close did not come in the same read (the close looks itself, and one look is
        enough for both: the lines of a read come at once). A file renamed or deleted before
        its close's line can then still tell whether the open made it."""
        for key in self._unlooked:
            opened = self._writing.get(key)
            if opened is not None:
                self._writing[key] = replace(opened, born=self._look(opened)[1])
        self._unlooked.clear()
        roots, self._roots = self._roots, {}
        for fd in roots.values():  # never held past a read: a pool must stay unmountable
            os.close(fd)

    def _look(self, opened: _Open) -> tuple[int, float | None]:
        """Size and birth time of an open file now; 0 and None when it cannot be seen."""
        top = self._roots.get(opened.root)
        try:
            if top is None:
                top = self._roots[opened.root] = beneath.open_root(opened.root)
            return self.size_of(top, opened.record.path)
        except (OSError, ValueError):
            return 0, None

    def _folder(self, pid: str, base: _Fields, path: str, ok: bool, disposition: str) -> None:
        """A folder's open: remembered (its unlinkat is an rmdir); a refused create is a
        refused mkdir."""
        if ok:
            self._dirs[(pid, path)] = None
            if len(self._dirs) > 4096:
                self._dirs.popitem(last=False)
        elif disposition == _CREATE:
            made = Record(**base, operation="mkdir", path=path)
            self.emit(replace(made, outcome=_refused(base)))

    def _close(self, pid: str, path: str | None) -> None:
        if path is None:
            return
        opened = self._writing.pop((pid, path), None)
        if opened is not None:
            self.emit(self._sized(opened))

    def _sized(self, opened: _Open) -> Record:
        """A written file's record with its size now (at its close: before a rename can
        take it away). Clients open new files "to overwrite if there" as often as "to
        create"; a file such an open made (its birth time is not older than the open's
        line, with BORN_SLACK for a late line) is a ``create``."""
        size, born = self._look(opened)
        born = born if born is not None else opened.born
        record = opened.record
        if opened.maybe_new and born is not None and born >= record.time - BORN_SLACK:
            return replace(record, size=size, operation=_CREATE)
        return replace(record, size=size)

    def _changed(self, ok: bool, status: str, record: Record) -> None:
        if ok or not any(n in status for n in _NOT_FOUND):
            self.emit(record)


def size_beneath(top: int, path: str) -> tuple[int, float | None]:
    """The size of the regular file at ``path`` in the folder open as ``top`` and when it
    was made, reached without following a symbolic link (root must not be led out of a
    share); 0 and None for anything else."""
    found = beneath.entry_status(top, path.lstrip("/"))
    if not stat.S_ISREG(found.mode):
        return 0, None
    return found.size, found.born


def _open_args(args: str) -> tuple[int, str, str, str] | None:
    """``create_file``'s arguments: access mask, ``file`` or ``dir``, disposition, path."""
    parts = args.split("|", 3)
    if len(parts) != 4:
        return None
    mask_text, kind, disposition, full = parts
    try:
        return int(mask_text, 16), kind, disposition, full
    except ValueError:
        return None


def _opened_as(mask: int, disposition: str) -> str:
    """A file's open as recorded: ``create``, ``open_write`` or ``read``."""
    if disposition == _CREATE:
        return _CREATE
    writes = bool(mask & _WRITE_ACCESS) or disposition in ("overwrite", "supersede")
    return "open_write" if writes else "read"


def _refused(base: _Fields) -> str:
    """A refused open's outcome: ``failed``, with the reason unless it is "not found"."""
    outcome = base["outcome"]
    return "failed" if any(n in outcome for n in _NOT_FOUND) else outcome


def _failure(status: str) -> str:
    """``fail (Permission denied)`` -> ``failed: Permission denied``."""
    why = status.removeprefix("fail").strip().strip("()")
    return without_controls(f"failed: {why}" if why else "failed", 200)


def _inside(root: str, full: str) -> str | None:
    """The path inside the share of an absolute path smbd logged; None outside it."""
    if full == root or full == root + "/.":
        return "/"
    if not full.startswith(root + "/"):
        return None
    rest = full[len(root) :]
    if rest.endswith("/.") or rest.endswith("/.."):
        return None  # a folder's own entries, opened while listing it
    return without_controls(rest)


def _two_paths(root: str, args: str) -> tuple[str | None, str]:
    """``renameat``'s "old|new", split where the second path (which starts with the
    share's folder) begins: a name may hold a ``|``."""
    cut = args.find("|" + root + "/")
    if cut < 0:
        return None, ""
    old, new = _inside(root, args[:cut]), _inside(root, args[cut + 1 :])
    return old, new or ""
