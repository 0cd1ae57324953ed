"""wsgidav's view of the shares: a DAV provider over ShareFS, and nothing else.

Every resource of a request works through the one :class:`~speicher.files.ShareView` its
request opened for the share (``Request.view``), so access is decided by ShareFS alone (the
grants, as for SMB; a share with WebDAV off is no share at all) and every path is resolved
beneath the share without following links. ``/`` lists the shares the user may open; below
it ``/<share>/<path>`` is the share's folder or file.

Errors of ShareFS (:class:`~speicher.files.FsError`, an errno) become HTTP statuses in one
place, :func:`dav_error`; nothing of the server's own paths or exceptions reaches a client.
"""

from __future__ import annotations

import contextlib
import errno
import io
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlparse

from defusedxml import ElementTree as SafeXml
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_GATEWAY,
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_CREATED,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_INTERNAL_ERROR,
    HTTP_NOT_FOUND,
    HTTP_PRECONDITION_FAILED,
    HTTP_REQUEST_URI_TOO_LONG,
    HTTP_SERVICE_UNAVAILABLE,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider

from speicher.files import Entry, FsError, ReadFile, ShareFS, ShareView, Upload
from speicher.files.paths import SNAPSHOTS_DIR

PROTOCOL = "webdav"
CONTEXT = "speicher.dav"  # the environ key of the request's Request
MOUNT = "/dav"
LOCK_TIMEOUT = 3600  # seconds a lock lives when the client asks for no or an endless time
MAX_LOCK_TIMEOUT = 86_400
WRITES = frozenset({"PUT", "DELETE", "MKCOL", "PROPPATCH", "COPY", "MOVE", "LOCK", "UNLOCK"})
HREF_SAFE = "/!*'(),$-_|.~"  # as wsgidav quotes hrefs (Nautilus chokes on %28)

_STATUS = {
    errno.ENOENT: HTTP_NOT_FOUND,
    errno.ENOTDIR: HTTP_CONFLICT,
    errno.EISDIR: HTTP_CONFLICT,
    errno.ENOTEMPTY: HTTP_CONFLICT,
    errno.EEXIST: HTTP_PRECONDITION_FAILED,
    errno.EACCES: HTTP_FORBIDDEN,
    errno.EPERM: HTTP_FORBIDDEN,
    errno.EROFS: HTTP_FORBIDDEN,
    errno.ENOSPC: HTTP_INSUFFICIENT_STORAGE,
    errno.EDQUOT: HTTP_INSUFFICIENT_STORAGE,
    errno.ENAMETOOLONG: HTTP_REQUEST_URI_TOO_LONG,
    errno.EINVAL: HTTP_BAD_REQUEST,
    errno.EXDEV: HTTP_BAD_GATEWAY,
    errno.EIO: HTTP_SERVICE_UNAVAILABLE,
}


def dav_error(exc: FsError) -> DAVError:
    """The HTTP status and sentence for a refused or failed file operation."""
    return DAVError(_STATUS.get(exc.code, HTTP_INTERNAL_ERROR), exc.message)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except FsError as exc:
        raise dav_error(exc) from None


class Request:
    """What one request works with: who asks, from where, and the views it opened (at most
    one per share, closed when the response is done)."""

    def __init__(self, files: ShareFS, user: str, address: str | None) -> None:
        self.files = files
        self.user = user
        self.address = address
        self.views: dict[str, ShareView | None] = {}
        self.meta: dict[tuple[str, str], dict[str, bytes]] = {}

    def view(self, share: str) -> ShareView | None:
        """The user's view of ``share``; None if there is no such share for them."""
        if share not in self.views:
            try:
                self.views[share] = self.files.open(self.user, share, PROTOCOL, self.address)
            except FsError as exc:
                if exc.code != errno.ENOENT:
                    raise dav_error(exc) from None
                self.views[share] = None
        return self.views[share]

    def close(self) -> None:
        for view in self.views.values():
            if view is not None:
                view.close()
        self.views.clear()


def context(environ: dict[str, Any]) -> Request:
    request: Request = environ[CONTEXT]
    return request


def split(path: str) -> tuple[str, str]:
    """``/share/a/b`` -> (``share``, ``a/b``)."""
    share, _, rest = path.strip("/").partition("/")
    return share, rest.strip("/")


