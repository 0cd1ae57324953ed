"""The file manager's work on ShareFS: folder listings (sorted, filtered, in pages), ranges,
the folder forms (new folder, rename, delete) and resumable uploads.

Uploads come in pieces (``PUT /files/<share>/<path>`` with ``X-Upload-Id``,
``X-Upload-Offset`` and ``X-Upload-Total``; app.js sends 8 MiB at a time). The pieces go into
one ShareFS upload (a hidden temp file beside the target), which becomes the file when the
last byte is there: atomic, owned by the user, with the share's sync. A piece whose offset is
not where the upload stands is answered 409 with the offset it stands at, so a browser whose
connection dropped sends again from there (the bytes that did arrive are kept). An upload
nobody continues for ``STALE`` is dropped. A daemon restart ends uploads in progress (its
start removes upload temp files).
"""

from __future__ import annotations

import datetime as dt
import errno
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from speicher.files import Entry, FsError, ShareView, Upload, paths
from speicher.web.forms import page_of

PAGE = 200  # entries per page of a folder
STALE = 24 * 3600.0  # seconds an unfinished upload waits for its next piece
MAX_PIECE = 64 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

_STATUS = {
    errno.ENOENT: 404,
    errno.ENOTDIR: 404,
    errno.EACCES: 403,
    errno.EPERM: 403,
    errno.EROFS: 403,
    errno.EEXIST: 409,
    errno.ENOTEMPTY: 409,
    errno.EISDIR: 409,
    errno.ENOSPC: 507,
    errno.EDQUOT: 507,
    errno.EINVAL: 422,
    errno.ENAMETOOLONG: 422,
    errno.EIO: 503,
}
_KEYS = {404: "missing", 403: "denied", 409: "exists", 507: "full", 422: "name", 503: "down"}


def fs_status(exc: FsError) -> int:
    return _STATUS.get(exc.code, 500)


def fs_key(exc: FsError) -> str:
    """Which of the error page's explanations fits ``exc``."""
    return _KEYS.get(fs_status(exc), "failed")


@dataclass(frozen=True)
class Listing:
    entries: list[Entry]
    total: int  # entries after the filter
    page: int
    pages: int
    sort: str
    order: str
    filter: str


def listing(view: ShareView, path: str, query: dict[str, str]) -> Listing:
    """A page of the folder ``path``: folders first, then sorted by name, size or date."""
    entries = view.list(path)
    wanted = query.get("q", "").strip()
    if wanted:
        folded = wanted.casefold()
        entries = [e for e in entries if folded in e.name.casefold()]
    sort = query.get("sort", "name")
    if sort not in ("name", "size", "mtime"):
        sort = "name"
    order = "desc" if query.get("order") == "desc" else "asc"
    keys: dict[str, Callable[[Entry], Any]] = {
        "name": lambda e: e.name.casefold(),
        "size": lambda e: (e.size, e.name.casefold()),
        "mtime": lambda e: (e.mtime_ns, e.name.casefold()),
    }
    entries.sort(key=keys[sort], reverse=order == "desc")
    entries.sort(key=lambda e: not e.is_dir)  # stable: folders first, each in the order
    page = page_of(entries, query.get("page"), PAGE)
    return Listing(page.items, page.total, page.number, page.pages, sort, order, wanted)


def crumbs(path: str) -> list[tuple[str, str]]:
    """The breadcrumbs of ``path``: each folder's name and its path in the share."""
    out = []
    parts = [p for p in path.strip("/").split("/") if p]
    for i, name in enumerate(parts):
        out.append((name, "/".join(parts[: i + 1])))
    return out


class Unsatisfiable(Exception):
    """A range that starts beyond the end of the file (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range of a ``Range`` header as [start, end); None for the whole file (also
    for forms we do not serve, as RFC 9110 allows); Unsatisfiable beyond the end."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = min(int(last), size)
        if not length:
            raise Unsatisfiable
        return size - length, size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or end <= start:
        raise Unsatisfiable
    return start, end


def _name(form: dict[str, Any], field: str) -> str:
    name = str(form.get(field, "")).strip()
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a name: {name!r}")
    return name


def versions_of(
    view: ShareView, path: str, entry: Entry, before: str | None, limit: int
) -> list[tuple[str, Entry]]:
    """A page of a file's earlier states in the snapshots (ShareFS), older than ``before``;
    for a folder, the snapshots that have it (to browse it as it was there)."""
    if not entry.is_dir:
        return view.versions(path, before or None, limit)
    found = []
    rel = path.strip("/")
    for snap in reversed(view.list(f"/{paths.SNAPSHOTS_DIR}")):
        if before and snap.name >= before:
            continue
        try:
            found.append((snap.name, view.stat(f"{paths.SNAPSHOTS_DIR}/{snap.name}/{rel}")))
        except FsError:
            continue
        if len(found) >= limit:
            break
    return found


class _Spool:
    """What zipfile writes, handed on piece by piece (it cannot seek: data descriptors)."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes, /) -> int:
        self.pieces.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        out = b"".join(self.pieces)
        self.pieces.clear()
        return out


def _tree(view: ShareView, folder: str, inside: str) -> Iterator[tuple[str, Entry]]:
    """Every folder and file under ``folder``, as (path in the zip, entry), folders first."""
    for entry in view.list(folder):
        rel = f"{inside}/{entry.name}"
        yield rel, entry
        if entry.is_dir:
            yield from _tree(view, f"{folder}/{entry.name}", rel)


