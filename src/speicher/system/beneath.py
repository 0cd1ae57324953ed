"""File operations that stay beneath a directory and never follow a symbolic link.

Speicher acts as root inside shares whose folders ordinary users can change at any moment: a
folder may be swapped for a symbolic link between a check and a use. So nothing here takes a
path string that the kernel re-resolves later. A root directory is opened once; everything
below it is reached relative to directory file descriptors, with ``openat2(2)``
(``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS``) or, where the kernel lacks
it, one ``O_NOFOLLOW`` component at a time. An object once opened is acted on through its file
descriptor or through ``/proc/self/fd/N``, which names exactly that object, whatever happens to
the names around it.

Errors are the ``OSError`` of the failing call: ``ELOOP`` for a symbolic link on the way,
``ENOTDIR`` for something that is not a folder, ``EXDEV`` for a path that would leave the root.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

_SYS_OPENAT2 = 437  # the same number on every architecture Linux has added it to
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2

_libc = ctypes.CDLL(None, use_errno=True)
_openat2: dict[str, bool] = {}  # "works": whether the kernel has it, once tried


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def proc_path(fd: int, name: str | None = None) -> str:
    """A path naming the object open as ``fd`` (and ``name`` in it, not followed if it is the
    last part), for tools and calls that take only paths."""
    base = f"/proc/self/fd/{fd}"
    return f"{base}/{_component(name)}" if name is not None else base


def open_root(path: Path | str) -> int:
    """Open a folder Speicher itself controls the way to (a share's or a snapshot's top
    folder); its last part must not be a symbolic link."""
    return os.open(path, _DIR_FLAGS)


def open_dir(root: int, rel: PurePosixPath | str) -> int:
    """Open folder ``rel`` beneath the folder open as ``root``, through real folders only.
    ``""`` or ``"."`` opens ``root`` itself again."""
    parts = _parts(rel)
    if not parts:
        return os.open(".", _DIR_FLAGS, dir_fd=root)
    works = _openat2.get("works")
    if works is not False:
        try:
            fd = _call_openat2(root, "/".join(parts), _DIR_FLAGS)
            _openat2["works"] = True
            return fd
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM) or works:
                raise
            _openat2["works"] = False  # an old kernel, or a sandbox that forbids it
    return open_dir_stepwise(root, parts)


def open_dir_stepwise(root: int, rel: PurePosixPath | str | list[str]) -> int:
    """The fallback of :func:`open_dir` for kernels without ``openat2``: one component at a
    time, each opened ``O_NOFOLLOW | O_DIRECTORY`` relative to the one before."""
    parts = rel if isinstance(rel, list) else _parts(rel)
    fd = os.open(".", _DIR_FLAGS, dir_fd=root)
    for part in parts:
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def open_entry(dir_fd: int, name: str) -> int:
    """An ``O_PATH`` descriptor of entry ``name`` itself (a symbolic link is not followed):
    enough to ``fstat`` it and to act on it through :func:`proc_path`, opening no file."""
    return os.open(_component(name), _PATH_FLAGS, dir_fd=dir_fd)


def lstat(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry's own status, or None when it does not exist."""
    try:
        return os.stat(_component(name), dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


_STATX_BTIME = 0x800
_AT_EMPTY_PATH = 0x1000
_STATX_SIZE = 256  # bytes of struct statx
_BTIME_AT = 80  # offset of stx_btime (struct statx_timestamp: s64 seconds, u32 nanoseconds)


def birth_time(fd: int) -> float | None:
    """When the file open as ``fd`` (an ``O_PATH`` descriptor will do) was made, in seconds
    since the epoch, from ``statx(2)``; None where the filesystem does not say (btrfs does)."""
    raw = _statx(fd, _STATX_BTIME)
    return _born(raw) if raw is not None else None


def _statx(fd: int, mask: int) -> bytes | None:
    """``struct statx`` of the object open as ``fd``; None where libc has no ``statx``."""
    statx = getattr(_libc, "statx", None)
    if statx is None:
        return None
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    if statx(fd, b"", _AT_EMPTY_PATH, mask, buf) != 0:
        return None
    return buf.raw


def _born(raw: bytes) -> float | None:
    if not int.from_bytes(raw[0:4], "little") & _STATX_BTIME:
        return None
    seconds = int.from_bytes(raw[_BTIME_AT : _BTIME_AT + 8], "little", signed=True)
    if seconds <= 0:  # said but not kept (some filesystems under containers)
        return None
    return seconds + int.from_bytes(raw[_BTIME_AT + 8 : _BTIME_AT + 12], "little") / 1e9


_STATX_TYPE_MODE_SIZE = 0x1 | 0x2 | 0x200
_MODE_AT, _SIZE_AT = 28, 40  # offsets of stx_mode (u16) and stx_size (u64)


@dataclass(frozen=True)
class EntryStatus:
    mode: int
    size: int
    born: float | None  # the birth time, where the filesystem keeps one (btrfs does)


def entry_status(root: int, rel: str) -> EntryStatus:
    """The type, size and birth time of entry ``rel`` beneath the folder open as ``root``,
    through real folders only and without following the entry itself, in as few calls as
    the kernel allows: one ``openat2`` (an ``O_PATH`` descriptor: no file is opened) and one
    ``statx``. For a path looked at thousands of times a second (the audit log's SMB
    lines)."""
    parts = _parts(rel)
    name = _component(parts[-1] if parts else "")
    fd = -1
    if _openat2.get("works") is not False:
        with contextlib.suppress(OSError):
            fd = _call_openat2(root, "/".join(parts), _PATH_FLAGS)
    if fd < 0:  # no openat2, or it refused: the careful way, which raises what it found
        with opened(open_dir(root, "/".join(parts[:-1]) or ".")) as folder:
            fd = open_entry(folder, name)
    try:
        raw = _statx(fd, _STATX_TYPE_MODE_SIZE | _STATX_BTIME)
        if raw is None:
            st = os.fstat(fd)
            return EntryStatus(st.st_mode, st.st_size, None)
        mode = int.from_bytes(raw[_MODE_AT : _MODE_AT + 2], "little")
        size = int.from_bytes(raw[_SIZE_AT : _SIZE_AT + 8], "little")
        return EntryStatus(mode, size, _born(raw))
    finally:
        os.close(fd)


def mkdir(dir_fd: int, name: str, mode: int = 0o700) -> None:
    """Make folder ``name`` in the folder open as ``dir_fd`` (``mkdirat`` never follows)."""
    os.mkdir(_component(name), mode, dir_fd=dir_fd)


def rename(
    src_dir: int,
    src: str,
    dst_dir: int,
    dst: str,
    *,
    exchange: bool = False,
    noreplace: bool = False,
) -> None:
    """Rename between two open folders. ``exchange`` swaps the two entries atomically (both
    must exist), ``noreplace`` fails with ``EEXIST`` instead of replacing ``dst``."""
    flags = (_RENAME_EXCHANGE if exchange else 0) | (_RENAME_NOREPLACE if noreplace else 0)
    if not flags:
        os.rename(_component(src), _component(dst), src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        return
    rc = _libc.renameat2(
        src_dir, os.fsencode(_component(src)), dst_dir, os.fsencode(_component(dst)), flags
    )
    if rc != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), src)


