"""ShareFS: the one view of a share's files that every Python protocol goes through.

``ShareFS.open(user, share, protocol, address)`` decides access once, from the grants (the
same rule Samba's ``valid users``/``write list`` follow: any rw grant, direct or through a
group, gives rw; any grant gives ro; a disabled user, a user without file access, or a share
that is not ready gives nothing) and returns a :class:`ShareView`. Every operation of the view
works relative to a directory descriptor of the share opened once, resolving the rest with
:mod:`speicher.system.beneath` (``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``),
and acts on the last name with ``*at`` calls and ``O_NOFOLLOW``: no path string is joined and
re-resolved, so ``..``, absolute paths and symbolic links, also one swapped in mid-request,
lead nowhere outside.

Decisions, the same on every adapter (docs/files.md):

- Symbolic links inside a share are never followed and never shown (Samba is configured to
  agree: ``follow symlinks = no``); nor are FIFOs, sockets and device nodes. Only folders and
  regular files exist for the protocols.
- A regular file with more than one hard link is not served (it may be the same inode as a
  file outside the share); it is listed by no protocol of ours and refused with EACCES.
- New files and folders are made by root with Samba's modes (``create mask`` 0764,
  ``directory mask`` 0775), so the kernel applies the folder's default ACL exactly as for a
  file Samba makes, and then belong to the acting user and Speicher's primary group, as
  Samba's do. A file replaced by an upload keeps its owner, group, mode and ACL, as a file
  overwritten over SMB does.
- Whole-file writes are atomic and durable: a temp file ``.speicher-upload-*`` in the same
  folder (hidden from every protocol, Samba's ``veto files`` included), written, ``fsync``ed,
  renamed over the target, and the folder ``fsync``ed. An interrupted write removes its temp
  file; :meth:`ShareFS.remove_leftovers` removes what a crash left, at start. A share whose
  ``write_sync`` is ``standard`` skips the syncs (a replacement still ``fdatasync``s its bytes
  before the rename): its changes reach the disk with the pool's next commit.
- ``/.snapshots/@GMT-…/`` in every share shows the share's snapshots, read only.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from speicher.config import Settings
from speicher.db import Database, Grant, Share, User
from speicher.files import paths, seals
from speicher.files.errors import FsError, from_os
from speicher.files.events import FileEvents
from speicher.protocols.smb.render import CREATE_MASK, DIRECTORY_MASK
from speicher.system import attrs, beneath, files
from speicher.system.accounts import gid_of

Access = Literal["rw", "ro"]
FILE_MODE = int(CREATE_MASK, 8)
DIR_MODE = int(DIRECTORY_MASK, 8)
META_PREFIX = "user.speicher.meta."  # dead properties, object metadata: user xattrs
ACL_ACCESS = "system.posix_acl_access"
ACCESS_TABLES = frozenset({"users", "groups", "grants", "shares", "pools"})
MOUNT_SEEN = 1.0  # seconds ShareFS believes a pool it saw mounted still is
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CHUNK = 1024 * 1024
# an upload starts the disk writing every 8 MiB, so the fsync at its end waits for little:
# 1 GiB then took 218 MiB/s instead of 157 MiB/s onto btrfs over a loop device
WRITEBACK_STEP = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """A folder or regular file as every protocol sees it."""

    name: str
    is_dir: bool
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    mode: int
    uid: int
    gid: int

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def etag(self) -> str:
        """Changes whenever the content may have: inode, size and modification time."""
        return f"{self.inode:x}-{self.size:x}-{self.mtime_ns:x}"


@dataclass(frozen=True)
class Principal:
    """Who acts: a Speicher user with file access, and the Unix ids files get."""

    name: str
    uid: int
    gid: int


def _entry(name: str, st: os.stat_result) -> Entry:
    return Entry(
        name=name,
        is_dir=stat.S_ISDIR(st.st_mode),
        size=st.st_size if stat.S_ISREG(st.st_mode) else 0,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
    )


def _served(st: os.stat_result) -> bool:
    if stat.S_ISDIR(st.st_mode):
        return True
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


class ShareFS:
    """Opens views of shares for users; one per daemon."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: FileEvents | None = None,
        usage: Callable[[str, str], int] | None = None,
    ) -> None:
        """``usage(pool, share)``: the bytes a share takes, for :meth:`ShareView.space` of a
        share with a quota (the share service's figure from btrfs's qgroups)."""
        self.settings = settings
        self.db = db
        self.events = events or FileEvents()
        self.usage = usage
        self._quotas: dict[str, int | None] = {}  # share -> quota, as access() last read it
        self._durable: dict[str, bool] = {}  # share -> write_sync is "always" (access())
        self._recycles: dict[str, bool] = {}  # share -> has a recycle bin (access())
        self._audit_reads: dict[str, bool] = {}  # share -> its reads are audited (access())
        # (user, share, protocol) -> (generation of ACCESS_TABLES, principal, access, pool)
        self._access: dict[
            tuple[str, str, str | None], tuple[int, Principal | None, Access | None, str]
        ] = {}
        self._gid: int | None = None
        # (pool, share) -> the share's folder and its snapshots' folder
        self._places: dict[tuple[str, str], tuple[Path, Path]] = {}
        self._mounts: dict[str, float] = {}  # pool -> when it was last seen mounted

    # -- who may open what ---------------------------------------------------------------------

    def _primary_gid(self) -> int:
        if self._gid is None:
            self._gid = gid_of(self.settings.primary_group)
        return self._gid

    def access(
        self, user: str, share: str, protocol: str | None = None
    ) -> tuple[Principal | None, Access | None, str]:
        """The user (None if unknown, disabled or without file access), their access to the
        share (None: nothing, also when the share has ``protocol`` switched off) and the
        share's pool."""
        key = (user, share, protocol)
        now = self.db.generation_of(ACCESS_TABLES)
        cached = self._access.get(key)
        if cached is not None and cached[0] == now:
            return cached[1], cached[2], cached[3]
        principal: Principal | None = None
        access: Access | None = None
        pool = ""
        with self.db.session() as s:
            row = s.scalars(
                select(User).where(User.name == user).options(selectinload(User.groups))
            ).first()
            shared = s.scalars(
                select(Share)
                .where(Share.name == share)
                .options(selectinload(Share.grants), selectinload(Share.pool))
            ).first()
            usable = (
                row is not None
                and row.state == "ready"
                and row.enabled
                and row.file_access
                and row.uid is not None
            )
            if usable and row is not None and row.uid is not None:
                principal = Principal(row.name, row.uid, self._primary_gid())
            if principal is not None and row is not None and shared is not None:
                pool = shared.pool.name
                self._quotas[share] = shared.quota
                self._durable[share] = shared.write_sync != "standard"
                self._recycles[share] = bool(shared.smb_recycle)
                self._audit_reads[share] = bool(shared.audit_reads)
                if shared.state == "ready" and protocol_enabled(shared, protocol):
                    access = _grant_access(shared.grants, row.id, {g.id for g in row.groups})
                    if access is not None and shared.read_only:
                        access = "ro"
        if len(self._access) > 10_000:
            self._access.clear()
            self._quotas.clear()
            self._durable.clear()
            self._recycles.clear()
            self._audit_reads.clear()
        self._access[key] = (now, principal, access, pool)
        return principal, access, pool

    def knows(self, user: str, share: str, protocol: str | None = None) -> bool:
        """Whether :meth:`access` would answer from memory (no database round trip)."""
        cached = self._access.get((user, share, protocol))
        return cached is not None and cached[0] == self.db.generation_of(ACCESS_TABLES)

    def shares(self, user: str, protocol: str | None = None) -> list[tuple[str, Access]]:
        """The shares ``user`` may open (over ``protocol``), by name, with their access."""
        with self.db.session() as s:
            names = list(s.scalars(select(Share.name).where(Share.state == "ready")))
        found = []
        for name in sorted(names):
            _principal, access, _pool = self.access(user, name, protocol)
            if access is not None:
                found.append((name, access))
        return found

    def open(self, user: str, share: str, protocol: str, address: str | None = None) -> ShareView:
        """A view of ``share`` for ``user``; FsError ENOENT if the share does not exist for
        them (also when they have no grant: a user learns nothing of shares they cannot
        open), EIO if its pool is not mounted."""
        principal, access, pool = self.access(user, share, protocol)
        if principal is None or access is None:
            raise FsError(errno.ENOENT, f"no share named '{share}'")
        top, snapshots = self._place(pool, share)
        if not self._mounted(pool):
            raise FsError(errno.EIO, f"share '{share}' is unavailable: its pool is not mounted")
        try:
            fd = beneath.open_root(top)
        except OSError as exc:
            raise FsError(errno.EIO, f"share '{share}' is unavailable") from exc
        view = ShareView(self, principal, share, access, protocol, address, fd, snapshots)
        view.pool, view.quota = pool, self._quotas.get(share)
        view.durable = self._durable.get(share, True)
        view.recycles = self._recycles.get(share, False)
        view.audit_reads = self._audit_reads.get(share, False)
        return view

    def _place(self, pool: str, share: str) -> tuple[Path, Path]:
        place = self._places.get((pool, share))
        if place is None:
            pool_dir = self.settings.mount_root / pool
            place = (pool_dir / share, pool_dir / ".snapshots" / share)
            self._places[(pool, share)] = place
        return place

    def _mounted(self, pool: str) -> bool:
        """Whether the pool is mounted; a yes is believed for a second (a pool unmounted
        since leaves an empty folder, in which opening the share fails anyway)."""
        now = time.monotonic()
        if now - self._mounts.get(pool, -MOUNT_SEEN) < MOUNT_SEEN:
            return True
        if not _mounted(self.settings.mount_root, pool):
            self._mounts.pop(pool, None)
            return False
        self._mounts[pool] = now
        return True

    # -- at start ------------------------------------------------------------------------------

    def internal_of(self, top: Path, *names: str) -> InternalFolder | None:
        """Folder ``.speicher/<names...>`` of the share at ``top`` for the daemon's own chores
        (no user acts: removing S3's abandoned uploads), writable; None when it is not
        there."""
        try:
            fd = beneath.open_root(top)
        except OSError:
            return None
        try:
            return _internal(fd, names, False, True, True)
        except FsError:
            return None
        finally:
            os.close(fd)

    def remove_leftovers(self, top: Path) -> int:
        """Remove the upload temp files a crash left in the share at ``top``; how many."""
        removed = 0
        try:
            fd = beneath.open_root(top)
        except OSError:
            return 0
        with beneath.opened(fd):
            for node in beneath.walk(fd, skip=frozenset({paths.INTERNAL_DIR})):
                if node.parent is None or not node.name.startswith(paths.UPLOAD_PREFIX):
                    continue
                if stat.S_ISREG(node.st.st_mode):
                    with contextlib.suppress(OSError):
                        try:
                            os.unlink(node.name, dir_fd=node.parent)
                        except PermissionError:  # in a sealed folder (files/seals.py)
                            with seals.lifted(fd, node.parent):
                                os.unlink(node.name, dir_fd=node.parent)
                        removed += 1
        return removed


