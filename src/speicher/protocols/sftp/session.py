"""One SFTP session of one user: SFTP requests as ShareFS calls.

The root ``/`` lists the shares the user may open over SFTP, as folders; ``/share/...`` is a
path in a :class:`~speicher.files.ShareView`, opened on first use and checked again before
every request (a revoked grant or a disabled user takes effect at the next request). Every
ShareFS call runs on the service's worker threads, never on the event loop; asyncssh handles
one request of a session after the other.

Opening a file for writing:

- with truncate, or creating a file that does not exist: a ShareFS :class:`Upload` (a hidden
  temp file, renamed over the target when the client closes the handle; a session that ends
  first, a killed client or a lost connection, throws it away and the old file stays);
- an existing file without truncate (OpenSSH's ``reput``, random-access writers, sshfs
  editing in place): :meth:`ShareView.open_write`, in place, as over SMB.

Attributes: ``permissions`` tell what the user may do (rw: ``rwxr-xr-x`` folders and
``rw-r--r--`` files; ro and snapshots: no ``w``); owner and group are the Unix ids, shown by
name. ``setstat`` sets the modification time and the size; permissions, owner and group are
ignored (access is the grants' business; ``chmod`` would let a user narrowed to ro give their
own files write back), so ``cp -p``, ``scp -p`` and ``rsync -a`` still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import grp
import logging
import os
import pwd
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncssh
from asyncssh import (
    FILEXFER_TYPE_DIRECTORY,
    FILEXFER_TYPE_REGULAR,
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_TRUNC,
    FXF_WRITE,
    SFTPAttrs,
    SFTPError,
    SFTPName,
    SFTPVFSAttrs,
)

from speicher.files import Entry, FsError, ReadFile, ShareView, Upload, WriteFile
from speicher.files.errors import from_os
from speicher.files.paths import SNAPSHOTS_DIR
from speicher.protocols.sftp import paths
from speicher.protocols.sftp.errors import refused, to_sftp, unsupported

if TYPE_CHECKING:
    from speicher.protocols.sftp.service import SftpService

log = logging.getLogger(__name__)
T = TypeVar("T")
PROTOCOL = "sftp"  # for ShareFS: the share's sftp_enabled switch, and file events
ST_RDONLY = 1
NAME_MAX = 255
BLOCK = 1024 * 1024  # read-ahead and write gathering, per handle
MAX_HANDLES = 256  # open files per session: each is a descriptor and up to 2 blocks
FRESH = 1.0  # seconds read-ahead bytes are served


class _Handle:
    """An open file of the session: which share, which path, how it was opened."""

    def __init__(self, share: str, path: bytes, writable: bool) -> None:
        self.share = share
        self.path = path
        self.writable = writable  # the user's access, for the permissions fstat shows

    @property
    def fd(self) -> int:
        raise NotImplementedError

    def seek(self, offset: int, whence: int) -> int:
        """For asyncssh's data-range answer (``SEEK_DATA``/``SEEK_HOLE``); reads and writes
        take their offsets, so nothing depends on the file position."""
        return os.lseek(self.fd, offset, whence)


class _Reading(_Handle):
    """A file open for reading, with read-ahead: clients ask 32 KiB at a time (OpenSSH),
    one after the other, and a worker thread per request would cost more than the read. So
    a read past the buffer fetches ``BLOCK`` bytes on a worker, the next block is fetched
    while this one is served, and the buffer is dropped after ``FRESH`` seconds (SFTP
    promises no coherence, but a reader should not see old bytes for long)."""

    def __init__(self, share: str, path: bytes, writable: bool, file: ReadFile) -> None:
        super().__init__(share, path, writable)
        self.file = file
        self.start = 0
        self.data = b""
        self.fetched = 0.0
        self.next: asyncio.Future[bytes] | None = None
        self.next_start = -1
        self.at_end = False  # the buffer reaches the end of the file

    @property
    def fd(self) -> int:
        return self.file.fd


class _InPlace(_Handle):
    def __init__(
        self, share: str, path: bytes, writable: bool, file: WriteFile, append: bool
    ) -> None:
        super().__init__(share, path, writable)
        self.file = file
        self.append = append

    @property
    def fd(self) -> int:
        return self.file.fd


class _Uploading(_Handle):
    """An upload: writes that follow each other are gathered to ``BLOCK`` bytes before a
    worker writes them (one thread hop per block, not per 32 KiB request). A write that
    failed (no space) fails the upload: its close reports the error and throws the bytes
    away, so a failed upload never replaces the old file with part of the new one."""

    def __init__(self, share: str, path: bytes, upload: Upload, append: bool) -> None:
        super().__init__(share, path, True)
        self.upload = upload
        self.append = append
        self.mtime_ns: int | None = None  # set by the client before close (put -p)
        self.buffer: list[bytes] = []  # joined once, when written
        self.buffered = 0
        self.buffer_start = 0
        self.failed: SFTPError | None = None

    @property
    def fd(self) -> int:
        return self.upload.fd


async def _settled(future: asyncio.Future[bytes] | None) -> None:
    """Wait for a read-ahead nobody wants any more (its error included)."""
    if future is not None:
        with contextlib.suppress(Exception):
            await future


def _mtime_ns(attrs: SFTPAttrs) -> int | None:
    if attrs.mtime_ns is not None:
        return int(attrs.mtime_ns)
    if attrs.mtime is not None:
        return int(attrs.mtime) * 1_000_000_000
    return None


def _permissions(is_dir: bool, writable: bool) -> int:
    if is_dir:
        return stat.S_IFDIR | (0o755 if writable else 0o555)
    return stat.S_IFREG | (0o644 if writable else 0o444)


def _attrs(entry: Entry, writable: bool) -> SFTPAttrs:
    seconds = entry.mtime_ns // 1_000_000_000
    return SFTPAttrs(
        type=FILEXFER_TYPE_DIRECTORY if entry.is_dir else FILEXFER_TYPE_REGULAR,
        size=entry.size,
        uid=entry.uid,
        gid=entry.gid,
        permissions=_permissions(entry.is_dir, writable),
        atime=seconds,
        mtime=seconds,
        nlink=1,
    )


def _folder_attrs(writable: bool, mtime: int) -> SFTPAttrs:
    return SFTPAttrs(
        type=FILEXFER_TYPE_DIRECTORY,
        size=0,
        uid=0,
        gid=0,
        permissions=_permissions(True, writable),
        atime=mtime,
        mtime=mtime,
        nlink=1,
    )


def _in_snapshots(path: bytes) -> bool:
    return paths.normalize(path)[:1] == (SNAPSHOTS_DIR.encode(),)


class SftpSession(asyncssh.SFTPServer):
    """The SFTP server of one channel (asyncssh makes one per ``sftp`` subsystem request)."""

    def __init__(
        self, chan: asyncssh.SSHServerChannel[bytes], service: SftpService, user: str
    ) -> None:
        super().__init__(chan)
        self.service = service
        self.user = user
        peer = chan.get_extra_info("peername")
        self.address: str | None = peer[0] if peer else None
        self._views: dict[str, ShareView] = {}
        self._handles: set[_Handle] = set()
        # uploads not yet committed, by (share, path): a stat or setstat by path sees them
        self._uploads: dict[tuple[str, bytes], _Uploading] = {}
        self._started = int(time.time())

    # -- running ShareFS calls -----------------------------------------------------------

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on a worker thread; its FsError as the client's SFTP status."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.service.executor, functools.partial(call, *args))
        except FsError as exc:
            raise to_sftp(exc) from None
        except SFTPError:
            raise
        except OSError as exc:
            raise to_sftp(from_os(exc)) from None
        except Exception:
            log.exception("SFTP request of %s failed", self.user)
            raise SFTPError(asyncssh.FX_FAILURE, "internal error; see the server's log") from None

    def _view(self, share: str) -> ShareView:
        """The user's view of ``share``, checked against the grants now (worker thread)."""
        view = self._views.get(share)
        # ShareFS decides, the share's SFTP switch included
        principal, access, _pool = self.service.files.access(self.user, share, PROTOCOL)
        if principal is None or access is None:
            if view is not None:
                view.close()
                del self._views[share]
            raise FsError(errno.ENOENT, f"no share named '{share}'")
        if view is not None and view.access != access:
            view.close()
            del self._views[share]
            view = None
        if view is None:
            view = self.service.files.open(self.user, share, PROTOCOL, self.address)
            self._views[share] = view
        return view

    def _where(self, path: bytes) -> tuple[str | None, bytes]:
        """(share, path in it) of a client's path; share None: the root."""
        parts = paths.normalize(path)
        if not parts:
            return None, b""
        return paths.split(parts)

    def _writable(self, view: ShareView, path: bytes) -> bool:
        return view.writable and not _in_snapshots(path)

    # -- names and attributes --------------------------------------------------------------

    def _name_of(self, number: int | None, group: bool) -> str:
        """A uid's or gid's name as users know it (without the account prefix)."""
        key = (number or 0, group)
        cached = self.service.names.get(key)
        if cached is not None:
            return cached
        try:
            name = grp.getgrgid(key[0]).gr_name if group else pwd.getpwuid(key[0]).pw_name
        except KeyError:
            name = str(key[0])
        prefix = self.service.settings.account_prefix
        name = name.removeprefix(prefix) if prefix else name
        self.service.names[key] = name
        return name

    def _sftp_name(self, filename: bytes, attrs: SFTPAttrs) -> SFTPName:
        permissions = attrs.permissions or 0
        mtime = time.localtime(attrs.mtime or 0)
        when = time.strftime("%b %d %H:%M", mtime)
        if abs(time.time() - (attrs.mtime or 0)) > 180 * 86400:
            when = time.strftime("%b %d  %Y", mtime)
        user = self._name_of(attrs.uid, group=False)
        group = self._name_of(attrs.gid, group=True)
        longname = (
            f"{stat.filemode(permissions)} {attrs.nlink or 1:>4} {user:8} {group:8} "
            f"{attrs.size or 0:>8} {when} "
        ).encode() + filename
        return SFTPName(filename, longname, attrs)

    # -- the root: the shares --------------------------------------------------------------

    def _root_listing(self) -> list[SFTPName]:
        names = [
            self._sftp_name(b".", _folder_attrs(False, self._started)),
            self._sftp_name(b"..", _folder_attrs(False, self._started)),
        ]
        for share, access in self.service.files.shares(self.user, PROTOCOL):
            mtime = self._started
            with contextlib.suppress(FsError):  # a pool not mounted: entering it says why
                mtime = self._view(share).stat("").mtime_ns // 1_000_000_000
            names.append(self._sftp_name(share.encode(), _folder_attrs(access == "rw", mtime)))
        return names

    def _stat(self, path: bytes) -> SFTPAttrs:
        share, inner = self._where(path)
        if share is None:
            return _folder_attrs(False, self._started)
        pending = self._uploads.get((share, paths.display(paths.normalize(inner))))
        view = self._view(share)
        if pending is not None:
            return _attrs(pending.upload.stat(), True)
        return _attrs(view.stat(inner), self._writable(view, inner))

    # -- SFTPServer ------------------------------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        try:
            return paths.display(paths.normalize(path))
        except FsError as exc:
            raise to_sftp(exc) from None

    async def stat(self, path: bytes) -> SFTPAttrs:
        await self._flush_path(path)
        return await self._run(self._stat, path)

    async def lstat(self, path: bytes) -> SFTPAttrs:
        await self._flush_path(path)
        return await self._run(self._stat, path)  # links are never shown, so never followed

    async def fstat(self, file_obj: object) -> SFTPAttrs:
        handle = self._handle(file_obj)
        if isinstance(handle, _Uploading):
            await self._flush(handle)
            return _attrs(await self._run(handle.upload.stat), True)
        if isinstance(handle, _InPlace):
            return _attrs(await self._run(handle.file.stat), handle.writable)
        assert isinstance(handle, _Reading)
        try:
            st = os.fstat(handle.fd)
        except OSError as exc:
            raise to_sftp(from_os(exc)) from None
        fresh = dataclasses.replace(handle.file.entry, size=st.st_size, mtime_ns=st.st_mtime_ns)
        return _attrs(fresh, handle.writable)

    def _handle(self, file_obj: object) -> _Handle:
        if not isinstance(file_obj, _Handle) or file_obj not in self._handles:
            raise SFTPError(asyncssh.FX_FAILURE, "invalid handle")
        return file_obj

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        for name in await self._run(self._listing, path):
            yield name

    def _listing(self, path: bytes) -> list[SFTPName]:
        share, inner = self._where(path)
        if share is None:
            return self._root_listing()
        view = self._view(share)
        writable = self._writable(view, inner)
        here = view.stat(inner)
        if not here.is_dir:
            raise FsError(errno.ENOTDIR, "not a folder")
        names = [
            self._sftp_name(b".", _attrs(here, writable)),
            self._sftp_name(b"..", _folder_attrs(False, self._started)),
        ]
        names += [
            self._sftp_name(e.name.encode("utf-8", "surrogateescape"), _attrs(e, writable))
            for e in view.list(inner)
        ]
        return names

    # -- files -----------------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        if len(self._handles) >= MAX_HANDLES:
            raise SFTPError(
                asyncssh.FX_FAILURE, f"too many open files: at most {MAX_HANDLES} per session"
            )
        handle = await self._run(self._open, path, pflags)
        self._handles.add(handle)
        if isinstance(handle, _Uploading):
            self._uploads[(handle.share, handle.path)] = handle
        return handle

    def _open(self, path: bytes, pflags: int) -> _Handle:
        share, inner = self._where(path)
        write = bool(pflags & (FXF_WRITE | FXF_APPEND))
        if share is None or not paths.normalize(inner):
            if write:
                raise FsError(errno.EACCES, "shares are folders; files go inside them")
            raise FsError(errno.EISDIR, "it is a folder")
        view = self._view(share)
        key = paths.display(paths.normalize(inner))
        if not write:
            return _Reading(share, key, self._writable(view, inner), view.open_read(inner))
        if not self._writable(view, inner):
            raise FsError(errno.EACCES, "read-only access to this share")
        try:
            entry: Entry | None = view.stat(inner)
        except FsError as exc:
            if exc.code != errno.ENOENT:
                raise
            entry = None
        if entry is not None and entry.is_dir:
            raise FsError(errno.EISDIR, "it is a folder")
        if entry is not None and pflags & FXF_EXCL and pflags & FXF_CREAT:
            raise FsError(errno.EEXIST, "it exists already")
        if entry is None and not pflags & FXF_CREAT:
            raise FsError(errno.ENOENT, "no such file or folder")
        append = bool(pflags & FXF_APPEND)
        if entry is None or pflags & FXF_TRUNC:
            return _Uploading(share, key, view.upload(inner, digest=False), append)
        return _InPlace(share, key, True, view.open_write(inner, create=False), append)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        handle = self._handle(file_obj)
        size = min(size, self.service.max_read)
        if isinstance(handle, _Reading):
            return await self._read_ahead(handle, offset, size)
        if isinstance(handle, _InPlace):
            return await self._run(handle.file.read, offset, size)
        assert isinstance(handle, _Uploading)
        await self._flush(handle)
        return await self._run(handle.upload.read, offset, size)

    async def _read_ahead(self, handle: _Reading, offset: int, size: int) -> bytes:
        now = time.monotonic()
        end = handle.start + len(handle.data)
        # the buffer answers what it holds, and past its end when it ended at the file's end
        held = offset + size <= end or (handle.at_end and offset >= handle.start)
        if not (handle.start <= offset and held and now - handle.fetched < FRESH):
            if handle.next is not None and handle.next_start == offset:
                handle.data, handle.start = await handle.next, offset
                handle.at_end = len(handle.data) < BLOCK
            else:
                await _settled(handle.next)
                wanted = max(size, BLOCK)
                handle.data = await self._run(handle.file.read, offset, wanted)
                handle.start, handle.at_end = offset, len(handle.data) < wanted
            handle.next, handle.fetched = None, time.monotonic()
            end = handle.start + len(handle.data)
        piece = handle.data[offset - handle.start : offset - handle.start + size]
        if handle.next is None and not handle.at_end and offset + size > end - BLOCK // 2:
            handle.next_start = end
            handle.next = asyncio.ensure_future(self._run(handle.file.read, end, BLOCK))
        return piece

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        handle = self._handle(file_obj)
        if isinstance(handle, _Uploading):
            if handle.failed is not None:
                raise handle.failed
            if handle.append:
                await self._flush(handle)
                offset = handle.upload.size
            if offset != handle.buffer_start + handle.buffered:
                await self._flush(handle)
                handle.buffer_start = offset
            handle.buffer.append(data)
            handle.buffered += len(data)
            if handle.buffered >= BLOCK:
                await self._flush(handle)
        elif isinstance(handle, _InPlace):
            await self._run(self._write_in_place, handle, offset, data)
        else:
            raise refused("the file was opened for reading")
        return len(data)

    async def _flush(self, handle: _Uploading) -> None:
        """Write what an upload gathered; a failure fails the upload (see _Uploading)."""
        if handle.failed is not None:
            raise handle.failed
        if not handle.buffer:
            return
        data = handle.buffer[0] if len(handle.buffer) == 1 else b"".join(handle.buffer)
        handle.buffer, handle.buffered = [], 0
        try:
            await self._run(handle.upload.write_at, handle.buffer_start, data)
        except SFTPError as exc:
            handle.failed = exc
            raise
        handle.buffer_start += len(data)

    @staticmethod
    def _commit(handle: _Uploading) -> None:
        """The last gathered bytes and the commit, in one go on a worker (a small file's
        upload is then an open, the writes, and this)."""
        data = b"".join(handle.buffer)
        handle.buffer, handle.buffered = [], 0
        try:
            if data:
                handle.upload.write_at(handle.buffer_start, data)
        except BaseException:
            handle.upload.abort()
            raise
        handle.upload.commit(handle.mtime_ns)

    async def _flush_path(self, path: bytes) -> None:
        """Before a request by path: the gathered bytes of an upload of that path."""
        try:
            share, inner = self._where(path)
        except FsError:
            return  # the request itself says what is wrong with the path
        if share is not None:
            pending = self._uploads.get((share, paths.display(paths.normalize(inner))))
            if pending is not None:
                await self._flush(pending)

    @staticmethod
    def _write_in_place(handle: _InPlace, offset: int, data: bytes) -> None:
        if handle.append:
            offset = handle.file.stat().size
        handle.file.write(offset, data)

    def close(self, file_obj: object) -> Awaitable[None]:
        # asyncssh calls close() for the client's CLOSE request and, from the session's
        # _cleanup(), for every handle still open when the session ends. Only the first is
        # the client's word that a file is complete: an upload still open at the end (a
        # killed client, a lost connection, a stopping daemon) is thrown away, never made
        # the file. (asyncssh is pinned; tests/protocols/sftp kill a client mid-upload.)
        ended = sys._getframe(1).f_code.co_name == "_cleanup"
        return self._close(file_obj, commit=not ended)

    async def _close(self, file_obj: object, commit: bool) -> None:
        if not isinstance(file_obj, _Handle) or file_obj not in self._handles:
            return  # a folder's handle: nothing to do
        self._handles.discard(file_obj)
        if isinstance(file_obj, _Uploading):
            self._uploads.pop((file_obj.share, file_obj.path), None)
            if commit:
                if file_obj.failed is not None:
                    await self._run(file_obj.upload.abort)
                    raise file_obj.failed
                await self._run(self._commit, file_obj)
            else:
                await self._run(file_obj.upload.abort)
                log.info(
                    "SFTP upload of /%s%s by %s ended without close; discarded",
                    file_obj.share,
                    file_obj.path.decode(errors="replace"),
                    self.user,
                )
        elif isinstance(file_obj, _InPlace):
            await self._run(file_obj.file.close)
        elif isinstance(file_obj, _Reading):
            await _settled(file_obj.next)
            file_obj.file.close()

    def exit(self) -> None:
        for handle in list(self._handles):  # asyncssh closed them all before; to be sure
            if isinstance(handle, _Uploading):
                handle.upload.abort()
            elif isinstance(handle, _InPlace | _Reading):
                handle.file.close()
        self._handles.clear()
        self._uploads.clear()
        for view in self._views.values():
            view.close()
        self._views.clear()
        self.service.session_ended(self)
        # exit status 0, as OpenSSH's sshd reports when sftp-server ends: scp checks it
        with contextlib.suppress(OSError):
            self.channel.exit(0)

    async def fsync(self, file_obj: object) -> None:
        handle = self._handle(file_obj)
        if isinstance(handle, _Uploading):
            await self._flush(handle)
            await self._run(handle.upload.fsync)
        elif isinstance(handle, _InPlace):
            await self._run(handle.file.fsync)

    # -- attributes ------------------------------------------------------------------------

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._flush_path(path)
        await self._run(self._setstat, path, attrs)

    async def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._flush_path(path)
        await self._run(self._setstat, path, attrs)

    def _setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        share, inner = self._where(path)
        changes = attrs.size is not None or _mtime_ns(attrs) is not None
        if share is None:
            if changes:
                raise FsError(errno.EACCES, "the list of shares cannot be changed")
            return
        view = self._view(share)
        if not self._writable(view, inner):
            raise FsError(errno.EACCES, "read-only access to this share")
        if not paths.normalize(inner):
            if changes:
                raise FsError(errno.EACCES, "the share's top folder cannot be changed")
            return
        key = paths.display(paths.normalize(inner))
        pending = self._uploads.get((share, key))
        mtime = _mtime_ns(attrs)
        if pending is not None:
            if attrs.size is not None:
                pending.upload.truncate(attrs.size)
            if mtime is not None:
                pending.mtime_ns = mtime
            return
        if attrs.size is not None:
            file = view.open_write(inner, create=False)
            try:
                file.truncate(attrs.size)
            finally:
                file.close()
        if mtime is not None:
            view.set_mtime(inner, mtime)
        # permissions, owner and group: ignored (see the module's doc)

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        handle = self._handle(file_obj)
        mtime = _mtime_ns(attrs)
        if (attrs.size is not None or mtime is not None) and not handle.writable:
            raise refused("read-only access to this share")
        if isinstance(handle, _Uploading):
            await self._flush(handle)
            if attrs.size is not None:
                await self._run(handle.upload.truncate, attrs.size)
            if mtime is not None:
                handle.mtime_ns = mtime
        elif isinstance(handle, _InPlace):
            if attrs.size is not None:
                await self._run(handle.file.truncate, attrs.size)
            if mtime is not None:
                await self._run(handle.file.set_mtime, mtime)
        elif attrs.size is not None:
            raise refused("the file was opened for reading")
        elif mtime is not None:
            await self._run(self._setstat, b"/" + handle.share.encode() + handle.path, attrs)

    # -- folders and names -----------------------------------------------------------------

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._run(self._inside, path, "mkdir")

    async def rmdir(self, path: bytes) -> None:
        await self._run(self._inside, path, "rmdir")

    async def remove(self, path: bytes) -> None:
        await self._run(self._inside, path, "delete")

    def _inside(self, path: bytes, action: str) -> None:
        share, inner = self._where(path)
        if share is None or not paths.normalize(inner):
            what = "the list of shares" if share is None else "a share's top folder"
            if share is not None:
                self._view(share)  # a share the user cannot see is not there
            raise FsError(errno.EACCES, f"{what} is changed by an administrator, not over SFTP")
        view = self._view(share)
        if action == "mkdir":
            view.mkdir(inner)
        elif action == "rmdir":
            view.rmdir(inner)
        else:
            view.delete(inner)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        # SFTP version 3: the target must not exist (OpenSSH's sftp-server agrees)
        await self._run(self._rename, oldpath, newpath, False)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._run(self._rename, oldpath, newpath, True)

    def _rename(self, oldpath: bytes, newpath: bytes, overwrite: bool) -> None:
        src_share, src = self._where(oldpath)
        dst_share, dst = self._where(newpath)
        if src_share is None or dst_share is None:
            raise FsError(errno.EACCES, "shares are renamed by an administrator")
        view = self._view(src_share)
        if dst_share != src_share:
            self._view(dst_share)
            raise FsError(errno.EXDEV, "files move within a share; copy them to another one")
        if not paths.normalize(src) or not paths.normalize(dst):
            raise FsError(errno.EACCES, "a share's top folder is renamed by an administrator")
        view.rename(src, dst, overwrite=overwrite)

    async def readlink(self, path: bytes) -> bytes:
        await self._run(self._stat, path)  # a path that exists is no link
        raise SFTPError(asyncssh.FX_NO_SUCH_FILE, "not a link: shares hold no links")

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: SFTPAttrs) -> object:
        raise unsupported("SFTP version 3 only")  # never negotiated; asyncssh's would open

    def lock(self, file_obj: object, offset: int, length: int, flags: int) -> None:
        raise unsupported("byte-range locks are not supported")

    def unlock(self, file_obj: object, offset: int, length: int) -> None:
        raise unsupported("byte-range locks are not supported")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise unsupported("links are not supported: shares hold files and folders")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise unsupported("links are not supported: shares hold files and folders")

    # -- space -----------------------------------------------------------------------------

    async def statvfs(self, path: bytes) -> SFTPVFSAttrs:
        return await self._run(self._statvfs, path)

    async def fstatvfs(self, file_obj: object) -> SFTPVFSAttrs:
        handle = self._handle(file_obj)
        return await self._run(self._statvfs, b"/" + handle.share.encode() + handle.path)

    def _statvfs(self, path: bytes) -> SFTPVFSAttrs:
        share, inner = self._where(path)
        if share is None:
            shares = [s for s, _a in self.service.files.shares(self.user, PROTOCOL)]
            if not shares:
                return SFTPVFSAttrs(4096, 4096, 0, 0, 0, 0, 0, 0, 0, ST_RDONLY, NAME_MAX)
            share, inner = shares[0], b""
        view = self._view(share)
        free, total = view.space()
        block = 4096
        flag = 0 if self._writable(view, inner) else ST_RDONLY
        return SFTPVFSAttrs(
            block, block, total // block, free // block, free // block, 0, 0, 0, 0, flag, NAME_MAX
        )
