"""WebDAV at ``/dav``: an ASGI front (logins, limits, headers) before wsgidav, which runs in
a2wsgi's worker threads with :class:`ShareProvider` over ShareFS.

What the front decides before wsgidav sees a request (docs/webdav.md):

- Logins are HTTP Basic with Speicher users. A successful login is remembered for
  ``LOGIN_SECONDS`` under an HMAC of name and password with a key made at start (no password
  is kept), and forgotten when the users or groups tables change; everything else costs an
  Argon2 check through :class:`~speicher.api.auth.PasswordLogins`, the API's own throttle and
  cap of two checks at once (requests for the same credentials wait for one check). 401
  answers challenge ``Basic realm="Speicher"``.
- A foreign ``Origin`` is refused (403), URLs over ``MAX_URL`` bytes are 414, request bodies
  other than a PUT's (XML) over ``MAX_BODY`` are 413.
- Every answer says ``MS-Author-Via: DAV`` (Windows' Mini-Redirector wants it) and carries
  ``Content-Security-Policy: sandbox`` and ``X-Content-Type-Options: nosniff``, so a page
  someone put in a share never runs as this server's page.
- A client that goes away mid-upload ends its PUT with an error, so the upload is thrown
  away (a2wsgi would otherwise take the end of the stream for the end of the body).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import errno
import hashlib
import hmac
import logging
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import urlsplit

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import WSGIResponder
from a2wsgi.wsgi_typing import Environ
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from wsgidav import util
from wsgidav.dav_error import (
    ERROR_DESCRIPTIONS,
    HTTP_INTERNAL_ERROR,
    HTTP_NO_CONTENT,
    HTTP_NOT_MODIFIED,
    DAVError,
    get_http_status_string,
)
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from speicher.api.auth import PasswordLogins, TooManyRequests, basic_credentials
from speicher.db import Database
from speicher.errors import Unauthorized
from speicher.files import Entry, FsError, ShareFS
from speicher.files.paths import SNAPSHOTS_DIR
from speicher.protocols.webdav.properties import MetaProperties
from speicher.protocols.webdav.provider import CONTEXT, MOUNT, Request, ShareProvider, split

log = logging.getLogger(__name__)

LOGIN_SECONDS = 300.0
LOGIN_TABLES = frozenset({"users", "groups"})
MAX_LOGINS = 10_000  # remembered logins; more and the memory is cleared
LOGIN_QUEUE = 30  # password checks that may wait for one of the two slots
MAX_URL = 8192
MAX_BODY = 1024 * 1024
WORKERS = 32  # requests wsgidav serves at once (each holds a thread while it runs)
BLOCK = 1024 * 1024
SEND_TIMEOUT = 60.0  # seconds a download may stall before its thread gives up
FAST_READ = 256 * 1024  # plain GETs of files up to this size skip wsgidav (_read_small)
FAST_WRITE = 256 * 1024  # plain PUTs of bodies up to this size skip it too (_write_small)
# what makes a PUT more than "these bytes are the file now": wsgidav answers those
WRITE_CONDITIONS = (
    "if",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "content-range",
    "content-encoding",
    "transfer-encoding",
)
CONDITIONAL = (
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if",
    "depth",
)
REALM = 'Basic realm="Speicher", charset="UTF-8"'
ROOT_OPTIONS = ((b"dav", b"1, 2"), (b"allow", b"OPTIONS"))
HEADERS = [
    (b"ms-author-via", b"DAV"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"sandbox"),
]


def is_dav(scope: Scope, path: str) -> bool:
    """Whether a request is WebDAV's: below ``/dav``, or Windows' ``OPTIONS /`` (its
    Mini-Redirector asks the server's root whether it speaks WebDAV before it maps a drive)."""
    if path == "/":
        return scope.get("method") == "OPTIONS"
    return path == MOUNT or path.startswith(MOUNT + "/")


# -- answers in our words --------------------------------------------------------------------


def _plain_page(self: DAVError) -> tuple[str, bytes]:
    """An error's body: the precondition XML RFC 4918 defines, else one line of text (never
    wsgidav's HTML page, which shows its version and the exception's repr)."""
    if self.err_condition:
        return "application/xml; charset=utf-8", self.err_condition.as_string().encode()
    text = get_http_status_string(self)
    if self.value == HTTP_INTERNAL_ERROR:
        text += ": the server failed; its log tells why"
    elif self.context_info:
        text += f": {self.context_info}"
    return "text/plain; charset=utf-8", (text + "\n").encode("utf-8", "replace")


DAVError.get_response_page = _plain_page  # every answer wsgidav builds from a DAVError
for _status in HTTPStatus:  # wsgidav names only some statuses ("507 Status")
    ERROR_DESCRIPTIONS.setdefault(_status.value, f"{_status.value} {_status.phrase}")


class PlainErrors(BaseMiddleware):
    """In place of wsgidav's ErrorPrinter: an error is a short plain (or XML) answer; an
    unexpected exception is logged with its traceback and answered 500 without it."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        pending = util.SubAppStartResponse()
        started = False
        try:
            app_iter = self.next_app(environ, pending)
            try:
                for chunk in app_iter:
                    if not started:
                        start_response(pending.status, pending.response_headers)
                        started = True
                    yield chunk
            finally:
                if hasattr(app_iter, "close"):
                    app_iter.close()
            if not started:
                start_response(pending.status, pending.response_headers)
            return
        except DAVError as exc:
            error = exc
        except Exception:
            method = environ.get("REQUEST_METHOD")
            log.error("WebDAV %s failed:\n%s", method, traceback.format_exc())
            error = DAVError(HTTP_INTERNAL_ERROR)
        if started:  # the answer is under way: all that can be done is to end it short
            return
        status = get_http_status_string(error)
        if error.value in (HTTP_NOT_MODIFIED, HTTP_NO_CONTENT):
            start_response(status, [("Content-Length", "0")])
            yield b""
            return
        content_type, body = error.get_response_page()
        if not error.add_body:
            body = b""
        start_response(
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Date", util.get_rfc1123_time()),
                *(error.add_headers or []),
            ],
        )
        yield body


def wsgidav_app() -> WsgiDAVApp:
    logging.getLogger("wsgidav").setLevel(logging.WARNING)
    return WsgiDAVApp(
        {
            "provider_mapping": {"/": ShareProvider()},
            "mount_path": MOUNT,
            "middleware_stack": [PlainErrors, RequestResolver],
            "lock_storage": True,  # in memory: locks end with the daemon (docs/webdav.md)
            "property_manager": MetaProperties(),
            "block_size": BLOCK,
            "verbose": 1,
            "logging": {"enable": False},
            "suppress_version_info": True,
            "add_header_MS_Author_Via": False,  # the front adds it to every answer
            "dir_browser": {"enable": False},
            "hotfixes": {"re_encode_path_info": True, "unquote_path_info": False},
        }
    )


class _Wsgi:
    """Hands wsgidav the user the front authenticated and a :class:`Request` whose views are
    closed when the answer is done."""

    def __init__(self, files: ShareFS, dav: Callable[..., Iterable[bytes]]) -> None:
        self.files = files
        self.dav = dav

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        scope = environ["asgi.scope"]
        user: str = scope["speicher.user"]
        environ["wsgidav.auth.user_name"] = user
        if "speicher.body" in scope:  # a PUT's body, read ahead on the event loop
            environ["wsgi.input"] = scope["speicher.body"]
        environ.setdefault("HTTP_HOST", f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}")
        try:  # wsgidav refuses these too, but with an empty body
            util.normalize_path(util.re_encode_wsgi(environ["PATH_INFO"]))
        except DAVError as exc:
            content_type, body = exc.get_response_page()
            start_response(
                get_http_status_string(exc),
                [("Content-Type", content_type), ("Content-Length", str(len(body)))],
            )
            yield body
            return
        request = Request(self.files, user, environ.get("REMOTE_ADDR"))
        environ[CONTEXT] = request
        try:
            yield from self.dav(environ, start_response)
        finally:
            request.close()


# -- logins ----------------------------------------------------------------------------------


class LoginCache:
    """Successful logins of the last ``LOGIN_SECONDS``, by an HMAC of name and password
    under a key of this process; all are forgotten when users or groups change."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._logins: dict[bytes, tuple[float, int, str]] = {}

    def key(self, name: str, password: str) -> bytes:
        message = name.encode("utf-8") + b"\x00" + password.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, key: bytes) -> str | None:
        found = self._logins.get(key)
        if found is None:
            return None
        expires, generation, user = found
        if expires < self.clock() or generation != self.db.generation_of(LOGIN_TABLES):
            self._logins.pop(key, None)
            return None
        return user

    def put(self, key: bytes, user: str, generation: int) -> None:
        if len(self._logins) >= MAX_LOGINS:
            self._logins.clear()
        self._logins[key] = (self.clock() + LOGIN_SECONDS, generation, user)


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