def _internal(
    top: int, names: tuple[str, ...], create: bool, writable: bool, durable: bool
) -> InternalFolder:
    fd = _private_folder(top, paths.INTERNAL_DIR, create)
    folder = InternalFolder(fd, writable, durable)
    for name in names:
        try:
            inner = folder.folder(name, create)
        finally:
            folder.close()
        folder = inner
    return folder


def _meta_items(target: int | str) -> dict[str, bytes]:
    """The metadata items (``META_PREFIX`` xattrs) of an open file or of a path."""
    out = {}
    try:
        for attr in os.listxattr(target):
            if attr.startswith(META_PREFIX):
                out[attr[len(META_PREFIX) :]] = os.getxattr(target, attr)
    except OSError as exc:
        raise from_os(exc) from None
    return out


def _mounted(mount_root: Path, pool: str) -> bool:
    """Whether the pool's folder is a mount: another device than the mount root, which is
    Speicher's own (``os.path.ismount`` resolves the parent's real path at every request)."""
    try:
        here = os.stat(mount_root / pool, follow_symlinks=False)
        above = os.stat(mount_root)
    except OSError:
        return False
    return stat.S_ISDIR(here.st_mode) and here.st_dev != above.st_dev


def protocol_enabled(share: Share, protocol: str | None) -> bool:
    """Whether ``share`` is offered over ``protocol`` (``webdav``, ``sftp``, ...): its
    ``<protocol>_enabled`` column, on where the column does not exist (yet)."""
    if protocol is None:
        return True
    return bool(getattr(share, f"{protocol}_enabled", True))


def _grant_access(grants: Iterable[Grant], user_id: int, group_ids: set[int]) -> Access | None:
    found: Access | None = None
    for g in grants:
        if g.user_id == user_id or (g.group_id is not None and g.group_id in group_ids):
            if g.access == "rw":
                return "rw"
            found = "ro"
    return found


