"""POSIX ACLs, read and written as the kernel's ``system.posix_acl_*`` extended attributes.

Speicher sets ACLs as root in folders its users can change, so it does not run ``setfacl -R``
or ``find -exec chmod``: both name files by path, and a user who swaps a file for a symbolic
link mid-walk (or owns one to begin with) gets root to change a file outside the share. Here
every file is reached with :func:`speicher.system.beneath.walk`, which never follows a link and
stays on the share's filesystem, and is acted on through ``/proc/self/fd/N`` of the very object
that was checked. Symbolic links and special files are left alone; the share's internal
folder (``.speicher``) is not the users' and is skipped.

The attribute format (``linux/posix_acl_xattr.h``): a little-endian u32 version 2, then
entries of (u16 tag, u16 perm, u32 id), sorted by tag and id. The mask is recalculated on every
change as ``setfacl`` does: the union of the named entries and the owning group.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from speicher.system import beneath
from speicher.system.files import INTERNAL
from speicher.system.run import CommandError

ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"
VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED_ID = 0xFFFFFFFF
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
_TAGS = {"user": USER, "group": GROUP}
_T = TypeVar("_T")

Acl = dict[tuple[int, int], int]
"""An ACL as ``{(tag, id): perm bits}``; owner, owning group, mask and other have no id."""


@dataclass(frozen=True)
class Entry:
    """One named ACL entry: ``kind`` is ``user`` or ``group``, ``qualifier`` a numeric id."""

    kind: str
    qualifier: int
    perms: str  # e.g. "rwx", "r-x"


def perm_bits(text: str) -> int:
    """``"r-x"`` -> 5."""
    return sum(bit for char, bit in zip(text, (4, 2, 1), strict=True) if char != "-")


def perm_text(bits: int) -> str:
    """5 -> ``"r-x"``."""
    return "".join(c if bits & b else "-" for c, b in zip("rwx", (4, 2, 1), strict=True))


def encode(acl: Acl) -> bytes:
    """The attribute value of ``acl``, entries in the order the kernel requires."""
    out = [_HEADER.pack(VERSION)]
    for (tag, qualifier), perm in sorted(acl.items()):
        out.append(_ENTRY.pack(tag, perm, qualifier))
    return b"".join(out)


def decode(data: bytes) -> Acl:
    """The ACL of an attribute value; refuses what is not version 2."""
    if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _ENTRY.size:
        raise ValueError(f"an ACL attribute of {len(data)} bytes is malformed")
    (version,) = _HEADER.unpack_from(data)
    if version != VERSION:
        raise ValueError(f"ACL attribute version {version}, expected {VERSION}")
    acl: Acl = {}
    for offset in range(_HEADER.size, len(data), _ENTRY.size):
        tag, perm, qualifier = _ENTRY.unpack_from(data, offset)
        key = qualifier if tag in (USER, GROUP) else UNDEFINED_ID
        acl[(tag, key)] = perm & 7
    return acl


def from_mode(mode: int) -> Acl:
    """The ACL a file without an extended one has: its mode bits."""
    return {
        (USER_OBJ, UNDEFINED_ID): (mode >> 6) & 7,
        (GROUP_OBJ, UNDEFINED_ID): (mode >> 3) & 7,
        (OTHER, UNDEFINED_ID): mode & 7,
    }


def masked(acl: Acl) -> Acl:
    """``acl`` with its mask recalculated (added when it has named entries)."""
    group_class = [p for (tag, _), p in acl.items() if tag in (USER, GROUP_OBJ, GROUP)]
    has_named = any(tag in (USER, GROUP) for tag, _ in acl)
    if not has_named and (MASK, UNDEFINED_ID) not in acl:
        return dict(acl)
    mask = 0
    for perm in group_class:
        mask |= perm
    return {**acl, (MASK, UNDEFINED_ID): mask}


def named(acl: Acl) -> list[Entry]:
    """The named user and group entries of ``acl``, users first, by id."""
    kinds = {USER: "user", GROUP: "group"}
    return [
        Entry(kinds[tag], qualifier, perm_text(perm))
        for (tag, qualifier), perm in sorted(acl.items())
        if tag in kinds
    ]


def named_entries(path: Path) -> list[Entry]:
    """The named entries of the access ACL of folder ``path`` (a share's top folder)."""
    with beneath.opened(beneath.open_root(path)) as fd:
        return named(_access(fd, os.fstat(fd)))


def set_root(path: Path, entries: list[Entry]) -> None:
    """Replace the whole ACL of folder ``path``: owner rwx, nobody else, plus ``entries``,
    the same as default ACL so new files and folders inherit it."""
    acl: Acl = {
        (USER_OBJ, UNDEFINED_ID): 7,
        (GROUP_OBJ, UNDEFINED_ID): 0,
        (OTHER, UNDEFINED_ID): 0,
        (MASK, UNDEFINED_ID): 7,
    }
    for e in entries:
        acl[(_TAGS[e.kind], e.qualifier)] = perm_bits(e.perms)
    with beneath.opened(beneath.open_root(path)) as fd:
        _write(fd, ACCESS, acl)
        _write(fd, DEFAULT, acl)


def modify_tree(path: Path, entries: list[Entry], removed: list[Entry]) -> None:
    """On ``path`` and every file and folder below it, add or change ``entries`` and drop
    ``removed``, in the access ACL and, on folders, the default ACL (``setfacl -R -x`` then
    ``-m``). On files the execute bit of a new entry is kept only if the file is executable
    for someone (``setfacl``'s ``X``), so documents do not become programs."""
    drop = [(_TAGS[e.kind], e.qualifier) for e in removed]
    put = [(_TAGS[e.kind], e.qualifier, perm_bits(e.perms)) for e in entries]

    def change(node: beneath.Node) -> None:
        is_dir = stat.S_ISDIR(node.st.st_mode)
        executable = is_dir or bool(node.st.st_mode & 0o111)
        before = _access(node.fd, node.st)
        after = dict(before)
        for key in drop:
            after.pop(key, None)
        for tag, qualifier, perm in put:
            after[(tag, qualifier)] = perm if executable else perm & ~1
        after = masked(after)
        if after != before:
            _write(node.fd, ACCESS, after)
        if not is_dir:
            return
        default_before = _default(node.fd)
        default = dict(default_before)
        for key in drop:
            default.pop(key, None)
        if put and not default:  # as setfacl: a new default ACL starts from the access ACL
            default = {k: v for k, v in after.items() if k[0] in (USER_OBJ, GROUP_OBJ, OTHER)}
        for tag, qualifier, perm in put:
            default[(tag, qualifier)] = perm
        default = masked(default)
        if default != default_before:
            _write(node.fd, DEFAULT, default)

    _each_file(path, change)


def set_owner_write(path: Path, uids: list[int], writable: bool) -> None:
    """Give or take write permission in the owner bits of every file and folder in ``path``
    (itself included) owned by one of ``uids`` (POSIX owners are not bound by the ACL's named
    entries). Only the owner's write bit changes, as with ``chmod u+w`` / ``u-w``."""
    if not uids:
        return
    owners = set(uids)

    def change(node: beneath.Node) -> None:
        if node.st.st_uid not in owners:
            return
        mode = stat.S_IMODE(node.st.st_mode)
        wanted = mode | stat.S_IWUSR if writable else mode & ~stat.S_IWUSR
        if wanted != mode:
            _call("chmod", node.fd, lambda p: os.chmod(p, wanted))

    _each_file(path, change)


def _each_file(path: Path, change: Callable[[beneath.Node], None]) -> None:
    """Call ``change`` for every regular file and folder in ``path`` (see the module)."""
    with beneath.opened(beneath.open_root(path)) as top:
        for node in beneath.walk(top, skip=frozenset({INTERNAL})):
            if stat.S_ISREG(node.st.st_mode) or stat.S_ISDIR(node.st.st_mode):
                change(node)


def _access(fd: int, st: os.stat_result) -> Acl:
    data = _read(fd, ACCESS)
    return decode(data) if data else from_mode(st.st_mode)


def _default(fd: int) -> Acl:
    data = _read(fd, DEFAULT)
    return decode(data) if data else {}


def _read(fd: int, attribute: str) -> bytes | None:
    """The attribute of the object open as ``fd``, None when it has none. The path is the
    ``/proc`` link of the descriptor: following it reaches exactly that object."""

    def get(proc: str) -> bytes | None:
        try:
            return os.getxattr(proc, attribute)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return None
            raise

    return _call(f"getxattr {attribute}", fd, get)


def _write(fd: int, attribute: str, acl: Acl) -> None:
    """Set (or, for an empty default ACL, remove) the attribute. Writing the access ACL also
    sets the mode bits from it; an ACL that says no more than the mode is dropped."""
    if attribute == DEFAULT and not acl:

        def remove(proc: str) -> None:
            try:
                os.removexattr(proc, attribute)
            except OSError as exc:
                if exc.errno != errno.ENODATA:  # there was none
                    raise

        _call(f"removexattr {attribute}", fd, remove)
        return
    data = encode(acl)
    _call(f"setxattr {attribute}", fd, lambda proc: os.setxattr(proc, attribute, data))


def _call(what: str, fd: int, action: Callable[[str], _T]) -> _T:
    """Run ``action`` on the object's ``/proc`` path; a failure becomes a
    :class:`CommandError` naming the call and the file, as a failed tool would."""
    proc = beneath.proc_path(fd)
    try:
        return action(proc)
    except OSError as exc:
        try:
            where = os.readlink(proc)
        except OSError:
            where = proc
        message = f"{where}: {exc.strerror or exc}"
        raise CommandError([*what.split(), where], exc.errno or 1, "", message) from None