class PumpedBody:
    """A PUT's body for the WSGI thread, read from the server on the event loop ahead of it.

    a2wsgi's own body makes one round trip from the worker thread to the event loop for every
    chunk the server received (64 KiB); here chunks are handed over under a lock and the loop
    stops reading only while ``HIGH`` bytes wait. A client that goes away, or sends nothing
    for ``idle`` seconds, makes ``read`` raise :class:`ClientDisconnected`, so the upload is
    thrown away and its worker thread is free again (a stalled client would hold it, and the
    daemon's orderly stop, for ever)."""

    HIGH = 4 * 1024 * 1024
    LOW = 1024 * 1024

    def __init__(self, loop: asyncio.AbstractEventLoop, idle: float = 60.0) -> None:
        self.loop = loop
        self.idle = idle
        self.lock = threading.Condition()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.held = 0
        self.done = False
        self.error: BaseException | None = None
        self.room = asyncio.Event()
        self.room.set()

    async def pump(self, receive: Receive) -> None:
        try:
            while True:
                await self.room.wait()
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected("the client went away")
                data: bytes = message.get("body", b"")
                more = bool(message.get("more_body", False))
                with self.lock:
                    if data:
                        self.chunks.append(data)
                        self.held += len(data)
                    if self.held >= self.HIGH:
                        self.room.clear()
                    self.done = not more
                    self.lock.notify_all()
                if not more:
                    return
        except BaseException as exc:
            with self.lock:
                self.error = exc if isinstance(exc, ClientDisconnected) else ClientDisconnected()
                self.done = True
                self.lock.notify_all()
            if not isinstance(exc, ClientDisconnected):
                raise

    def read(self, size: int = -1) -> bytes:
        with self.lock:
            while not self.done and (size < 0 or self.held < size):
                held = self.held
                if not self.lock.wait(self.idle) and self.held == held and not self.done:
                    raise ClientDisconnected(f"the client sent nothing for {self.idle:.0f} s")
            if self.error is not None and not self.chunks:
                raise self.error
            wanted = self.held if size < 0 else min(size, self.held)
            parts = []
            while wanted > 0:
                chunk = self.chunks.popleft()
                if len(chunk) > wanted:
                    self.chunks.appendleft(chunk[wanted:])
                    chunk = chunk[:wanted]
                parts.append(chunk)
                wanted -= len(chunk)
                self.held -= len(chunk)
            if self.held < self.LOW and not self.room.is_set():
                self.loop.call_soon_threadsafe(self.room.set)
            return b"".join(parts)