def href(share: str, rel: str, folder: bool = False) -> str:
    """The URL path of ``rel`` in ``share`` (a path as ShareFS reports it) for a client."""
    path = f"{MOUNT}/{share}/{rel.strip('/')}".rstrip("/")
    return quote(path + ("/" if folder else ""), safe=HREF_SAFE)


# -- the resources ---------------------------------------------------------------------------


class Root(DAVCollection):
    """``/dav/``: the shares the user may open over WebDAV. Nothing can be made here."""

    def get_display_name(self) -> str:
        return "Speicher"

    def get_member_names(self) -> list[str]:
        request = context(self.environ)
        return [name for name, _access in request.files.shares(request.user, PROTOCOL)]

    def get_member(self, name: str) -> Any:
        return self.provider.get_resource_inst(util.join_uri("/", name), self.environ)

    def prevent_locking(self) -> bool:
        return True

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    def create_collection(self, name: str) -> None:
        raise DAVError(HTTP_FORBIDDEN, "shares are made by an administrator, not over WebDAV")

    def create_empty_resource(self, name: str) -> None:
        raise DAVError(HTTP_FORBIDDEN, "files belong in a share")

    def handle_delete(self) -> bool:
        raise DAVError(HTTP_FORBIDDEN, "the list of shares cannot be deleted")

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        raise DAVError(HTTP_FORBIDDEN, "the list of shares cannot be copied")

    def handle_move(self, dest_path: str) -> bool:
        raise DAVError(HTTP_FORBIDDEN, "the list of shares cannot be moved")

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> None:
        raise DAVError(HTTP_FORBIDDEN, "the list of shares has no properties to set")