def zip_folder(view: ShareView, folder: str) -> Iterator[bytes]:
    """The folder as a zip, made while it is sent (stored, not compressed: a NAS's files are
    mostly compressed already, and both cores stay free); ZIP64, so any size fits. The view
    closes at the end. Files that cannot be read are left out."""
    spool = _Spool()
    top = folder.strip("/").rsplit("/", 1)[-1] or view.share
    try:
        with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for rel, entry in _tree(view, folder, top):
                stamp = dt.datetime.fromtimestamp(entry.mtime, dt.UTC)
                date = (max(stamp.year, 1980), *stamp.timetuple()[1:6])
                if entry.is_dir:
                    archive.writestr(zipfile.ZipInfo(rel + "/", date), b"")
                    continue
                try:
                    file = view.open_read(f"{folder}/{rel.split('/', 1)[1]}")
                except FsError:
                    continue
                with file:
                    info = zipfile.ZipInfo(rel, date)
                    info.file_size = entry.size
                    with archive.open(info, "w", force_zip64=True) as out:
                        for chunk in file.chunks():
                            out.write(chunk)
                            yield spool.take()
            yield spool.take()
        yield spool.take()
    finally:
        view.close()


def change(view: ShareView, folder: str, action: str, form: dict[str, Any]) -> None:
    """One of the folder page's forms (FsError, or ValueError for a form that is wrong)."""
    base = f"{folder}/" if folder else ""
    if action == "mkdir":
        view.mkdir(base + _name(form, "name"))
    elif action == "rename":
        view.rename(base + _name(form, "name"), base + _name(form, "to"), overwrite=False)
    elif action == "restore":
        view.restore_version(str(form.get("snapshot", "")), base + _name(form, "name"))
    elif action == "delete":  # into the recycle bin where the share has one
        view.recycle(base + _name(form, "name"))
    else:
        raise ValueError(f"unknown action {action!r}")


class _TooMuch(Exception):
    """A piece brings more bytes than the upload announced (or than a piece may have)."""


class UploadProblem(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


@dataclass
class _Pending:
    user: str
    path: str
    total: int
    view: ShareView
    upload: Upload
    seen: float = field(default_factory=time.monotonic)
    busy: bool = False


class Uploads:
    """Uploads in progress, by the id the browser gave them (per user)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._lock = threading.Lock()

    def take(self, user: str, upload_id: str) -> _Pending | None:
        """The upload, marked busy (a second request for it at the same time is refused)."""
        with self._lock:
            pending = self._pending.get((user, upload_id))
            if pending is None:
                return None
            if pending.busy:
                raise UploadProblem(409, {"error": "this upload is busy", "offset": None})
            pending.busy = True
            return pending

    def put(self, user: str, upload_id: str, pending: _Pending) -> None:
        with self._lock:
            pending.busy = True
            self._pending[(user, upload_id)] = pending

    def release(self, user: str, upload_id: str, pending: _Pending, done: bool) -> None:
        with self._lock:
            pending.busy = False
            pending.seen = time.monotonic()
            if done:
                self._pending.pop((user, upload_id), None)

    def reap(self) -> None:
        """Drop the uploads nobody continued (their temp files go with them)."""
        now = time.monotonic()
        with self._lock:
            stale = [
                (k, p) for k, p in self._pending.items() if not p.busy and now - p.seen > STALE
            ]
            for key, _ in stale:
                del self._pending[key]
        for _, pending in stale:
            pending.upload.abort()
            pending.view.close()


def _header_int(request: Request, name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit():
        raise UploadProblem(400, {"error": f"{name} must be a number"})
    return int(value)


async def _take_piece(request: Request, upload: Upload, total: int) -> bool:
    """The piece's bytes into ``upload``; False when the connection broke (the bytes that
    came are kept: the browser goes on from there). ``_TooMuch`` past ``total``."""
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_PIECE or upload.size + len(chunk) > total:
                raise _TooMuch
            await run_in_threadpool(upload.write, chunk)
    except ClientDisconnect:
        return False
    return True


async def receive_piece(
    uploads: Uploads,
    open_view: Callable[[], ShareView],
    user: str,
    request: Request,
    path: str,
) -> dict[str, Any]:
    """Write one piece; the upload's offset after it and whether the file is complete."""
    upload_id = request.headers.get("x-upload-id", "")
    if not _ID.match(upload_id):
        raise UploadProblem(400, {"error": "X-Upload-Id must be 8-64 letters, digits, - or _"})
    offset = _header_int(request, "x-upload-offset")
    total = _header_int(request, "x-upload-total")
    uploads.reap()
    pending = uploads.take(user, upload_id)
    if pending is None:
        if offset != 0:
            raise UploadProblem(409, {"error": "no such upload; start again", "offset": 0})
        view = await run_in_threadpool(open_view)
        try:
            upload = await run_in_threadpool(view.upload, path, False, False)
        except BaseException:
            view.close()
            raise
        pending = _Pending(user, path, total, view, upload)
        uploads.put(user, upload_id, pending)
    done = False
    try:
        if pending.path != path or pending.total != total:
            raise UploadProblem(409, {"error": "another file's upload", "offset": None})
        if offset != pending.upload.size:
            raise UploadProblem(
                409, {"error": "not where the upload is", "offset": pending.upload.size}
            )
        if not await _take_piece(request, pending.upload, total):
            return {"offset": pending.upload.size, "done": False}
        if pending.upload.size == total:
            await run_in_threadpool(pending.upload.commit)
            await run_in_threadpool(pending.view.close)
            done = True
        return {"offset": pending.upload.size, "done": done}
    except (FsError, _TooMuch) as exc:  # the upload is over: nothing of it stays
        await run_in_threadpool(pending.upload.abort)
        await run_in_threadpool(pending.view.close)
        done = True
        if isinstance(exc, _TooMuch):
            raise UploadProblem(413, {"error": "more bytes than announced"}) from None
        raise
    finally:
        uploads.release(user, upload_id, pending, done)