class _Responder(WSGIResponder):
    """a2wsgi's responder, with fewer trips between the worker thread and the event loop: the
    answer's start goes with its first body chunk, and the last chunk says it is the last, so
    a small answer is one trip instead of three (GETs of 4 KiB files, 8 at once: 261 -> 536
    a second)."""

    def start_response(
        self, status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        self.exc_info = exc_info
        if not self.response_started:
            self.response_started = True
            self._start: Message | None = {
                "type": "http.response.start",
                "status": int(status.split(" ", 1)[0]),
                "headers": [
                    (name.strip().encode("latin1").lower(), value.strip().encode("latin1"))
                    for name, value in response_headers
                ],
            }
        return lambda chunk: self._flush(chunk, more=True)

    def _flush(self, chunk: bytes, more: bool) -> None:
        messages: list[Message] = []
        start = getattr(self, "_start", None)
        if start is not None:
            messages.append(start)
            self._start = None
        messages.append({"type": "http.response.body", "body": chunk, "more_body": more})

        async def put_all() -> None:
            for message in messages:
                await self.send_queue.put(message)

        queued = asyncio.run_coroutine_threadsafe(put_all(), loop=self.loop)
        try:
            queued.result(SEND_TIMEOUT)
        except concurrent.futures.TimeoutError:
            # the client takes nothing: give up its thread (the answer ends unfinished)
            queued.cancel()
            raise ClientDisconnected(f"the client took nothing for {SEND_TIMEOUT:.0f} s") from None

    def wsgi(self, environ: Environ, start_response: Any) -> None:
        iterable = self.app(environ, start_response)
        try:
            pending: bytes | None = None
            for chunk in iterable:
                if not chunk:
                    continue
                if pending is not None:
                    self._flush(pending, more=True)
                pending = chunk
            self._flush(pending or b"", more=False)
        finally:
            getattr(iterable, "close", lambda: None)()


class _Bridge(WSGIMiddleware):
    """a2wsgi's WSGI-in-ASGI middleware with :class:`_Responder`."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            responder = _Responder(self.app, self.executor, self.send_queue_size)
            await responder(scope, receive, send)


# -- the front -------------------------------------------------------------------------------


class DavApp:
    """The ASGI app the daemon serves at ``/dav``."""

    def __init__(self, files: ShareFS, db: Database, logins: PasswordLogins) -> None:
        self.files = files
        self.db = db
        self.logins = logins
        self.cache = LoginCache(db)
        self._checks: dict[bytes, asyncio.Future[str]] = {}
        wsgi: Any = _Wsgi(files, wsgidav_app())
        self.wsgi = cast(ASGIApp, _Bridge(wsgi, workers=WORKERS))
        self.reads = concurrent.futures.ThreadPoolExecutor(WORKERS, "dav-read")
        self.config = wsgi.dav.config
        self.locks = wsgi.dav.lock_manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/":  # OPTIONS / (is_dav): what the server speaks, to anyone
            await _answer(send, 200, "WebDAV is at /dav/", ROOT_OPTIONS)
            return
        raw = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
        if len(raw) > MAX_URL:
            await _answer(send, 414, f"the URL is longer than {MAX_URL} bytes")
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, scope, headers.get("host", "")):
            await _answer(send, 403, "cross-site request refused")
            return
        try:
            user = await self._user(scope, headers)
        except Unauthorized as exc:
            await _answer(send, 401, exc.message, ((b"www-authenticate", REALM.encode()),))
            return
        except TooManyRequests as exc:
            retry = ((b"retry-after", str(exc.retry_after).encode()),)
            await _answer(send, 429, exc.message, retry)
            return
        scope = {**scope, "root_path": MOUNT, "speicher.user": user}
        if "," in headers.get("range", ""):
            scope, headers = _without_ranges(scope)
        await self._serve(scope, headers, receive, send)

    async def _serve(self, scope: Scope, headers: Headers, receive: Receive, send: Send) -> None:
        """An authenticated request: small plain reads by themselves, everything else by
        wsgidav (a PUT with its body read ahead, others with their small body read whole)."""
        user = scope["speicher.user"]
        if scope["method"] in ("GET", "HEAD") and _plain_read(headers):
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(self.reads, self._read_small, scope, user)
            if found is not None:
                await _send_file(send, *found, head=scope["method"] == "HEAD")
                return
        if scope["method"] == "PUT" and self._plain_write(headers):
            read = await _read_body(receive, int(headers["content-length"]))
            if read is None:
                return  # the client went away: nobody waits for an answer, nothing was written
            loop = asyncio.get_running_loop()
            done = await loop.run_in_executor(self.reads, self._write_small, scope, user, read)
            if done is not None:
                created, entry = done
                await _send_written(send, created, entry)
                return
            receive = _replay(read, receive)  # wsgidav answers it, from the same bytes
        if scope["method"] != "PUT":
            body = await _small_body(scope, headers, receive)
            if body is None:
                await _answer(send, 413, f"request bodies are at most {MAX_BODY} bytes")
                return
            scope, receive = body
            try:
                await self.wsgi(scope, _disconnect_raises(receive), _with_headers(send))
            except ClientDisconnected as exc:
                log.info("WebDAV %s %s ended: %s", scope["method"], scope["path"], exc)
            return
        pumped = PumpedBody(asyncio.get_running_loop())
        pump = asyncio.create_task(pumped.pump(receive))
        try:
            await self.wsgi({**scope, "speicher.body": pumped}, receive, _with_headers(send))
        except ClientDisconnected as exc:
            log.info("WebDAV PUT %s ended: %s", scope["path"], exc)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _read_small(self, scope: Scope, user: str) -> tuple[Entry, bytes, str] | None:
        """A small file a plain GET asks for, read in one go without wsgidav (its entry, bytes
        and type); None for everything else (folders, larger files, anything refused or
        missing), which wsgidav answers. Access is the same ShareFS view's."""
        try:
            path = util.normalize_path(scope["path"].removeprefix(MOUNT))
        except DAVError:
            return None
        share, rel = split(path)
        if not share or not rel:
            return None
        client = scope.get("client")
        request = Request(self.files, user, client[0] if client else None)
        try:
            view = request.view(share)
            if view is None:
                return None
            entry = view.stat(rel)
            if entry.is_dir or entry.size > FAST_READ:
                return None
            with view.open_read(rel) as file:
                data = file.read(0, entry.size)
            if len(data) != entry.size:
                return None  # changed meanwhile: wsgidav answers
            return entry, data, util.guess_mime_type(path, self.config)
        except (FsError, DAVError):
            return None
        finally:
            request.close()

    def _plain_write(self, headers: Headers) -> bool:
        """A small PUT without conditions while no lock exists at all: the fast path's case
        (a lock, anywhere, sends every write through wsgidav's lock checks)."""
        length = headers.get("content-length", "").strip()
        if not length.isdigit() or int(length) > FAST_WRITE:
            return False
        if any(name in headers for name in WRITE_CONDITIONS):
            return False
        # wsgidav's in-memory storage (LockStorageDict) keeps its locks, and the URLs they
        # cover, in one dict: empty means no lock anywhere. Its get_lock_list("/") would walk
        # that dict while purging expired locks from it, and fails then; len() needs no walk.
        # Another storage, whose insides are unknown, sends every PUT through wsgidav.
        table = getattr(getattr(self.locks, "storage", None), "_dict", None)
        return isinstance(table, dict) and not table

    def _write_small(self, scope: Scope, user: str, body: bytes) -> tuple[bool, Entry] | None:
        """A small PUT written in one go without wsgidav, through the same ShareFS upload
        (atomic, durable as the share says, the same events): whether the file is new, and
        what it is now. None for everything else, unwritten: a folder there, no such folder,
        read-only access, snapshots, any error (wsgidav then answers with the same bytes, in
        its terms: 403, 405, 409, 507, ...)."""
        try:
            path = util.normalize_path(scope["path"].removeprefix(MOUNT))
        except DAVError:
            return None
        share, rel = split(path)
        if not share or not rel or rel.split("/", 1)[0] == SNAPSHOTS_DIR:
            return None
        client = scope.get("client")
        request = Request(self.files, user, client[0] if client else None)
        try:
            view = request.view(share)
            if view is None or not view.writable:
                return None
            try:
                created = False
                if view.stat(rel).is_dir:
                    return None
            except FsError as exc:
                if exc.code != errno.ENOENT:
                    return None
                created = True
            upload = view.upload(rel, keep_meta=True, digest=False)
            try:
                upload.write(body)
            except BaseException:
                upload.abort()
                raise
            return created, upload.commit()
        except (FsError, DAVError):
            return None
        finally:
            request.close()

    async def _user(self, scope: Scope, headers: Headers) -> str:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            raise Unauthorized("log in with a Speicher user's name and password")
        name, password = basic_credentials(value.strip())
        key = self.cache.key(name, password)
        user = self.cache.get(key)
        if user is not None:
            return user
        pending = self._checks.get(key)
        if pending is not None:  # the same credentials are being checked: wait for it
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._checks[key] = future
        try:
            generation = self.db.generation_of(LOGIN_TABLES)
            client = scope.get("client")
            address = client[0] if client else None
            info = await self.logins.login(
                name, password, address, queue=LOGIN_QUEUE, protocol="webdav"
            )
            self.cache.put(key, info.name, generation)
            future.set_result(info.name)
            return info.name
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning if nobody waited
            raise
        finally:
            del self._checks[key]


def _without_ranges(scope: Scope) -> tuple[Scope, Headers]:
    """A request for several ranges as one for the whole file (wsgidav would send only one of
    them as if it were all; RFC 9110 14.2 lets a server ignore Range and answer 200)."""
    raw = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"range", b"if-range")]
    scope = {**scope, "headers": raw}
    return scope, Headers(scope=scope)