class ReadFile:
    """An open regular file for reading; ``read`` and ``chunks`` never move a shared offset."""

    def __init__(self, fd: int, entry: Entry) -> None:
        self.fd = fd
        self.entry = entry

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def read_cached(self, offset: int, size: int) -> bytes | None:
        """The bytes at ``offset`` if they are in the page cache (``RWF_NOWAIT``); None when
        reading them would wait for the disk: then call :meth:`read` in a thread."""
        buf = bytearray(size)
        try:
            got = os.preadv(self.fd, [buf], offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:  # a filesystem without RWF_NOWAIT
                return None
            raise
        if got < size and offset + got < self.entry.size:  # a part is not cached
            return None
        return bytes(memoryview(buf)[:got])

    def get_meta(self) -> dict[str, bytes]:
        """The file's metadata, as :meth:`ShareView.get_meta` gives it, from the open file."""
        return _meta_items(self.fd)

    def chunks(self, start: int = 0, end: int | None = None, size: int = _CHUNK) -> Iterator[bytes]:
        """The bytes from ``start`` to ``end`` (exclusive; None: to the end)."""
        stop = self.entry.size if end is None else end
        offset = start
        while offset < stop:
            data = os.pread(self.fd, min(size, stop - offset), offset)
            if not data:
                return
            offset += len(data)
            yield data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> ReadFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


_IOV_MAX = 1024


def _write_all(fd: int, data: bytes | memoryview | list[bytes]) -> int:
    """Write all of ``data`` (a list of pieces with ``writev``); how many bytes."""
    if not isinstance(data, list):
        view = memoryview(data)
        size = len(view)
        while view:
            view = view[os.write(fd, view) :]
        return size
    size = sum(len(piece) for piece in data)
    rest: list[bytes | memoryview] = list(data)
    while rest:
        written = os.writev(fd, rest[:_IOV_MAX])
        while rest and written >= len(rest[0]):
            written -= len(rest[0])
            rest.pop(0)
        if written:
            rest[0] = memoryview(rest[0])[written:]
    return size


def _sealed(dir_fd: int) -> bool:
    try:
        return attrs.append_only(dir_fd)
    except OSError:  # a filesystem without attributes
        return False


class Upload:
    """A whole-file write in progress: bytes go to a hidden temp file beside the target;
    :meth:`commit` makes them the file at once, :meth:`abort` (or an error) leaves the old
    file as it was. Also computes the MD5 of the bytes in the same pass (S3 ETags) unless
    ``digest`` is off (WebDAV needs none; MD5 costs a second per GiB).
    ``keep_meta``: a replaced file's metadata (WebDAV's dead properties) stays with the new
    bytes, as a PUT over WebDAV keeps them; S3 replaces an object's metadata instead.

    SFTP writes at offsets (:meth:`write_at`), reads back, truncates and syncs the temp file
    of an open handle; the MD5 is then only the bytes' while they came in order
    (``sequential``)."""

    def __init__(
        self,
        view: ShareView,
        parts: tuple[str, ...],
        dir_fd: int,
        name: str,
        keep_meta: bool = False,
        digest: bool = True,
    ) -> None:
        self.view = view
        self.parts = parts
        self.dir_fd = dir_fd
        # the share's top, for the seal lock (the view may be closed before the commit)
        self.top_fd = -1
        self.name = name
        self.keep_meta = keep_meta
        self.temp = f"{paths.UPLOAD_PREFIX}{secrets.token_hex(8)}"
        self.size = 0
        self._flushed = 0  # bytes whose writeback has been started
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.digest = digest
        self.sequential = True
        self.done = False
        # in a sealed folder (files/seals.py) a temp name could be neither renamed nor
        # removed by a protocol: the bytes go to an unnamed file, linked in at the commit
        self.unnamed = _sealed(dir_fd)
        if self.unnamed:
            flags = os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC
            self.fd = os.open(".", flags, FILE_MODE, dir_fd=dir_fd)
        else:
            self.fd = os.open(
                self.temp,
                os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                FILE_MODE,
                dir_fd=dir_fd,
            )
        try:
            if view.seals:
                self.top_fd = os.dup(view.top_fd)
            os.fchown(self.fd, view.principal.uid, view.principal.gid)
        except BaseException:
            self._discard()
            if self.top_fd >= 0:
                os.close(self.top_fd)
            raise

    def write(self, data: bytes | memoryview | list[bytes]) -> None:
        """Append ``data``: bytes, or a list of pieces (written with one ``writev``, never
        joined: a large upload's body arrives in pieces of 64 KiB)."""
        try:
            size = _write_all(self.fd, data)
        except OSError as exc:
            self.abort()
            raise from_os(exc) from None
        if self.digest:
            for piece in data if isinstance(data, list) else (data,):
                self.md5.update(piece)
        self.size += size
        if self.size - self._flushed >= WRITEBACK_STEP:
            beneath.start_writeback(self.fd, self._flushed, self.size - self._flushed)
            self._flushed = self.size

    def copy_from(self, fd: int, offset: int, length: int) -> None:
        """Append ``length`` bytes of the file open as ``fd`` from ``offset`` inside the
        kernel (``copy_file_range``: on btrfs a reflink where the ranges are block-aligned, so
        assembling an S3 multipart upload from its parts copies no data). The MD5 does not
        cover such bytes (``sequential`` is then false). A failure aborts the upload."""
        try:
            _copy_range(fd, offset, self.fd, self.size, length)
        except OSError as exc:
            self.abort()
            raise from_os(exc) from None
        self.sequential = False
        self.size += length
        if self.size - self._flushed >= WRITEBACK_STEP:
            beneath.start_writeback(self.fd, self._flushed, self.size - self._flushed)
            self._flushed = self.size

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        """Write at ``offset`` (SFTP's writes carry one). A failed write keeps the upload
        open: the client decides (SFTP has no abort but the end of the session, which
        aborts)."""
        in_order = self.sequential and offset == self.size
        view = memoryview(data)
        at = offset
        try:
            while view:
                written = os.pwrite(self.fd, view, at)
                view, at = view[written:], at + written
        except OSError as exc:
            raise from_os(exc) from None
        if in_order and self.digest:
            self.md5.update(data)
        self.sequential = in_order
        self.size = max(self.size, at)

    def read(self, offset: int, size: int) -> bytes:
        """What was written so far (a handle opened to read and write)."""
        try:
            return os.pread(self.fd, size, offset)
        except OSError as exc:
            raise from_os(exc) from None

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise from_os(exc) from None
        if size == 0:
            self.md5 = hashlib.md5(usedforsecurity=False)
            self.sequential = True
        elif size != self.size:
            self.sequential = False
        self.size = size

    def fsync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise from_os(exc) from None

    def stat(self) -> Entry:
        """The file as it will be, named as the target."""
        try:
            return _entry(self.name, os.fstat(self.fd))
        except OSError as exc:
            raise from_os(exc) from None

    def commit(
        self, mtime_ns: int | None = None, before_rename: Callable[[], None] | None = None
    ) -> Entry:
        """Make the bytes the file (fsync, rename, fsync of the folder). ``before_rename``
        runs just before the rename (S3 versioning keeps the file being replaced there)."""
        try:
            existing = beneath.lstat(self.dir_fd, self.name)
            if existing is not None:
                if stat.S_ISDIR(existing.st_mode):
                    raise FsError(errno.EISDIR, "a folder of that name exists")
                if stat.S_ISREG(existing.st_mode) and existing.st_nlink == 1:
                    self._keep_owner(existing)
            if mtime_ns is not None:
                os.utime(self.fd, ns=(mtime_ns, mtime_ns))
            self._sync(existing is not None)
            if self.unnamed:
                self._link_in(existing is not None, before_rename)
            os.close(self.fd)
            self.fd = -1
            if not self.done:
                with self.view.changing(self.dir_fd, self.top_fd):
                    if before_rename is not None:
                        before_rename()
                    os.rename(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
                    self.done = True
            if self.view.durable:
                os.fsync(self.dir_fd)
            st = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except OSError as exc:
            self.abort()
            raise from_os(exc) from None
        except BaseException:
            self.abort()
            raise
        finally:
            self._close_dir()
        kind = "write" if existing is not None else "create"
        self.view.emit(kind, self.parts, self.size)
        return _entry(self.name, st)

    def _sync(self, replacing: bool) -> None:
        if self.view.durable:
            os.fsync(self.fd)
        elif replacing:
            # write_sync "standard": the new bytes reach the disk before the name does when
            # they replace a file, so a power cut leaves the old file or the new one (btrfs
            # does not order a rename after the data it names since Linux 3.17)
            os.fdatasync(self.fd)

    def _link_in(self, replacing: bool, before_rename: Callable[[], None] | None) -> None:
        """The unnamed file of a sealed folder gets its name: the target's where it is new
        (done), else a temp name for the rename (which only a view that lifts seals may
        do: for the others, the replaced file is locked in place)."""
        source = beneath.proc_path(self.fd)
        if not replacing:
            if before_rename is not None:
                before_rename()
            os.link(source, self.name, dst_dir_fd=self.dir_fd, follow_symlinks=True)
            self.done = True
            return
        if not self.view.seals:
            raise FsError(
                errno.EPERM, "the folder holds a locked object: nothing in it is replaced"
            )
        os.link(source, self.temp, dst_dir_fd=self.dir_fd, follow_symlinks=True)

    def set_meta(self, name: str, value: bytes) -> None:
        """A metadata item the new file gets (S3's stored headers), set before :meth:`commit`."""
        try:
            os.setxattr(self.fd, META_PREFIX + name, value)
        except OSError as exc:
            raise from_os(exc) from None

    def _keep_owner(self, old: os.stat_result) -> None:
        """A replaced file keeps who owns it and who may use it, as over SMB (and, with
        ``keep_meta``, its metadata)."""
        os.fchown(self.fd, old.st_uid, old.st_gid)
        os.fchmod(self.fd, stat.S_IMODE(old.st_mode))
        with contextlib.suppress(OSError):
            old_fd = os.open(self.name, _READ_FLAGS | os.O_PATH, dir_fd=self.dir_fd)
            try:
                proc = beneath.proc_path(old_fd)
                with contextlib.suppress(OSError):
                    os.setxattr(self.fd, ACL_ACCESS, os.getxattr(proc, ACL_ACCESS))
                if self.keep_meta:
                    for attr in os.listxattr(proc):
                        if attr.startswith(META_PREFIX):
                            os.setxattr(self.fd, attr, os.getxattr(proc, attr))
            finally:
                os.close(old_fd)

    def abort(self) -> None:
        """Throw the bytes away; the old file, if any, stays as it was."""
        if not self.done:
            self._discard()
        self._close_dir()

    def _discard(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError, FsError), self.view.changing(self.dir_fd, self.top_fd):
            os.unlink(self.temp, dir_fd=self.dir_fd)
        self.done = True

    def _close_dir(self) -> None:
        if self.dir_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.dir_fd)
            self.dir_fd = -1
        if self.top_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.top_fd)
            self.top_fd = -1