_SYNC_FILE_RANGE_WRITE = 2
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes from ``offset`` of the open file to disk, without
    waiting (``sync_file_range(SYNC_FILE_RANGE_WRITE)``): a long write then overlaps with its
    flush, and the ``fsync`` at its end has little left to do. A kernel without it: nothing."""
    _libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


@contextlib.contextmanager
def opened(fd: int) -> Iterator[int]:
    """Close ``fd`` at the end of the block."""
    try:
        yield fd
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Node:
    """One object met by :func:`walk`. ``fd`` is open on the object itself (a folder for
    reading, anything else ``O_PATH``) and valid only until the walk goes on; ``parent`` is
    the folder it is in (None for the top) and ``name`` its name there."""

    parent: int | None
    name: str
    fd: int
    st: os.stat_result
    depth: int


def walk(top: int, *, skip: frozenset[str] = frozenset(), post: bool = False) -> Iterator[Node]:
    """Every object in the folder open as ``top``, ``top`` included, on ``top``'s filesystem.

    Symbolic links are yielded as themselves and never followed; folders on another
    filesystem (a mount, a nested btrfs subvolume) are neither yielded nor entered, as with
    ``find -xdev``. A sub-folder is entered through the descriptor of the very object that was
    checked, so swapping it for a link mid-walk leads nowhere. ``skip`` names entries of
    ``top`` to leave out. Folders come before their contents, or after them with ``post``.
    One descriptor is open per level of depth, so the walk needs no recursion."""
    top_node = Node(None, "", top, os.fstat(top), 0)
    if not post:
        yield top_node
    stack: list[tuple[Node, list[str]]] = [(top_node, _names(top, skip))]
    try:
        while stack:
            node, names = stack[-1]
            if not names:
                stack.pop()
                try:
                    if post:
                        yield node
                finally:
                    _release(node.fd, top)
                continue
            child = _child(node.fd, names.pop(), top_node.st.st_dev, node.depth + 1)
            if child is None:
                continue
            if stat.S_ISDIR(child.st.st_mode):
                stack.append((child, _names_or_close(child.fd)))  # closed from the stack on
                if not post:
                    yield child
                continue
            try:
                yield child
            finally:
                os.close(child.fd)
    finally:
        for node, _ in stack:
            _release(node.fd, top)


def _release(fd: int, top: int) -> None:
    """Close a folder the walk opened (the caller's ``top`` is the caller's to close)."""
    if fd != top:
        os.close(fd)


def _child(dir_fd: int, name: str, dev: int, depth: int) -> Node | None:
    """Open entry ``name`` without following it; None if it vanished or is elsewhere."""
    try:
        fd = open_entry(dir_fd, name)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            if st.st_dev != dev:
                os.close(fd)
                return None
            # reopened through the O_PATH descriptor: the same folder that was checked
            folder = os.open(".", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = folder
    except BaseException:
        os.close(fd)
        raise
    return Node(dir_fd, name, fd, st, depth)


def _names(dir_fd: int, skip: frozenset[str] = frozenset()) -> list[str]:
    return [n for n in os.listdir(dir_fd) if n not in skip]


def _names_or_close(dir_fd: int) -> list[str]:
    try:
        return _names(dir_fd)
    except BaseException:
        os.close(dir_fd)
        raise


def _parts(rel: PurePosixPath | str) -> list[str]:
    text = str(rel)
    if text.startswith("/"):
        raise OSError(errno.EXDEV, "an absolute path leaves the folder", text)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EXDEV, "'..' leaves the folder", text)
    return parts


def _component(name: str) -> str:
    """``name`` must be one entry name: no slash, not ``.`` or ``..``."""
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise OSError(errno.EINVAL, "not a single file name", name)
    return name


_HOWS: dict[int, _OpenHow] = {}  # by flags: made once, only read by the kernel


def _call_openat2(dir_fd: int, path: str, flags: int) -> int:
    how = _HOWS.get(flags)
    if how is None:
        how = _HOWS[flags] = _OpenHow(
            flags=flags,
            mode=0,
            resolve=_RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
        )
    fd: int = _libc.syscall(
        _SYS_OPENAT2,
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return fd