class _Node:
    """What files and folders share: the view, the path in the share, the entry."""

    environ: dict[str, Any]
    path: str
    provider: Any
    is_collection: bool
    view: ShareView
    rel: str
    entry: Entry | None
    # wsgidav's, from the resource class each node also is
    get_ref_url: Callable[[], str]
    get_href: Callable[[], str]
    remove_all_locks: Callable[..., None]

    def _init(self, view: ShareView, rel: str, entry: Entry | None) -> None:
        self.view = view
        self.rel = rel
        self.entry = entry

    @property
    def snapshot(self) -> bool:
        return self.rel.split("/", 1)[0] == SNAPSHOTS_DIR

    @property
    def writable(self) -> bool:
        return self.view.writable and not self.snapshot

    def _stat(self) -> Entry:
        if self.entry is None:
            with translated():
                self.entry = self.view.stat(self.rel)
        return self.entry

    def get_creation_date(self) -> float:
        # Linux's stat has no birth time: the inode's change time is the nearest
        return self._stat().ctime_ns / 1e9

    def get_last_modified(self) -> float:
        return self._stat().mtime

    def get_display_name(self) -> str:
        return self.rel.rsplit("/", 1)[-1] if self.rel else self.view.share

    def get_etag(self) -> str:
        return self._stat().etag

    def support_etag(self) -> bool:
        return True

    def prevent_locking(self) -> bool:
        return not self.writable

    def _refuse_write(self) -> None:
        if self.snapshot:
            raise DAVError(HTTP_FORBIDDEN, "snapshots are read only")
        if not self.view.writable:
            raise DAVError(HTTP_FORBIDDEN, "read-only access to this share")

    def _check_locks(self, ref_url: str) -> None:
        """423 if locks the request did not name cover ``ref_url`` or anything below it."""
        lock_manager = self.provider.lock_manager
        if "wsgidav.conditions.if" not in self.environ:
            util.parse_if_header_dict(self.environ)
        lock_manager.check_write_permission(
            url=ref_url,
            depth="infinity",
            token_list=self.environ["wsgidav.ifLockTokenList"],
            principal=self.environ["wsgidav.user_name"],
        )

    def _errors(self, failures: list[tuple[str, FsError]]) -> list[tuple[str, DAVError]]:
        """What ShareFS could not do, by href (a folder's with its trailing slash)."""
        out = []
        for path, exc in failures:
            try:
                folder = self.view.stat(path).is_dir
            except FsError:
                folder = False
            out.append((href(self.view.share, path, folder), dav_error(exc)))
        return out

    def handle_delete(self) -> bool | list[tuple[str, DAVError]]:
        self._refuse_write()
        if not self.rel:
            raise DAVError(HTTP_FORBIDDEN, "the share's top folder cannot be deleted")
        self._check_locks(self.get_ref_url())
        with translated():
            failures = self.view.delete_tree(self.rel)
        self.remove_all_locks(recursive=True)
        return self._errors(failures) or True

    def delete(self) -> None:
        failures = self.handle_delete()
        if isinstance(failures, list):
            raise failures[0][1]

    def _destination(self, dest_path: str) -> tuple[str, Any]:
        """The path in this share that ``dest_path`` names, and what is there (or None)."""
        share, rel = split(dest_path)
        if share != self.view.share:
            raise DAVError(HTTP_BAD_GATEWAY, "copying and moving between shares is not possible")
        if not rel:
            raise DAVError(HTTP_FORBIDDEN, "the share's top folder cannot be replaced")
        if rel.split("/", 1)[0] == SNAPSHOTS_DIR:
            raise DAVError(HTTP_FORBIDDEN, "snapshots are read only")
        return rel, self.provider.get_resource_inst(dest_path, self.environ)

    def _clear(self, target: Any) -> None:
        """Delete what is at a destination before something takes its place."""
        with translated():
            failures = self.view.delete_tree(target.rel)
        if failures:
            raise dav_error(failures[0][1])
        target.remove_all_locks(recursive=True)

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> Any:
        """COPY within the share: files atomically each, dead properties with them. The
        answer: True for 204 (replaced), or a one-item list naming this resource with 201
        (wsgidav answers a provider's own COPY/MOVE with 204 only; a list with one status
        for the resource itself is sent as that status)."""
        rel, target = self._destination(dest_path)
        if not self.view.writable:
            raise DAVError(HTTP_FORBIDDEN, "read-only access to this share")
        if target is not None and (target.is_collection or self.is_collection):
            self._clear(target)
        with translated():
            if self.is_collection and not depth_infinity:
                self.view.mkdir(rel)
                for name, value in self.view.get_meta(self.rel).items():
                    self.view.set_meta(rel, name, value, emit=False)
                failures: list[tuple[str, FsError]] = []
            else:
                failures = self.view.copy(self.rel, rel)
        if failures:
            return self._errors(failures)
        return self._done(target)

    def handle_move(self, dest_path: str) -> Any:
        """MOVE within the share is one rename (a file replaces a file atomically); dead
        properties are the file's own metadata, so they move with it."""
        self._refuse_write()
        rel, target = self._destination(dest_path)
        if target is not None and (target.is_collection or self.is_collection):
            self._clear(target)
        with translated():
            self.view.rename(self.rel, rel, overwrite=True)
        self.remove_all_locks(recursive=True)
        return self._done(target)

    def _done(self, target: Any) -> Any:
        if target is not None:
            return True  # wsgidav answers 204
        return [(self.get_href(), DAVError(HTTP_CREATED))]

    def support_recursive_move(self, dest_path: str) -> bool:
        return False

    def set_last_modified(self, dest_path: str, time_stamp: Any, *, dry_run: bool) -> bool:
        self._refuse_write()
        stamp = util.parse_time_string(time_stamp) if isinstance(time_stamp, str) else time_stamp
        if stamp is None:
            raise DAVError(HTTP_BAD_REQUEST, "not a date")
        if not dry_run:
            with translated():
                self.view.set_mtime(self.rel, int(float(stamp) * 1e9))
        return True


class Folder(_Node, DAVCollection):
    def __init__(
        self, path: str, environ: dict[str, Any], view: ShareView, rel: str, entry: Entry | None
    ) -> None:
        DAVCollection.__init__(self, path, environ)
        self._init(view, rel, entry)

    def get_member_names(self) -> list[str]:
        with translated():
            return [e.name for e in self.view.list(self.rel)]

    def get_member_list(self) -> list[Any]:
        """The folder's entries from one listing (no second look at each)."""
        with translated():
            entries = self.view.list(self.rel)
        return [
            _resource(
                util.join_uri(self.path, e.name),
                self.environ,
                self.view,
                _join(self.rel, e.name),
                e,
            )
            for e in entries
        ]

    def get_member(self, name: str) -> Any:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def create_collection(self, name: str) -> None:
        self._refuse_write()
        with translated():
            self.view.mkdir(_join(self.rel, name))

    def create_empty_resource(self, name: str) -> File:
        """For PUT a file that exists once its upload is complete; for LOCK of an unmapped
        URL an empty file now (RFC 4918's locked empty resource)."""
        self._refuse_write()
        rel = _join(self.rel, name)
        path = util.join_uri(self.path, name)
        if self.environ["REQUEST_METHOD"] == "PUT":
            return File(path, self.environ, self.view, rel, None)
        with translated():
            entry = self.view.write(rel, [b""])
        return File(path, self.environ, self.view, rel, entry)

    def support_recursive_delete(self) -> bool:
        return True