class WriteFile:
    """An existing (or new) file opened for writing in place, at offsets: what SFTP's resumed
    uploads (``reput``) and random-access writes need. Not atomic, as over SMB."""

    def __init__(self, view: ShareView, parts: tuple[str, ...], fd: int, created: bool) -> None:
        self.view = view
        self.parts = parts
        self.fd = fd
        self.created = created
        self.written = 0

    def write(self, offset: int, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.pwrite(self.fd, view, offset)
                view, offset = view[n:], offset + n
        except OSError as exc:
            raise from_os(exc) from None
        self.written += len(data)

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise from_os(exc) from None

    def stat(self) -> Entry:
        try:
            return _entry(self.parts[-1], os.fstat(self.fd))
        except OSError as exc:
            raise from_os(exc) from None

    def fsync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise from_os(exc) from None

    def set_mtime(self, mtime_ns: int) -> None:
        try:
            os.utime(self.fd, ns=(mtime_ns, mtime_ns))
        except OSError as exc:
            raise from_os(exc) from None

    def close(self) -> None:
        if self.fd < 0:
            return
        if self.view.durable:
            with contextlib.suppress(OSError):
                os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        self.view.emit("create" if self.created else "write", self.parts, self.written)


INTERNAL_DIR_MODE = 0o700
INTERNAL_FILE_MODE = 0o600
_INTERNAL_TEMP = ".tmp-"  # a file of Speicher's own being written, before its rename


def _internal_name(name: str) -> str:
    """One entry name of an internal folder: no slash, not ``.``/``..``, no temp name."""
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise FsError(errno.EINVAL, f"not an internal name: {name!r}")
    return name


def _private_folder(parent: int, name: str, create: bool) -> int:
    """Folder ``name`` of ``parent`` (made if ``create``): a real folder of root's alone, mode
    0700 and no ACL (an inherited default ACL would let the share's users in). Something else
    at that name (a user's folder made over a shell, a link) is refused, never entered."""
    made = False
    if create:
        try:
            beneath.mkdir(parent, name, INTERNAL_DIR_MODE)
            made = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise from_os(exc) from None
    try:
        fd = beneath.open_dir(parent, name)
    except OSError as exc:
        raise from_os(exc) from None
    try:
        st = os.fstat(fd)
        if st.st_uid != 0:
            raise FsError(errno.EACCES, f"the internal folder {name!r} is not Speicher's own")
        if made:
            for attribute in ("system.posix_acl_default", ACL_ACCESS):
                with contextlib.suppress(OSError):
                    os.removexattr(fd, attribute)
            os.fchmod(fd, INTERNAL_DIR_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


class InternalFolder:
    """A folder of Speicher's own inside a share, under ``.speicher/`` (S3's multipart parts
    now; versions and locks later): invisible to every protocol, reached from the share's top
    descriptor with the same beneath-only, no-follow resolution as everything else, and
    written as root, folders 0700 and files 0600 without ACLs, so no user of the share reads
    or changes it. Files are written whole and atomically (a temp file, then a rename), with
    the share's durability (``durable``: fsync before the rename and of the folder after).
    Nothing here emits file events: these are not the users' files."""

    def __init__(self, fd: int, writable: bool, durable: bool) -> None:
        self.fd = fd
        self.writable = writable
        self.durable = durable

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> InternalFolder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _check_writable(self) -> None:
        if not self.writable:
            raise FsError(errno.EACCES, "read-only access to this share")

    def folder(self, name: str, create: bool = False) -> InternalFolder:
        """Sub-folder ``name`` (made if ``create``); ENOENT when it is not there."""
        if create:
            self._check_writable()
        fd = _private_folder(self.fd, _internal_name(name), create)
        if create and self.durable:
            with contextlib.suppress(OSError):
                os.fsync(self.fd)
        return InternalFolder(fd, self.writable, self.durable)

    def names(self) -> builtins.list[str]:
        """The entries, sorted, without files still being written."""
        try:
            # from the start, and with what was made since the folder was opened: btrfs
            # lists only the entries a descriptor's last seek saw (Linux 6.5 and later)
            os.lseek(self.fd, 0, os.SEEK_SET)
            return sorted(n for n in os.listdir(self.fd) if not n.startswith(_INTERNAL_TEMP))
        except OSError as exc:
            raise from_os(exc) from None

    def stat(self, name: str | None = None) -> os.stat_result:
        """The folder's own status, or entry ``name``'s (not followed)."""
        try:
            if name is None:
                return os.fstat(self.fd)
            return os.stat(_internal_name(name), dir_fd=self.fd, follow_symlinks=False)
        except OSError as exc:
            raise from_os(exc) from None

    def open_read(self, name: str) -> ReadFile:
        """A regular file of the folder, open for reading (ENOENT for anything else)."""
        try:
            fd = os.open(_internal_name(name), _READ_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise from_os(exc) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise FsError(errno.ENOENT, "no such file")
        return ReadFile(fd, _entry(name, st))

    def read(self, name: str, limit: int = 1024 * 1024) -> bytes:
        """A small file's bytes (at most ``limit``)."""
        with self.open_read(name) as file:
            return file.read(0, limit)

    def get_attr(self, fd: int, name: str) -> bytes | None:
        """Metadata item ``name`` of a file of this folder open as ``fd`` (None: not set)."""
        try:
            return os.getxattr(fd, META_PREFIX + name)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return None
            raise from_os(exc) from None

    def create(self) -> InternalFile:
        """A new file being written; :meth:`InternalFile.publish` gives it its name."""
        self._check_writable()
        return InternalFile(self)

    def write(self, name: str, data: bytes) -> None:
        """File ``name`` with ``data``, atomically (a reader sees the old bytes or the new)."""
        with self.create() as file:
            file.write(data)
            file.publish(name)

    def remove(self, name: str) -> None:
        """Delete file ``name`` (ENOENT when it is not there)."""
        self._check_writable()
        try:
            os.unlink(_internal_name(name), dir_fd=self.fd)
        except OSError as exc:
            raise from_os(exc) from None

    def remove_tree(self, name: str) -> None:
        """Delete entry ``name`` with everything in it; nothing when it is not there."""
        self._check_writable()
        try:
            files.remove_tree(self.fd, _internal_name(name))
            if self.durable:
                os.fsync(self.fd)
        except OSError as exc:
            raise from_os(exc) from None

    def set_immutable(self, name: str, on: bool) -> None:
        """Set or lift the immutable attribute of file ``name`` (S3 Object Lock)."""
        try:
            attrs.set_immutable_at(self.fd, _internal_name(name), on)
        except OSError as exc:
            raise from_os(exc) from None

    def set_attr_of(self, name: str, item: str, value: bytes) -> None:
        """Metadata item ``item`` of the existing file ``name``."""
        self._check_writable()
        try:
            fd = os.open(_internal_name(name), _READ_FLAGS, dir_fd=self.fd)
            try:
                os.setxattr(fd, META_PREFIX + item, value)
            finally:
                os.close(fd)
        except OSError as exc:
            raise from_os(exc) from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """This folder locked (``flock``) against other holders of its lock in this daemon
        for the block: one completion or abort of an upload at a time."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


class InternalFile:
    """A new file of an :class:`InternalFolder` being written: root's, 0600, under a temp
    name until :meth:`publish` renames it (atomically replacing a file of that name). Leaving
    the ``with`` block without publishing removes it. Writes that fail (a full quota) remove
    it too, so no partial file stays."""

    def __init__(self, folder: InternalFolder) -> None:
        self.folder = folder
        self.temp = f"{_INTERNAL_TEMP}{secrets.token_hex(8)}"
        self.size = 0
        self._flushed = 0
        self.done = False
        try:
            self.fd = os.open(
                self.temp,
                os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                INTERNAL_FILE_MODE,
                dir_fd=folder.fd,
            )
        except OSError as exc:
            raise from_os(exc) from None

    def __enter__(self) -> InternalFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()

    def write(self, data: bytes | memoryview | list[bytes]) -> None:
        """Append ``data``: bytes, or a list of pieces (one ``writev``)."""
        try:
            size = _write_all(self.fd, data)
        except OSError as exc:
            self.discard()
            raise from_os(exc) from None
        self.size += size
        self._writeback()

    def copy_from(self, fd: int, offset: int, length: int) -> None:
        """Append ``length`` bytes of the file open as ``fd`` from ``offset``, inside the
        kernel (``copy_file_range``: btrfs shares the extents where the ranges are aligned)."""
        try:
            _copy_range(fd, offset, self.fd, self.size, length)
        except OSError as exc:
            self.discard()
            raise from_os(exc) from None
        self.size += length
        self._writeback()

    def _writeback(self) -> None:
        if self.size - self._flushed >= WRITEBACK_STEP:
            beneath.start_writeback(self.fd, self._flushed, self.size - self._flushed)
            self._flushed = self.size

    def read(self, offset: int, size: int) -> bytes:
        try:
            return os.pread(self.fd, size, offset)
        except OSError as exc:
            raise from_os(exc) from None

    def set_attr(self, name: str, value: bytes) -> None:
        """A metadata item of the file (user xattr), published with it."""
        try:
            os.setxattr(self.fd, META_PREFIX + name, value)
        except OSError as exc:
            self.discard()
            raise from_os(exc) from None

    def publish(self, name: str) -> None:
        """Give the file its name (replacing one of that name), durably if the share is."""
        dir_fd = self.folder.fd
        try:
            if self.folder.durable:
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.rename(self.temp, _internal_name(name), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            self.done = True
            if self.folder.durable:
                os.fsync(dir_fd)
        except OSError as exc:
            self.discard()
            raise from_os(exc) from None

    def discard(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        if not self.done:
            with contextlib.suppress(OSError):
                os.unlink(self.temp, dir_fd=self.folder.fd)
            self.done = True


def _copy_range(src: int, src_offset: int, dst: int, dst_offset: int, length: int) -> None:
    """``length`` bytes from ``src`` to ``dst`` with ``copy_file_range``: no byte through
    Python, and a reflink on btrfs where the ranges are block-aligned (the kernel copies the
    rest itself)."""
    in_kernel = True
    while length > 0:
        step = min(length, 1 << 30)
        if in_kernel:
            try:
                copied = os.copy_file_range(src, dst, step, src_offset, dst_offset)
            except OSError as exc:
                # across filesystems (another pool), or a filesystem that cannot: by hand
                if exc.errno not in (errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                in_kernel = False
                continue
        else:
            data = os.pread(src, min(step, _CHUNK), src_offset)
            copied = len(data)
            view = memoryview(data)
            at = dst_offset
            while view:
                written = os.pwrite(dst, view, at)
                view, at = view[written:], at + written
        if copied == 0:
            raise OSError(errno.EIO, "the source ended before the range did")
        src_offset += copied
        dst_offset += copied
        length -= copied


class ShareView:
    """One user's view of one share. Paths are relative to the share's top (``"/a/b"``)."""

    def __init__(
        self,
        fs: ShareFS,
        principal: Principal,
        share: str,
        access: Access,
        protocol: str,
        address: str | None,
        top_fd: int,
        snapshots: Path,
    ) -> None:
        self.fs = fs
        self.principal = principal
        self.share = share
        self.access = access
        self.protocol = protocol
        self.address = address
        self.top_fd = top_fd
        self.snapshots = snapshots
        self.pool = ""
        self.quota: int | None = None
        # the share's write_sync: True ("always") syncs every change before it is answered
        self.durable = True
        self.recycles = False  # the share has a recycle bin (SMB's, at RECYCLE_DIR)
        self.audit_reads = False  # opening a file to read is a file event ("read")
        # S3 with Object Lock: this view lifts the seals of the folders it changes (seals.py)
        self.seals = False
        self._lock = threading.Lock()

    @property
    def writable(self) -> bool:
        return self.access == "rw"

    def close(self) -> None:
        with self._lock:
            if self.top_fd >= 0:
                os.close(self.top_fd)
                self.top_fd = -1

    def __enter__(self) -> ShareView:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def emit(self, kind: str, parts: tuple[str, ...], size: int = 0, target: str = "") -> None:
        self.fs.events.emit(
            kind,  # type: ignore[arg-type]
            self.principal.name,
            self.protocol,
            self.address,
            self.share,
            paths.display(parts),
            size,
            target,
        )

    # -- resolving -----------------------------------------------------------------------------

    def _snapshot(self, parts: tuple[str, ...]) -> tuple[int, tuple[str, ...]] | None:
        """For a path under ``/.snapshots``: (a descriptor of the root it is in, the rest).
        The top ``/.snapshots`` itself is answered by the callers."""
        if not parts or parts[0] != paths.SNAPSHOTS_DIR or len(parts) < 2:
            return None
        name = parts[1]
        if not name.startswith("@GMT-") or "/" in name:
            raise FsError(errno.ENOENT, "no such snapshot")
        try:
            root = beneath.open_root(self.snapshots)
        except OSError:
            raise FsError(errno.ENOENT, "no such snapshot") from None
        try:
            fd = beneath.open_dir(root, name)
        except OSError:
            raise FsError(errno.ENOENT, "no such snapshot") from None
        finally:
            os.close(root)
        return fd, parts[2:]

    @contextlib.contextmanager
    def _parent(self, parts: tuple[str, ...], write: bool = False) -> Iterator[tuple[int, str]]:
        """The folder that holds the last name (open), and the name."""
        if not parts:
            raise FsError(errno.EACCES, "the share's top folder itself")
        if parts[0] == paths.SNAPSHOTS_DIR:
            if write:
                raise FsError(errno.EROFS, "snapshots are read only")
            snap = self._snapshot(parts)
            if snap is None or not snap[1]:
                raise FsError(errno.EACCES, "the snapshot folder itself")
            root, rest = snap
            try:
                fd = beneath.open_dir(root, "/".join(rest[:-1]))
            except OSError as exc:
                raise from_os(exc) from None
            finally:
                os.close(root)
            with beneath.opened(fd):
                yield fd, rest[-1]
            return
        if write and not self.writable:
            raise FsError(errno.EACCES, "read-only access to this share")
        fd = self._open_dir(parts[:-1])
        with beneath.opened(fd), self.changing(fd) if write else contextlib.nullcontext():
            yield fd, parts[-1]

    def changing(self, dir_fd: int, top_fd: int = -1) -> contextlib.AbstractContextManager[None]:
        """The folder open as ``dir_fd`` changeable for the block: for a view that
        :attr:`seals`, its seal is lifted meanwhile (:func:`seals.lifted`; ``top_fd``: the
        share's top, where the view may be closed already)."""
        if not self.seals:
            return contextlib.nullcontext()
        try:
            return seals.lifted(top_fd if top_fd >= 0 else self.top_fd, dir_fd)
        except OSError as exc:
            raise from_os(exc) from None

    @contextlib.contextmanager
    def _folder(self, parts: tuple[str, ...]) -> Iterator[int]:
        """The folder ``parts`` itself, open."""
        if parts and parts[0] == paths.SNAPSHOTS_DIR:
            snap = self._snapshot(parts)
            if snap is None:
                raise FsError(errno.ENOTDIR, "the snapshot list is no folder to open")
            root, rest = snap
            try:
                fd = beneath.open_dir(root, "/".join(rest))
            except OSError as exc:
                raise from_os(exc) from None
            finally:
                os.close(root)
        else:
            fd = self._open_dir(parts)
        with beneath.opened(fd):
            yield fd

    def _open_dir(self, parts: tuple[str, ...]) -> int:
        """Folder ``parts`` of the share, open; a link on the way is ENOENT (it is not there
        for the protocols), a file ENOTDIR."""
        try:
            return beneath.open_dir(self.top_fd, "/".join(parts))
        except OSError as exc:
            if exc.errno == errno.ENOTDIR and parts:
                for end in range(1, len(parts) + 1):
                    self.stat("/".join(parts[:end]))  # raises ENOENT for a link
            raise from_os(exc) from None

    # -- reading -------------------------------------------------------------------------------

    def stat(self, path: str | bytes) -> Entry:
        parts = paths.parse(path)
        if not parts:
            return _entry("", os.fstat(self.top_fd))
        if parts == (paths.SNAPSHOTS_DIR,):
            st = os.fstat(self.top_fd)
            return _entry(paths.SNAPSHOTS_DIR, st)
        if parts[0] == paths.SNAPSHOTS_DIR and len(parts) == 2:
            with self._folder(parts) as fd:
                return _entry(parts[1], os.fstat(fd))
        with self._parent(parts) as (fd, name):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                raise from_os(exc) from None
        if not _served(st):
            raise FsError(
                errno.ENOENT if not stat.S_ISREG(st.st_mode) else errno.EACCES,
                "not served: a link or special file",
            )
        return _entry(name, st)

    def list(self, path: str | bytes = "") -> builtins.list[Entry]:
        """The folder's entries, sorted by their UTF-8 bytes (S3's order)."""
        parts = paths.parse(path)
        if parts == (paths.SNAPSHOTS_DIR,):
            return self._list_snapshots()
        with self._folder(parts) as fd:
            out = []
            try:
                names = os.listdir(fd)
            except OSError as exc:
                raise from_os(exc) from None
            top = not parts
            for name in names:
                if not paths.visible(name, top):
                    continue
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                if _served(st):
                    out.append(_entry(name, st))
        out.sort(key=lambda e: e.name.encode("utf-8", "surrogateescape"))
        return out

    def _list_snapshots(self) -> builtins.list[Entry]:
        try:
            fd = beneath.open_root(self.snapshots)
        except OSError:
            return []
        out = []
        with beneath.opened(fd):
            for name in sorted(os.listdir(fd)):
                if name.startswith("@GMT-"):
                    with contextlib.suppress(OSError):
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        if stat.S_ISDIR(st.st_mode):
                            out.append(_entry(name, st))
        return out

    def versions(
        self, path: str | bytes, before: str | None = None, limit: int | None = None
    ) -> builtins.list[tuple[str, Entry]]:
        """Earlier states of the file ``path`` in the share's snapshots, newest first: each
        snapshot's name (``@GMT-...``) and the file as it was there. A state like the one
        after it (same size and time) is one version, not two; the current state is none.
        ``before``: only snapshots older than that one (the next page after it); ``limit``:
        at most that many (a share with 10,000 snapshots is read a page at a time)."""
        parts = paths.parse(path)
        if not parts or parts[0] == paths.SNAPSHOTS_DIR:
            raise FsError(errno.EINVAL, "versions are of a file in the share")
        rel = "/".join(parts)
        later = self._state(rel if before is None else f"{paths.SNAPSHOTS_DIR}/{before}/{rel}")
        if before is None and later is not None and later.is_dir:
            raise FsError(errno.EISDIR, "a folder has no versions; open its files")
        found: builtins.list[tuple[str, Entry]] = []
        for snap in reversed(self._list_snapshots()):
            if before is not None and snap.name >= before:
                continue
            then = self._state(f"{paths.SNAPSHOTS_DIR}/{snap.name}/{rel}")
            if then is None or then.is_dir:
                continue
            if later is not None and (then.size, then.mtime_ns) == (later.size, later.mtime_ns):
                continue
            found.append((snap.name, then))
            later = then
            if limit is not None and len(found) >= limit:
                break
        return found

    def _state(self, rel: str) -> Entry | None:
        """``rel`` as it is (None: not there, e.g. deleted since, or not in a snapshot)."""
        try:
            return self.stat(rel)
        except FsError as exc:
            if exc.code not in (errno.ENOENT, errno.ENOTDIR):
                raise
            return None

    def restore_version(self, snapshot: str, path: str | bytes) -> Entry:
        """Make ``path`` the file it was in ``snapshot`` again: a new version of it, written
        as every upload is (atomic, the share's sync, a ``write`` event); the blocks are
        shared with the snapshot's where btrfs can (``copy_file_range``)."""
        parts = paths.parse(path)
        if not snapshot.startswith("@GMT-") or "/" in snapshot:
            raise FsError(errno.EINVAL, "not a snapshot's name")
        with self.open_read(f"{paths.SNAPSHOTS_DIR}/{snapshot}/{'/'.join(parts)}") as old:
            upload = self.upload("/".join(parts), keep_meta=False, digest=False)
            try:
                upload.copy_from(old.fd, 0, old.entry.size)
                return upload.commit(mtime_ns=old.entry.mtime_ns)
            except BaseException:
                upload.abort()
                raise

    def open_read(self, path: str | bytes) -> ReadFile:
        parts = paths.parse(path)
        with self._parent(parts) as (dir_fd, name):
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise from_os(exc) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise FsError(errno.EISDIR, "it is a folder")
            if not _served(st):
                raise FsError(errno.EACCES, "not served: a hard-linked or special file")
        except BaseException:
            os.close(fd)
            raise
        if self.audit_reads:
            self.emit("read", parts, st.st_size)
        return ReadFile(fd, _entry(name, st))

    # -- writing -------------------------------------------------------------------------------

    def upload(self, path: str | bytes, keep_meta: bool = False, digest: bool = True) -> Upload:
        """Start an atomic whole-file write of ``path`` (its folder must exist);
        ``keep_meta`` and ``digest``: see :class:`Upload`."""
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, name):
            paths.check_new_name(name)
            kept = os.dup(dir_fd)
        try:
            return Upload(self, parts, kept, name, keep_meta, digest)
        except OSError as exc:
            os.close(kept)
            raise from_os(exc) from None

    def write(
        self, path: str | bytes, chunks: Iterable[bytes], mtime_ns: int | None = None
    ) -> Entry:
        """Write a whole file atomically from ``chunks``."""
        upload = self.upload(path)
        try:
            for chunk in chunks:
                upload.write(chunk)
        except BaseException:
            upload.abort()
            raise
        return upload.commit(mtime_ns)

    def open_write(self, path: str | bytes, create: bool, exclusive: bool = False) -> WriteFile:
        """Open a file to write in place (created if ``create``; EEXIST if ``exclusive`` and
        it exists)."""
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, name):
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            created = False
            try:
                fd = os.open(name, flags, dir_fd=dir_fd)
            except FileNotFoundError:
                if not create:
                    raise FsError(errno.ENOENT, "no such file or folder") from None
                paths.check_new_name(name)
                try:
                    fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, FILE_MODE, dir_fd=dir_fd)
                except OSError as exc:
                    raise from_os(exc) from None
                created = True
            except OSError as exc:
                raise from_os(exc) from None
            try:
                st = os.fstat(fd)
                if exclusive and not created:
                    raise FsError(errno.EEXIST, "it exists already")
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    raise FsError(errno.EACCES, "not served: a hard-linked or special file")
                if created:
                    os.fchown(fd, self.principal.uid, self.principal.gid)
            except BaseException:
                os.close(fd)
                raise
        return WriteFile(self, parts, fd, created)

    def mkdir(self, path: str | bytes) -> Entry:
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, name):
            paths.check_new_name(name)
            try:
                os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    os.fchown(fd, self.principal.uid, self.principal.gid)
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                if self.durable:
                    os.fsync(dir_fd)
            except OSError as exc:
                raise from_os(exc) from None
        self.emit("mkdir", parts)
        return _entry(name, st)

    def rmdir(self, path: str | bytes) -> None:
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, name):
            try:
                try:
                    os.rmdir(name, dir_fd=dir_fd)
                except PermissionError:
                    if not self.seals or not self._unseal_empty(dir_fd, name):
                        raise
                    os.rmdir(name, dir_fd=dir_fd)
            except OSError as exc:
                raise from_os(exc) from None
        self.emit("rmdir", parts)

    def recycle(self, path: str | bytes) -> str:
        """Move a file or folder into the share's recycle bin (``#recycle``, the tree kept, as
        Samba's vfs_recycle does; a name already there gets `` (2)``...), its time set to now so
        the purge counts from the deletion. Where the share has no recycle bin: deleted. The
        path it went to (empty: deleted)."""
        parts = paths.parse(path)
        if not parts or parts[0] == paths.SNAPSHOTS_DIR:
            raise FsError(errno.EROFS if parts else errno.EACCES, "not in the live share")
        rel = "/".join(parts)
        if not self.recycles or parts[0] == paths.RECYCLE_DIR:
            self._remove(rel)
            return ""
        folder = ""
        for name in (paths.RECYCLE_DIR, *parts[:-1]):
            folder = f"{folder}/{name}" if folder else name
            try:
                self.mkdir(folder)
            except FsError as exc:
                if exc.code != errno.EEXIST:
                    raise
        stem, dot, ext = parts[-1].rpartition(".")
        if not stem:
            stem, dot, ext = parts[-1], "", ""
        target = f"{folder}/{parts[-1]}"
        for number in range(2, 1000):
            try:
                self.rename(rel, target, overwrite=False)
                break
            except FsError as exc:
                if exc.code != errno.EEXIST:
                    raise
                target = f"{folder}/{stem} ({number}){dot}{ext}"
        else:
            raise FsError(errno.EEXIST, "the recycle bin holds too many of that name")
        now = time.time_ns()
        self.set_mtime(target, now)
        return target

    def _remove(self, rel: str) -> None:
        """Delete a file, or a folder with everything in it (the first failure raised)."""
        if self.stat(rel).is_dir:
            failed = self.delete_tree(rel)
            if failed:
                raise failed[0][1]
        else:
            self.delete(rel)

    def delete(self, path: str | bytes) -> None:
        """Delete a file (not a folder: EISDIR)."""
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, name):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    raise FsError(errno.EISDIR, "it is a folder")
                if not _served(st):
                    raise FsError(errno.ENOENT, "no such file or folder")
                os.unlink(name, dir_fd=dir_fd)
            except OSError as exc:
                raise from_os(exc) from None
        self.emit("delete", parts)

    def delete_tree(self, path: str | bytes) -> builtins.list[tuple[str, FsError]]:
        """Delete a file, or a folder with everything in it; what could not be deleted, with
        why (WebDAV answers those in a multistatus). A folder that keeps something is not
        reported itself, only what it keeps. Without recursion: a share may hold folders
        thousands of levels deep."""
        parts = paths.parse(path)
        if not parts:
            raise FsError(errno.EACCES, "the share's top folder cannot be deleted")
        entry = self.stat(path)
        if not entry.is_dir:
            self.delete(path)
            return []
        failures: builtins.list[tuple[str, FsError]] = []
        kept: set[tuple[str, ...]] = set()  # folders something in them could not be deleted
        stack: builtins.list[tuple[tuple[str, ...], bool]] = [(parts, False)]
        while stack:
            folder, emptied = stack.pop()
            if emptied:  # everything below was dealt with: now the folder itself
                if folder in kept:
                    kept.add(folder[:-1])
                    continue
                try:
                    self.rmdir("/".join(folder))
                except FsError as exc:
                    failures.append((paths.display(folder), exc))
                    kept.add(folder[:-1])
                continue
            stack.append((folder, True))
            try:
                children = self.list("/".join(folder))
            except FsError as exc:
                failures.append((paths.display(folder), exc))
                stack.pop()
                kept.add(folder[:-1])
                continue
            for child in children:
                sub = (*folder, child.name)
                if child.is_dir:
                    stack.append((sub, False))
                    continue
                try:
                    self.delete("/".join(sub))
                except FsError as exc:
                    failures.append((paths.display(sub), exc))
                    kept.add(folder)
        return failures

    def rename(self, src: str | bytes, dst: str | bytes, overwrite: bool = True) -> None:
        """Move ``src`` to ``dst`` in the same share. Without ``overwrite`` an existing
        ``dst`` is EEXIST; with it, a file replaces a file and a folder an empty folder."""
        src_parts, dst_parts = paths.parse(src), paths.parse(dst)
        if dst_parts[: len(src_parts)] == src_parts:
            raise FsError(errno.EINVAL, "a folder cannot move into itself")
        with (
            self._parent(src_parts, write=True) as (src_fd, src_name),
            self._parent(dst_parts, write=True) as (dst_fd, dst_name),
        ):
            paths.check_new_name(dst_name)
            try:
                st = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
                if not _served(st):
                    raise FsError(errno.ENOENT, "no such file or folder")
                beneath.rename(src_fd, src_name, dst_fd, dst_name, noreplace=not overwrite)
                if self.durable:
                    os.fsync(dst_fd)
                    if src_fd != dst_fd:
                        os.fsync(src_fd)
            except OSError as exc:
                raise from_os(exc) from None
        self.emit("rename", src_parts, target=paths.display(dst_parts))

    def copy(self, src: str | bytes, dst: str | bytes) -> builtins.list[tuple[str, FsError]]:
        """Copy a file, or a folder and everything in it, to ``dst`` (which must not exist;
        the caller removes an old one). Files are copied atomically each, as new files of
        the acting user, with their metadata. Without recursion, as :meth:`delete_tree`."""
        src_parts, dst_parts = paths.parse(src), paths.parse(dst)
        if dst_parts[: len(src_parts)] == src_parts:
            raise FsError(errno.EINVAL, "a folder cannot be copied into itself")
        entry = self.stat(src)
        if not entry.is_dir:
            self._copy_file(src_parts, dst_parts)
            return []
        self.mkdir(dst)
        self._copy_meta(src, dst)
        failures: builtins.list[tuple[str, FsError]] = []
        stack = [(src_parts, dst_parts)]
        while stack:
            from_parts, to_parts = stack.pop()
            try:
                children = self.list("/".join(from_parts))
            except FsError as exc:
                failures.append((paths.display(to_parts), exc))
                continue
            for child in children:
                source, target = (*from_parts, child.name), (*to_parts, child.name)
                try:
                    if child.is_dir:
                        self.mkdir("/".join(target))
                        self._copy_meta("/".join(source), "/".join(target))
                        stack.append((source, target))
                    else:
                        self._copy_file(source, target)
                except FsError as exc:
                    failures.append((paths.display(target), exc))
        return failures

    def _copy_file(self, source: tuple[str, ...], target: tuple[str, ...]) -> None:
        with self.open_read("/".join(source)) as f:
            self.write("/".join(target), f.chunks(), mtime_ns=None)
        self._copy_meta("/".join(source), "/".join(target))

    def _copy_meta(self, src: str | bytes, dst: str | bytes) -> None:
        """A copy keeps the metadata (dead properties, object metadata) of its source."""
        for name, value in self.get_meta(src).items():
            self.set_meta(dst, name, value, emit=False)

    def set_mtime(self, path: str | bytes, mtime_ns: int) -> None:
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, name):
            try:
                os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
            except OSError as exc:
                raise from_os(exc) from None

    # -- metadata (dead properties, object metadata) --------------------------------------

    def get_meta(self, path: str | bytes) -> dict[str, bytes]:
        with self._opened_path(path) as fd:
            return _meta_items(beneath.proc_path(fd))

    def set_meta(
        self, path: str | bytes, name: str, value: bytes | None, emit: bool = True
    ) -> None:
        """Set (``None``: remove) one metadata item; ``emit``: record a ``meta`` event."""
        if not self.writable:
            raise FsError(errno.EACCES, "read-only access to this share")
        parts = paths.parse(path)
        if parts and parts[0] == paths.SNAPSHOTS_DIR:
            raise FsError(errno.EROFS, "snapshots are read only")
        if "\x00" in name or len(META_PREFIX + name) > 255:
            raise FsError(errno.EINVAL, "invalid property name")
        with self._opened_path(path) as fd:
            proc = beneath.proc_path(fd)
            try:
                if value is None:
                    with contextlib.suppress(OSError):
                        os.removexattr(proc, META_PREFIX + name)
                else:
                    os.setxattr(proc, META_PREFIX + name, value)
            except OSError as exc:
                if exc.errno == errno.E2BIG:
                    raise FsError(errno.ENOSPC, "the property is too large") from None
                raise from_os(exc) from None
        if emit:
            self.emit("meta", parts)

    @contextlib.contextmanager
    def _opened_path(self, path: str | bytes) -> Iterator[int]:
        """An fd of the object itself (a folder or a served file), for xattrs."""
        parts = paths.parse(path)
        if not parts or (parts[0] == paths.SNAPSHOTS_DIR and len(parts) <= 2):
            if not parts:
                yield self.top_fd
                return
            with self._folder(parts) as fd:
                yield fd
            return
        with self._parent(parts) as (dir_fd, name):
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise from_os(exc) from None
        with beneath.opened(fd):
            if not _served(os.fstat(fd)):
                raise FsError(errno.EACCES, "not served: a hard-linked or special file")
            yield fd

    # -- Speicher's own storage in the share ---------------------------------------------

    def internal(self, *names: str, create: bool = False) -> InternalFolder:
        """Folder ``.speicher/<names...>`` of the share (made, with the folders above it, if
        ``create``, which needs rw access): Speicher's own storage for a protocol's state
        that belongs with the share's files (S3's multipart parts), see
        :class:`InternalFolder`. ENOENT when it is not there."""
        if create and not self.writable:
            raise FsError(errno.EACCES, "read-only access to this share")
        return _internal(self.top_fd, names, create, self.writable, self.durable)

    # -- moving files between the share and Speicher's own storage (S3 versions) ----------

    def link_out(self, path: str | bytes, folder: InternalFolder, name: str) -> None:
        """A second name ``name`` in internal ``folder`` for the file at ``path`` (replacing
        nothing: EEXIST). The file is not served while it has both names; S3 does this just
        before an upload's rename takes the share's name away, so the old bytes stay as a
        version without being copied."""
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, file_name):
            try:
                st = os.stat(file_name, dir_fd=dir_fd, follow_symlinks=False)
                if not _served(st):
                    raise FsError(errno.ENOENT, "no such file")
                os.link(
                    file_name,
                    _internal_name(name),
                    src_dir_fd=dir_fd,
                    dst_dir_fd=folder.fd,
                    follow_symlinks=False,
                )
                if self.durable:
                    os.fsync(folder.fd)
            except OSError as exc:
                raise from_os(exc) from None

    def move_out(self, path: str | bytes, folder: InternalFolder, name: str) -> None:
        """Move the file at ``path`` into internal ``folder`` as ``name`` (replacing a file
        of that name): it leaves the share (a ``delete`` event)."""
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, file_name):
            try:
                st = os.stat(file_name, dir_fd=dir_fd, follow_symlinks=False)
                if not _served(st):
                    raise FsError(errno.ENOENT, "no such file")
                beneath.rename(dir_fd, file_name, folder.fd, _internal_name(name))
                if self.durable:
                    os.fsync(folder.fd)
                    os.fsync(dir_fd)
            except OSError as exc:
                raise from_os(exc) from None
        self.emit("delete", parts)

    def move_in(self, folder: InternalFolder, name: str, path: str | bytes) -> None:
        """Move file ``name`` of internal ``folder`` to ``path`` of the share, which must not
        exist (EEXIST); its folders must (a ``create`` event)."""
        parts = paths.parse(path)
        with self._parent(parts, write=True) as (dir_fd, file_name):
            paths.check_new_name(file_name)
            try:
                beneath.rename(folder.fd, _internal_name(name), dir_fd, file_name, noreplace=True)
                if self.durable:
                    os.fsync(dir_fd)
                    os.fsync(folder.fd)
            except OSError as exc:
                raise from_os(exc) from None
        self.emit("create", parts)

    def _unseal_empty(self, dir_fd: int, name: str) -> bool:
        """Lift the seal of folder ``name`` when it holds no lock any more (so that it can
        be removed); whether it was lifted."""
        fd = beneath.open_dir(dir_fd, name)
        try:
            with seals.held(self.top_fd):
                if not attrs.append_only(fd) or seals.holds_lock(fd):
                    return False
                attrs.set_append_only(fd, False)
                return True
        finally:
            os.close(fd)

    def protect(self, path: str | bytes) -> None:
        """Lock the file at ``path`` in place (S3 Object Lock): the immutable attribute on
        it and a seal on every folder above it (seals.py), under the seal lock."""
        parts = paths.parse(path)
        if not parts or parts[0] == paths.SNAPSHOTS_DIR:
            raise FsError(errno.EROFS, "not in the live share")
        try:
            with seals.held(self.top_fd):
                seals.seal_above(self.top_fd, parts)
                self.set_immutable(path, True)
        except OSError as exc:
            raise from_os(exc) from None

    def settle(self, path: str | bytes) -> None:
        """After a lock left the file at ``path`` (moved away or lifted): lift the seals
        above it that no other lock needs."""
        parts = paths.parse(path)
        if not parts or parts[0] == paths.SNAPSHOTS_DIR:
            return
        try:
            seals.settle(self.top_fd, parts[:-1])
        except OSError as exc:
            raise from_os(exc) from None

    def set_immutable(self, path: str | bytes, on: bool) -> None:
        """Set or lift the immutable attribute of the file at ``path`` (S3 Object Lock: then
        no protocol, and not root without lifting it, can change or delete the file)."""
        parts = paths.parse(path)
        if parts and parts[0] == paths.SNAPSHOTS_DIR:
            raise FsError(errno.EROFS, "snapshots are read only")
        with self._parent(parts) as (dir_fd, name):
            try:
                attrs.set_immutable_at(dir_fd, name, on)
            except OSError as exc:
                raise from_os(exc) from None

    # -- space -----------------------------------------------------------------------------

    def space(self) -> tuple[int, int]:
        """(bytes free, bytes in all) as a client should see them: the pool's, capped by the
        share's quota."""
        st = os.fstatvfs(self.top_fd)
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        if self.quota is not None and self.fs.usage is not None:
            used = self.fs.usage(self.pool, self.share)
            total = min(total, self.quota)
            free = max(0, min(free, self.quota - used))
        return free, total