def _plain_read(headers: Headers) -> bool:
    """A GET or HEAD without a body, ranges, conditions or Depth: the fast path's case."""
    if any(name in headers for name in CONDITIONAL):
        return False
    return headers.get("content-length", "0").strip() == "0" and "transfer-encoding" not in headers


async def _send_file(send: Send, entry: Entry, data: bytes, mime: str, head: bool) -> None:
    """The answer wsgidav gives to a plain GET of a file, with the same headers."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(data)).encode()),
                (b"last-modified", util.get_rfc1123_time(entry.mtime).encode()),
                (b"content-type", mime.encode("latin1")),
                (b"etag", f'"{entry.etag}"'.encode()),
                (b"accept-ranges", b"bytes"),
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else data})


async def _send_written(send: Send, created: bool, entry: Entry) -> None:
    """wsgidav's answer to a PUT (through PlainErrors): 201 with a line, or 204; the ETag."""
    body = b"201 Created\n" if created else b""
    headers = [(b"content-length", str(len(body)).encode()), (b"etag", f'"{entry.etag}"'.encode())]
    if created:
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await send(
        {
            "type": "http.response.start",
            "status": 201 if created else 204,
            "headers": [*headers, *HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, length: int) -> bytes | None:
    """A body of ``length`` bytes at most, whole; None if the client went away first."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False) or len(body) > length:
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` once (read already), then what the client sends."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _same_origin(origin: str, scope: Scope, host: str) -> bool:
    parts = urlsplit(origin)
    wanted = urlsplit(f"{scope.get('scheme', 'http')}://{host}")
    defaults = {"http": 80, "https": 443}
    if parts.scheme not in defaults or not parts.hostname:
        return False
    try:
        return (parts.hostname, parts.port or defaults[parts.scheme]) == (
            wanted.hostname,
            wanted.port or defaults.get(wanted.scheme, 0),
        )
    except ValueError:
        return False


async def _answer(
    send: Send, status: int, text: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = f"{status} {_reason(status)}: {text}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *HEADERS,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _reason(status: int) -> str:
    return {
        200: "OK",
        401: "Unauthorized",
        403: "Forbidden",
        413: "Content Too Large",
        414: "URI Too Long",
        429: "Too Many Requests",
    }.get(status, "Error")


async def _small_body(
    scope: Scope, headers: Headers, receive: Receive
) -> tuple[Scope, Receive] | None:
    """A non-PUT request's body (XML), read whole up to ``MAX_BODY``; None when larger."""
    length = headers.get("content-length")
    if length is not None:
        if length.strip().isdigit() and int(length) > MAX_BODY:
            return None
        return scope, receive
    if "transfer-encoding" not in headers:
        return scope, receive
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return scope, receive  # nobody waits for an answer
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body", False):
            break
    raw = [(k, v) for k, v in scope["headers"] if k.lower() != b"transfer-encoding"]
    raw.append((b"content-length", str(len(body)).encode()))
    return {**scope, "headers": raw}, _replay(bytes(body), receive)


def _disconnect_raises(receive: Receive) -> Receive:
    """A receive that raises (once) when the client went away, so wsgidav's reader fails
    instead of taking it for the end of the body."""
    raised = False

    async def checked() -> Message:
        nonlocal raised
        message = await receive()
        if message["type"] == "http.disconnect" and not raised:
            raised = True
            raise ClientDisconnected("the client went away")
        return message

    return checked


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":  # uvicorn adds the one Date header
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
            message = {**message, "headers": [*kept, *HEADERS]}
        await send(message)

    return sending