class File(_Node, DAVNonCollection):
    def __init__(
        self, path: str, environ: dict[str, Any], view: ShareView, rel: str, entry: Entry | None
    ) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self._init(view, rel, entry)
        self._incoming: _Incoming | None = None

    def get_content_length(self) -> int:
        return self._stat().size

    def get_content_type(self) -> str:
        mime: str = util.guess_mime_type(self.path, self.environ["wsgidav.config"])
        return mime

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> _Outgoing:
        with translated():
            return _Outgoing(self.view.open_read(self.rel))

    def begin_write(self, *, content_type: str | None = None) -> _Incoming:
        self._refuse_write()
        length = self.environ.get("CONTENT_LENGTH", "").strip()
        with translated():
            upload = self.view.upload(self.rel, keep_meta=True, digest=False)
        self._incoming = _Incoming(self, upload, int(length) if length.isdigit() else None)
        return self._incoming

    def end_write(self, *, with_errors: bool) -> None:
        if self._incoming is not None and with_errors:
            self._incoming.upload.abort()


class _Incoming:
    """The body of a PUT on its way into a ShareFS upload. ``close`` makes it the file, but
    only if every byte the client announced arrived: a client that went away leaves the old
    file as it was and no temp file."""

    def __init__(self, file: File, upload: Upload, expected: int | None) -> None:
        self.file = file
        self.upload = upload
        self.expected = expected

    def write(self, data: bytes) -> None:
        with translated():
            self.upload.write(data)

    def close(self) -> None:
        if self.expected is not None and self.upload.size != self.expected:
            self.upload.abort()
            raise DAVError(HTTP_BAD_REQUEST, "the body ended before its Content-Length")
        with translated():
            self.file.entry = self.upload.commit()


class _Outgoing:
    """A file being sent: reads at an offset of its own (ranges), never a shared one."""

    def __init__(self, file: ReadFile) -> None:
        self.file = file
        self.offset = 0

    def seek(self, offset: int) -> None:
        self.offset = offset

    def read(self, size: int) -> bytes:
        data = self.file.read(self.offset, size)
        self.offset += len(data)
        return data

    def close(self) -> None:
        self.file.close()


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _resource(
    path: str, environ: dict[str, Any], view: ShareView, rel: str, entry: Entry
) -> Folder | File:
    if entry.is_dir:
        return Folder(path, environ, view, rel, entry)
    return File(path, environ, view, rel, entry)


# -- the provider -------------------------------------------------------------------------


class ShareProvider(DAVProvider):
    """One provider for all shares, mounted at ``/dav``."""

    def __repr__(self) -> str:
        return "ShareProvider"

    def get_resource_inst(self, path: str | None, environ: dict[str, Any]) -> Any:
        if path is None:  # wsgidav asks for the parent of "/"
            return None
        share, rel = split(path)
        if not share:
            return Root("/", environ)
        view = context(environ).view(share)
        if view is None:
            return None
        try:
            entry = view.stat(rel)
        except FsError as exc:
            if exc.code in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise dav_error(exc) from None
        return _resource(path, environ, view, rel, entry)

    def custom_request_handler(
        self, environ: dict[str, Any], start_response: Any, default_handler: Any
    ) -> Any:
        """What Speicher decides before wsgidav handles a request: endless PROPFINDs, writes
        by read-only users and into snapshots, lock times, folder listings for browsers."""
        method = environ["REQUEST_METHOD"]
        if method == "PROPFIND" and environ.get("HTTP_DEPTH", "infinity") == "infinity":
            raise DAVError(
                HTTP_FORBIDDEN,
                "PROPFIND with Depth: infinity is not served; ask with Depth 0 or 1",
                err_condition=PRECONDITION_CODE_PropfindFiniteDepth,
            )
        if method in ("PROPFIND", "PROPPATCH", "LOCK"):
            _xml_body(environ)
        if method in WRITES:
            self._check_writable(environ)
        if method == "LOCK":
            environ["HTTP_TIMEOUT"] = f"Second-{_lock_timeout(environ.get('HTTP_TIMEOUT', ''))}"
        if method in ("GET", "HEAD"):
            _if_modified_since(environ)
            listing = self._listing(environ, start_response, head=method == "HEAD")
            if listing is not None:
                return listing
        return default_handler(environ, start_response)

    def _check_writable(self, environ: dict[str, Any]) -> None:
        """403 for any change by a read-only user, into a snapshot or of the share list."""
        targets = [environ["PATH_INFO"]]
        if environ["REQUEST_METHOD"] in ("COPY", "MOVE") and environ.get("HTTP_DESTINATION"):
            # the source of a COPY only needs reading; wsgidav checks the destination's host
            dest = unquote(urlparse(environ["HTTP_DESTINATION"]).path).removeprefix(MOUNT)
            targets = [dest] if environ["REQUEST_METHOD"] == "COPY" else [*targets, dest]
        for target in targets:
            share, rel = split(target)
            if not share:
                if environ["REQUEST_METHOD"] in ("LOCK", "UNLOCK", "PROPPATCH"):
                    raise DAVError(HTTP_FORBIDDEN, "the list of shares cannot be changed")
                continue
            view = context(environ).view(share)
            if view is None:
                continue  # answered 404 (or 409 for a missing parent) by wsgidav
            if not view.writable:
                raise DAVError(HTTP_FORBIDDEN, "read-only access to this share")
            if rel.split("/", 1)[0] == SNAPSHOTS_DIR:
                raise DAVError(HTTP_FORBIDDEN, "snapshots are read only")

    def _listing(self, environ: dict[str, Any], start_response: Any, head: bool) -> Any:
        """A folder asked for with GET (a browser): its names as plain text, which no
        browser runs as a page."""
        res = self.get_resource_inst(environ["PATH_INFO"], environ)
        if res is None or not res.is_collection:
            return None
        lines = [f"Index of {MOUNT}{environ['PATH_INFO']}", ""]
        for member in res.get_member_list():
            if member.is_collection:
                lines.append(f"{member.name}/")
            else:
                stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(member.get_last_modified()))
                lines.append(f"{member.name}  {member.get_content_length()} bytes  {stamp} UTC")
        body = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Date", util.get_rfc1123_time()),
            ],
        )
        return [b""] if head else [body]


def _xml_body(environ: dict[str, Any]) -> None:
    """Read a request's XML body (the front capped it at 1 MiB) and refuse it with 400 unless
    it is well-formed XML without a DTD (no entities, so no entity bombs). Then hand it to
    wsgidav again, with RFC 4918's ``<propname/>`` in the words wsgidav 4.4 understands
    (``<name/>``; it takes ``<propname/>`` for a request for no properties at all)."""
    length = environ.get("CONTENT_LENGTH", "").strip()
    if not length.isdigit() or int(length) == 0:
        return
    body = environ["wsgi.input"].read(int(length))
    environ["wsgidav.all_input_read"] = 1
    try:
        root = SafeXml.fromstring(body, forbid_dtd=True)
    except (SafeXml.ParseError, ValueError):  # defusedxml's refusals are ValueErrors
        raise DAVError(HTTP_BAD_REQUEST, "the body is no well-formed XML without a DTD") from None
    if environ["REQUEST_METHOD"] == "PROPFIND" and root.find("{DAV:}propname") is not None:
        body = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:name/></D:propfind>'
        environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)


def _if_modified_since(environ: dict[str, Any]) -> None:
    """wsgidav 4.4 answers 304 only for a file older than the date asked about, not for one
    of exactly that second (RFC 9110, 13.1.3: "not modified since"); one second later is the
    same question in its terms, as it compares whole seconds."""
    header = environ.get("HTTP_IF_MODIFIED_SINCE")
    stamp = util.parse_time_string(header) if header else None
    if stamp is not None:
        environ["HTTP_IF_MODIFIED_SINCE"] = util.get_rfc1123_time(stamp + 1)


def _lock_timeout(header: str) -> int:
    """The seconds a new or refreshed lock lives: what the client asked for, at most a day;
    an hour when it asked for none or for an endless lock (locks live in memory only)."""
    asked = util.read_timeout_value_header(header)
    if asked is None or asked < 0:
        return LOCK_TIMEOUT
    return int(min(asked, MAX_LOCK_TIMEOUT))


__all__ = ["CONTEXT", "MOUNT", "PROTOCOL", "Request", "ShareProvider", "dav_error"]
