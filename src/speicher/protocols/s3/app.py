"""The S3 endpoint: an ASGI app on its own port (``s3_port``, 9000), path-style addressing.

A bucket is a share with S3 on (``speicher share update NAME --s3 on``); an object is a file
of it, reached through ShareFS like every other protocol, as the user whose access key signed
the request (AWS Signature V4, :mod:`speicher.protocols.s3.sigv4`). What a user may do is what
their grants say: ro users read, nobody sees a bucket they have no grant on.

What is built and what is not: docs/s3.md (issue 9 is in progress: versioning and Object
Lock are not built yet). This module routes a request and answers the plain object
operations; the others live in modules of their own (multipart, copy, deleteobjects,
tagging, checksums, bucketconfig, buckets, empty, sosapi).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import datetime as dt
import email.utils
import errno
import functools
import hashlib
import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape

from starlette.types import Message, Receive, Scope, Send

from speicher.access.s3keys import S3KeyService
from speicher.files import Entry, FsError, ReadFile, ShareFS, ShareView, Upload
from speicher.protocols.s3 import (
    bucketconfig,
    buckets,
    checksums,
    copy,
    deleteobjects,
    empty,
    forward,
    locks,
    multipart,
    sigv4,
    sosapi,
    tagging,
    versions,
)
from speicher.protocols.s3.bucketconfig import BucketConfig
from speicher.protocols.s3.errors import S3Error, document, from_fs
from speicher.protocols.s3.objects import (
    META_NAME,
    STORED_HEADERS,
    Listed,
    ObjectMeta,
    fresh,
    key_path,
    meta_of,
    stored_meta,
    walk,
)
from speicher.protocols.s3.payload import Payload, Writer

if TYPE_CHECKING:
    from speicher.services import Services

log = logging.getLogger(__name__)

PROTOCOL = "s3"
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
WORKERS = 32
CHUNK = 1024 * 1024
# a PutObject body up to this size is read whole before anything is written (one thread hop)
SMALL_PUT = 1024 * 1024
MAX_PUT = 5 * 1024**3  # AWS's limit of one PutObject
MAX_KEYS = 1000
# query parameters that name another operation on a bucket or object than the plain one
SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "attributes",
        "cors",
        "delete",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "partNumber",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)


# request ids: unique per process (a random half) and per request (a counter), without a
# system call for randomness each time
_REQUEST_PREFIX = secrets.token_hex(4).upper()
_REQUESTS = itertools.count(1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(ns: int) -> str:
    stamp = dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _http_date(ns: int) -> str:
    return _http_date_of(ns // 1_000_000_000)


@functools.lru_cache(maxsize=4096)
def _http_date_of(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


class S3App:
    """S3 over ShareFS. ``relay_to``: in a worker process (``workers.py``), the daemon's
    control socket, to which the requests that change shares go (``forward.py``);
    ``trusted_relay``: the daemon's app on that socket, which takes the client's address from
    the relayed request."""

    def __init__(
        self,
        services: Services,
        clock: Callable[[], dt.datetime] = _now,
        *,
        relay_to: Path | None = None,
        trusted_relay: bool = False,
    ) -> None:
        self.services = services
        self.relay_to = relay_to
        self.trusted_relay = trusted_relay
        self.files: ShareFS = services.files
        self.keys: S3KeyService = services.s3_keys
        self.region = services.settings.s3_region
        self.clock = clock
        self.pool = concurrent.futures.ThreadPoolExecutor(WORKERS, "s3")
        # the hashes of uploads' pieces, beside their writes (never waits for anything)
        self.hashers = concurrent.futures.ThreadPoolExecutor(WORKERS, "s3-hash")
        self.config = BucketConfig(services.db)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request_id = f"{_REQUEST_PREFIX}{next(_REQUESTS) & 0xFFFFFFFF:08X}"
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        resource = unquote(raw_path.partition("?")[0])
        body = _Body(receive)
        head = scope["method"] == "HEAD"
        send = _with_request_id(send, request_id)
        origin = _header(scope, b"origin")
        try:
            if scope["method"] == "OPTIONS":
                await self._preflight(scope, raw_path, origin, send)
                return
            if origin is not None:
                send = self._with_cors(send, scope, raw_path, origin)
            await self._handle(scope, body.receive, send, raw_path, request_id)
        except S3Error as exc:
            await _error(send, exc, resource, request_id, head, body.pending(scope))
        except sigv4.SignatureError as exc:
            error = S3Error(exc.code, exc.message, exc.status)
            await _error(send, error, resource, request_id, head, body.pending(scope))
        except FsError as exc:
            await _error(send, from_fs(exc), resource, request_id, head, body.pending(scope))

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, raw_path: str, request_id: str
    ) -> None:
        if self.relay_to is not None and scope["method"] in ("PUT", "DELETE"):
            bucket, key = self._target_of(scope, raw_path)
            if bucket and forward.relayed(scope["method"], key):
                await forward.relay(self.relay_to, scope, receive, send)
                return
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:  # several of one name: one, joined with "," (RFC 9110)
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        raw_query = scope.get("query_string", b"").decode("latin-1")
        verified = sigv4.verify(
            scope["method"], raw_path, raw_query, headers, self._secret, self.clock(), self.region
        )
        if verified is None:
            raise S3Error("AccessDenied", "Anonymous access is not allowed; sign the request.")
        signer = self.keys.signer(verified.access_key)
        if signer is None:  # deleted since verify() found it
            raise S3Error(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        try:
            path = unquote(raw_path.partition("?")[0], errors="strict")
        except UnicodeDecodeError:
            raise S3Error(
                "InvalidURI", "Couldn't parse the specified URI: keys are UTF-8."
            ) from None
        bucket, key = self._address(headers.get("host", ""), path)
        method = scope["method"]
        client = scope.get("client")
        address = client[0] if client else None
        relayed_for = headers.pop(forward.CLIENT_HEADER.decode(), None)
        if self.trusted_relay and relayed_for:
            address = relayed_for
        context = _Context(self, signer.user, address, request_id, headers, query, verified)
        if not bucket:
            if method != "GET":
                raise S3Error("MethodNotAllowed", "The specified method is not allowed.")
            await _send(send, 200, await self._run(context.list_buckets))
            return
        if not key:
            await self._bucket(context, method, bucket, receive, send)
            return
        await self._object(context, method, bucket, key, receive, send)

    def _target_of(self, scope: Scope, raw_path: str) -> tuple[str, str]:
        """The bucket and key a request names, before its signature is checked (empty when
        the path is not UTF-8: refused later as InvalidURI)."""
        try:
            path = unquote(raw_path.partition("?")[0], errors="strict")
        except UnicodeDecodeError:
            return "", ""
        return self._address((_header(scope, b"host") or ""), path)

    def _bucket_of(self, scope: Scope, raw_path: str) -> str:
        return self._target_of(scope, raw_path)[0]

    async def _preflight(self, scope: Scope, raw_path: str, origin: str | None, send: Send) -> None:
        """A browser's CORS preflight: allowed by the bucket's rules, or 403."""
        method = _header(scope, b"access-control-request-method")
        if origin is None or method is None:
            raise S3Error(
                "InvalidRequest", "A CORS preflight needs Origin and Access-Control-Request-Method."
            )
        bucket = self._bucket_of(scope, raw_path)
        rules = await self._run(self.config.cors, bucket) if bucket else []
        asked = [
            h.strip().lower()
            for h in (_header(scope, b"access-control-request-headers") or "").split(",")
            if h.strip()
        ]
        headers = bucketconfig.preflight(rules, origin, method, asked)
        headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": 200, "headers": _base(headers)})
        await send({"type": "http.response.body", "body": b""})

    def _with_cors(self, send: Send, scope: Scope, raw_path: str, origin: str) -> Send:
        """Answers to a request from a page of ``origin`` carry the CORS headers the bucket's
        rules give it (remembered rules: no database round trip per request)."""
        bucket = self._bucket_of(scope, raw_path)
        method = scope["method"]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and bucket:
                extra = bucketconfig.response_headers(self.config.cors(bucket), origin, method)
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return sending

    def _address(self, host: str, path: str) -> tuple[str, str]:
        """Bucket and key: virtual-hosted style (``bucket.<s3_domain>``, where a domain is
        set) or path style (``/bucket/key``)."""
        domain = self.services.settings.s3_domain
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.lower().rstrip(".")
        if domain and name.endswith("." + domain):
            return name[: -len(domain) - 1], path[1:] if path.startswith("/") else path
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key

    def _secret(self, access_key: str) -> str | None:
        signer = self.keys.signer(access_key)
        return None if signer is None else signer.secret

    async def _run(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, call, *args)

    async def _bucket(
        self, context: _Context, method: str, bucket: str, receive: Receive, send: Send
    ) -> None:
        if {"cors", "tagging"} & context.query.keys():
            await self._bucket_config(context, method, bucket, receive, send)
            return
        if {"versioning", "versions"} & context.query.keys() or (
            "object-lock" in context.query
            and (method == "PUT" or self.config.object_lock(bucket).get("enabled"))
        ):
            await self._versioning(context, method, bucket, receive, send)
            return
        if method == "GET" and empty.answers(set(context.query)):
            await self._run(context.head_bucket, bucket)  # the bucket's own 404 or 403 first
            await _send(send, 200, empty.document(set(context.query), context.user))
            return
        if method == "HEAD":
            await self._run(context.head_bucket, bucket)
            await _send(send, 200, b"", extra=[(b"x-amz-bucket-region", self.region.encode())])
        elif method == "GET" and "location" in context.query:
            await self._run(context.head_bucket, bucket)
            region = "" if self.region == "us-east-1" else escape(self.region)
            body = f'<LocationConstraint xmlns="{XMLNS}">{region}</LocationConstraint>'
            await _send(send, 200, _xml(body))
        elif method == "POST" and "delete" in context.query:
            await _send(send, 200, await deleteobjects.delete_objects(context, bucket, receive))
        elif method == "GET" and "uploads" in context.query:
            await multipart.bucket_operation(context, bucket, send)
        elif SUBRESOURCES & context.query.keys():
            raise S3Error("NotImplemented", "This bucket operation is not built yet.")
        elif method == "GET":
            await _send(send, 200, await self._run(context.list_objects, bucket))
        elif method == "PUT" and not context.query:
            await self._run(self._create_bucket, context, bucket)
            await _send(send, 200, b"", extra=[(b"location", f"/{bucket}".encode())])
        elif method == "DELETE" and not context.query:
            await self._run(buckets.delete, self.services, context.user, bucket)
            await _send(send, 204, b"")
        else:
            raise S3Error("NotImplemented", "This bucket operation is not built yet.")

    async def _versioning(
        self, context: _Context, method: str, bucket: str, receive: Receive, send: Send
    ) -> None:
        """Get/PutBucketVersioning, ListObjectVersions and Get/PutObjectLockConfiguration."""
        if "object-lock" in context.query:
            await self._object_lock(context, method, bucket, receive, send)
            return
        if "versions" in context.query:
            if method != "GET":
                raise S3Error("MethodNotAllowed", "The specified method is not allowed.")
            await _send(send, 200, await self._run(versions.list_versions, context, bucket))
            return
        view = await self._run(context.view, bucket)
        writable = view.writable
        view.close()
        if method == "GET":
            await _send(send, 200, versions.config_xml(self.config.versioning(bucket)))
            return
        if method != "PUT":
            raise S3Error("MethodNotAllowed", "The specified method is not allowed.")
        if not writable:
            raise S3Error("AccessDenied", "Access Denied")
        body = await _small_body(context, receive)
        state = versions.parse_config(body)
        if state == versions.SUSPENDED and self.config.object_lock(bucket).get("enabled"):
            raise S3Error(
                "InvalidBucketState",
                "An Object Lock configuration is present on this bucket, so the versioning "
                "state cannot be changed.",
                409,
            )
        if state:
            await self._run(self.config.set_versioning, bucket, state)
        await _send(send, 200, b"")

    def _create_bucket(self, context: _Context, bucket: str) -> None:
        buckets.create(self.services, context.user, bucket)
        lock = context.headers.get("x-amz-bucket-object-lock-enabled", "").lower()
        if lock == "true":  # versioning forced on, as AWS
            self.config.set_versioning(bucket, versions.ENABLED)
            self.config.set_object_lock(bucket, {"enabled": True})

    async def _object_lock(
        self, context: _Context, method: str, bucket: str, receive: Receive, send: Send
    ) -> None:
        """Get/PutObjectLockConfiguration (the GET of a bucket without one: empty.py)."""
        view = await self._run(context.view, bucket)
        writable = view.writable
        view.close()
        if method == "GET":
            await _send(send, 200, locks.config_xml(self.config.object_lock(bucket)))
            return
        if method != "PUT":
            raise S3Error("MethodNotAllowed", "The specified method is not allowed.")
        if not writable:
            raise S3Error("AccessDenied", "Access Denied")
        config = locks.parse_config(await _small_body(context, receive))
        if not self.config.object_lock(bucket).get("enabled") and (
            self.config.versioning(bucket) != versions.ENABLED
        ):
            raise S3Error(
                "InvalidBucketState",
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
                409,
            )
        await self._run(self.config.set_object_lock, bucket, config)
        await _send(send, 200, b"")

    async def _bucket_config(
        self, context: _Context, method: str, bucket: str, receive: Receive, send: Send
    ) -> None:
        """Put/Get/DeleteBucketCors and Put/Get/DeleteBucketTagging."""
        cors = "cors" in context.query
        view = await self._run(context.view, bucket)
        writable = view.writable
        view.close()
        if method == "GET":
            if cors:
                rules = await self._run(self.config.cors, bucket)
                if not rules:
                    raise S3Error(
                        "NoSuchCORSConfiguration", "The CORS configuration does not exist", 404
                    )
                await _send(send, 200, bucketconfig.cors_xml(rules))
            else:
                tags = await self._run(self.config.tags, bucket)
                if not tags:
                    raise S3Error("NoSuchTagSet", "The TagSet does not exist", 404)
                await _send(send, 200, bucketconfig.tags_xml(tags))
            return
        if method not in ("PUT", "DELETE"):
            raise S3Error("MethodNotAllowed", "The specified method is not allowed.")
        if not writable:
            raise S3Error("AccessDenied", "Access Denied")
        if method == "DELETE":
            await self._run(self.config.set_cors if cors else self.config.set_tags, bucket, None)
            await _send(send, 204, b"")
            return
        body = await _small_body(context, receive)
        _check_md5(
            context.headers.get("content-md5"), hashlib.md5(body, usedforsecurity=False).digest()
        )
        if cors:
            await self._run(self.config.set_cors, bucket, bucketconfig.parse_cors(body))
        else:
            await self._run(self.config.set_tags, bucket, bucketconfig.parse_tags(body))
        await _send(send, 200 if cors else 204, b"")

    async def _object(
        self, context: _Context, method: str, bucket: str, key: str, receive: Receive, send: Send
    ) -> None:
        path, folder = key_path(key)
        if {"uploads", "uploadId"} & context.query.keys():
            await multipart.object_operation(
                context, method, bucket, key, path, folder, receive, send
            )
            return
        if method == "PUT" and "x-amz-copy-source" in context.headers:
            result = await self._run(copy.copy_object, context, bucket, path, folder)
            await _send(send, 200, result, extra=context.version_headers())
            return
        if "tagging" in context.query:
            status, body = await tagging.handle(context, method, bucket, path, folder, receive)
            await _send(send, status, body)
            return
        if {"retention", "legal-hold"} & context.query.keys():
            body = await _small_body(context, receive) if method == "PUT" else b""
            result = await self._run(versions.lock_operation, context, method, bucket, key, body)
            await _send(send, 200, result)
            return
        allowed = {"versionId", "partNumber"} if method in ("GET", "HEAD") else {"versionId"}
        if SUBRESOURCES & (context.query.keys() - allowed):
            raise S3Error("NotImplemented", "This object operation is not built yet.")
        if key in sosapi.KEYS:
            await self._sosapi(context, method, bucket, key, send)
            return
        if method in ("GET", "HEAD"):
            await context.get_object(bucket, path, folder, method == "HEAD", send, key)
        elif method == "PUT":
            await self._put(context, bucket, path, folder, receive, send)
        elif method == "DELETE":
            await self._delete(context, bucket, path, folder, send)
        else:
            raise S3Error("MethodNotAllowed", "The specified method is not allowed.")

    async def _put(
        self,
        context: _Context,
        bucket: str,
        path: str,
        folder: bool,
        receive: Receive,
        send: Send,
    ) -> None:
        if "versionId" in context.query:
            raise S3Error("InvalidArgument", "A PUT cannot name a version id.")
        etag = await context.put_object(bucket, path, folder, receive)
        extra = [
            (b"etag", f'"{etag}"'.encode()),
            *checksums.response_headers(context.put_checksums),
            *context.version_headers(),
        ]
        await _send(send, 200, b"", extra=extra)

    async def _delete(
        self, context: _Context, bucket: str, path: str, folder: bool, send: Send
    ) -> None:
        version = context.query.get("versionId")
        deleted = await self._run(context.delete_object, bucket, path, folder, version)
        extra = []
        if deleted is not None and deleted.version_id is not None:
            extra.append((b"x-amz-version-id", deleted.version_id.encode()))
        if deleted is not None and deleted.marker:
            extra.append((b"x-amz-delete-marker", b"true"))
        await _send(send, 204, b"", extra=extra)

    async def _sosapi(
        self, context: _Context, method: str, bucket: str, key: str, send: Send
    ) -> None:
        """Veeam's SOSAPI objects: read only, made on each request."""
        if method not in ("GET", "HEAD"):
            raise S3Error(
                "AccessDenied", "The SOSAPI objects are the server's; they are read only."
            )
        view = await self._run(context.view, bucket)
        try:
            data, etag = await self._run(sosapi.content, view, key)
        finally:
            view.close()
        headers = [(b"etag", f'"{etag}"'.encode()), (b"content-type", b"application/xml")]
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": _base(headers)})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else data})


def _current_meta(
    view: ShareView, path: str, entry: Entry, file: ReadFile | None, inline: bool
) -> ObjectMeta:
    """The metadata of the share's file; ``inline`` (in the event loop): only what is stored,
    ``_Blocking`` where an MD5 is to compute or the key is a folder."""
    if not inline:
        return meta_of(view, path, entry, file)
    stored = stored_meta(view, path, file)
    if entry.is_dir or stored is None or not fresh(stored, entry):
        raise _Blocking
    return stored


class _Blocking(Exception):
    """Finding the object would wait for the disk: do it in a worker thread instead."""


@dataclass
class _Answer:
    """What a GET or HEAD answers: its status and headers, the part of the object to send
    ([offset, end)), the first piece of it and, where more follows, the open file."""

    status: int
    headers: list[tuple[bytes, bytes]]
    offset: int
    end: int
    first: bytes = b""
    file: ReadFile | None = None

    def read_first(self, file: ReadFile, cached_only: bool = False) -> ReadFile | None:
        """The first piece from ``file``; where more follows, the answer keeps the file
        (None: the caller closes it). ``cached_only``: nothing (the sender reads it in a
        thread) when the piece is not in the page cache."""
        size = min(CHUNK, self.end - self.offset)
        if cached_only:
            first = file.read_cached(self.offset, size)
            if first is None:
                self.file = file
                return None
            self.first = first
        else:
            self.first = file.read(self.offset, size)
        self.offset += len(self.first)
        if self.offset >= self.end or not self.first:
            return file
        self.file = file
        return None


class _Context:
    """One request: who, from where, and what it asked."""

    def __init__(
        self,
        app: S3App,
        user: str,
        address: str | None,
        request_id: str,
        headers: dict[str, str],
        query: dict[str, str],
        verified: sigv4.Verified,
    ) -> None:
        self.app = app
        self.user = user
        self.address = address
        self.request_id = request_id
        self.headers = headers
        self.query = query
        self.verified = verified
        self.put_checksums: dict[str, str] = {}  # what a PutObject stored, for its answer
        # the version a write made (None: the bucket is not versioned) and a copy's source's
        self.put_version: str | None = None
        self.source_version: str | None = None

    def versioning(self, bucket: str) -> str:
        return self.app.config.versioning(bucket)

    def version_headers(self) -> list[tuple[bytes, bytes]]:
        out = []
        if self.put_version is not None:
            out.append((b"x-amz-version-id", self.put_version.encode()))
        if self.source_version is not None:
            out.append((b"x-amz-copy-source-version-id", self.source_version.encode()))
        return out

    def view(self, bucket: str) -> ShareView:
        try:
            view = self.app.files.open(self.user, bucket, PROTOCOL, self.address)
        except FsError as exc:
            if exc.code == errno.ENOENT:  # no such share for this user, or S3 is off
                raise S3Error("NoSuchBucket", "The specified bucket does not exist.") from None
            raise
        try:
            # a bucket with Object Lock has sealed folders (files/seals.py) that S3 may change
            view.seals = bool(self.app.config.object_lock(bucket).get("enabled"))
        except BaseException:
            view.close()
            raise
        return view

    def head_bucket(self, bucket: str) -> None:
        self.view(bucket).close()

    def owner(self) -> str:
        who = escape(self.user)
        return f"<Owner><ID>{who}</ID><DisplayName>{who}</DisplayName></Owner>"

    def list_buckets(self) -> bytes:
        names = [name for name, _access in self.app.files.shares(self.user, PROTOCOL)]
        items = "".join(
            f"<Bucket><Name>{escape(n)}</Name><CreationDate>{_iso(self._created(n))}"
            "</CreationDate></Bucket>"
            for n in names
        )
        return _xml(
            f'<ListAllMyBucketsResult xmlns="{XMLNS}">{self.owner()}<Buckets>{items}</Buckets>'
            "</ListAllMyBucketsResult>"
        )

    def _created(self, bucket: str) -> int:
        with contextlib.suppress(FsError), self.view(bucket) as view:
            return view.stat("/").mtime_ns
        return 0

    def list_objects(self, bucket: str) -> bytes:
        wanted = _Listing.of(self.query)
        view = self.view(bucket)
        try:
            found = wanted.collect(view)
            objects = [
                (item, meta_of(view, "/" + item.key.rstrip("/"), item.entry))
                for item in found.contents
            ]
        finally:
            view.close()
        return _xml(wanted.render(bucket, found, objects, self.owner()))

    async def get_object(
        self, bucket: str, path: str, folder: bool, head: bool, send: Send, key: str = ""
    ) -> None:
        """GetObject and HeadObject. Everything up to the first piece of the body is one call
        in a worker thread (the share, the version, the file, its metadata, the conditions,
        the first megabyte), so a small object costs one thread hop, not six."""
        run = self.app._run
        found: _Answer | None = None
        if self._inline(bucket):
            with contextlib.suppress(_Blocking):
                found = self._find_object(bucket, path, folder, head, key, inline=True)
        if found is None:
            found = await run(self._find_object, bucket, path, folder, head, key)
        await send(
            {"type": "http.response.start", "status": found.status, "headers": found.headers}
        )
        file, offset, end = found.file, found.offset, found.end
        if file is None:
            await send({"type": "http.response.body", "body": found.first})
            return
        try:
            await send({"type": "http.response.body", "body": found.first, "more_body": True})
            while offset < end:
                chunk = await run(file.read, offset, min(CHUNK, end - offset))
                if not chunk:
                    break
                offset += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": offset < end})
            if offset < end:
                await send({"type": "http.response.body", "body": b""})
        finally:
            file.close()

    def _inline(self, bucket: str) -> bool:
        """Whether a GET or HEAD may look for its object in the event loop's own thread: when
        everything it needs from the database is in memory (the grant, the bucket's
        settings) and it names no version. Then only the metadata calls (open, fstat,
        getxattr) run in the loop, as nginx makes them; reading the bytes from the disk does
        not (see ``_find_object``)."""
        return (
            "versionId" not in self.query
            and self.app.files.knows(self.user, bucket, PROTOCOL)
            and self.app.config.knows(bucket)
        )

    def _find_object(
        self, bucket: str, path: str, folder: bool, head: bool, key: str, inline: bool = False
    ) -> _Answer:
        """The answer to a GET or HEAD. ``inline``: called in the event loop, which must not
        wait for a disk: ``_Blocking`` where it would (a versioned bucket, metadata to compute
        anew), and the first piece only if it is in the page cache."""
        with self.view(bucket) as view:
            if inline and not folder and self.versioning(view.share):
                raise _Blocking
            chosen: versions.Version | None = self._version_of(view, path, folder, key)
            file: ReadFile | None = None
            if chosen is not None:
                entry, meta = chosen.entry, chosen.meta
            elif folder:
                entry = view.stat(path)
                if not entry.is_dir:
                    raise S3Error("NoSuchKey", "The specified key does not exist.")
            else:
                try:
                    file = view.open_read(path)
                except FsError as exc:
                    if exc.code == errno.EISDIR:
                        raise S3Error("NoSuchKey", "The specified key does not exist.") from None
                    raise
                entry = file.entry
            try:
                if chosen is None:
                    meta = _current_meta(view, path, entry, file, inline)
                found = self._answer(entry, meta, chosen)
                if head or entry.is_dir or found.offset == found.end:
                    return found
                if file is None:  # a version: archived, or the share's file
                    assert chosen is not None
                    current = chosen.current
                    file = view.open_read(path) if current else versions.open_archived(view, chosen)
                file = found.read_first(file, cached_only=inline)
                return found
            finally:
                if file is not None:
                    file.close()

    def _answer(self, entry: Entry, meta: ObjectMeta, chosen: versions.Version | None) -> _Answer:
        """The status and headers of a GET or HEAD of ``entry``, and the bytes to send."""
        etag = f'"{meta.etag}"'
        _check_conditions(self.headers, etag, entry.mtime_ns)
        start, end = 0, entry.size
        status = 200
        extra: list[tuple[bytes, bytes]] = [
            (b"etag", etag.encode()),
            (b"last-modified", _http_date(entry.mtime_ns).encode()),
            (b"accept-ranges", b"bytes"),
        ]
        wanted = self.headers.get("range")
        part = _part_range(self.query.get("partNumber"), wanted, meta, entry)
        if part is not None:
            (start, end), count = part
            if count > 1:  # a part of a multipart object; a single-part object is whole
                status = 206
                extra.append((b"content-range", f"bytes {start}-{end - 1}/{entry.size}".encode()))
            extra.append((b"x-amz-mp-parts-count", str(count).encode()))
        elif wanted and not entry.is_dir:
            found = _range(wanted, entry.size)
            if found is not None:
                start, end = found
                status = 206
                extra.append((b"content-range", f"bytes {start}-{end - 1}/{entry.size}".encode()))
        extra += self._object_headers(meta, chosen, whole=status == 200)
        extra.append((b"content-length", str(end - start).encode()))
        return _Answer(status, _base(extra), start, end)

    def _object_headers(
        self, meta: ObjectMeta, chosen: versions.Version | None, whole: bool
    ) -> list[tuple[bytes, bytes]]:
        """A GET's or HEAD's headers from the object's metadata."""
        extra = []
        stored = dict(meta.headers)
        for name in STORED_HEADERS:
            override = self.query.get(f"response-{name}")
            value = override if override is not None else stored.get(name)
            if value is None and name == "content-type":
                value = "binary/octet-stream"  # what S3 says of an object stored without one
            if value is not None:
                extra.append((name.encode(), value.encode("latin-1", "replace")))
        for name, value in meta.user.items():
            extra.append((f"x-amz-meta-{name}".encode(), value.encode("latin-1", "replace")))
        extra += tagging.count_header(meta)
        extra += checksums.for_get(self.headers, meta.checksums, whole=whole)
        if chosen is not None:
            extra.append((b"x-amz-version-id", chosen.id.encode()))
        extra += locks.headers(meta)
        return extra

    def _version_of(
        self, view: ShareView, path: str, folder: bool, key: str
    ) -> versions.Version | None:
        """The version a GET or HEAD asks for, in a bucket that is or was versioned or with a
        ``versionId`` (None: the file itself, as in a bucket never versioned)."""
        version = self.query.get("versionId")
        if folder or (version is None and not self.versioning(view.share)):
            if version not in (None, versions.NULL):
                versions.check_id(version or "")
                raise S3Error("NoSuchVersion", "The specified version does not exist.", 404)
            return None
        chosen = versions.find(view, key, version)
        if chosen is None:
            raise S3Error("NoSuchKey", "The specified key does not exist.")
        return chosen

    async def put_object(self, bucket: str, path: str, folder: bool, receive: Receive) -> str:
        length = _put_length(self.headers)
        run = self.app._run
        if folder:
            view = await run(self.view, bucket)
            try:
                if not view.writable:
                    raise S3Error("AccessDenied", "Access Denied")
                return await self._put_folder(view, path, receive)
            finally:
                view.close()
        wanted = checksums.Wanted.of(self.headers)
        tags = tagging.from_header(self.headers)
        body = Payload(self.verified, self.headers)
        if length is not None:
            body.length = length if body.decoder is None else None
        sent = self.headers.get("content-length", "")
        if sent.isdigit() and int(sent) <= SMALL_PUT:
            # a small body: read whole, then one call in a worker thread makes the object
            pieces = [piece async for piece in body.pieces(receive)]
            etag: str = await run(self._put_small, bucket, path, body, pieces, wanted, tags)
            return etag
        return await self._put_large(bucket, path, body, wanted, tags, receive)

    def _put_small(
        self,
        bucket: str,
        path: str,
        body: Payload,
        pieces: list[bytes],
        wanted: checksums.Wanted | None,
        tags: dict[str, str] | None,
    ) -> str:
        with self.view(bucket) as view:
            if not view.writable:
                raise S3Error("AccessDenied", "Access Denied")
            upload = _upload(view, path)
            try:
                writer = Writer(body, upload, wanted, None)
                for piece in pieces:
                    writer.piece(piece)
                self._finish_put(upload, body.finish(), writer, wanted, tags)
            except BaseException:
                upload.abort()
                raise
        return writer.md5.hexdigest()

    async def _put_large(
        self,
        bucket: str,
        path: str,
        body: Payload,
        wanted: checksums.Wanted | None,
        tags: dict[str, str] | None,
        receive: Receive,
    ) -> str:
        """A body of more than a piece streams in: while a worker thread writes and hashes
        one piece (the write and the hashes side by side, see :class:`payload.Writer`), the event
        loop receives the next."""
        run = self.app._run

        def start() -> Upload:
            view = self.view(bucket)
            try:
                if not view.writable:
                    raise S3Error("AccessDenied", "Access Denied")
                return _upload(view, path)
            finally:
                view.close()  # the upload holds its folder open itself

        upload: Upload = await run(start)
        writer = Writer(body, upload, wanted, self.app.hashers)
        try:
            await writer.stream(receive, run)
            await run(self._finish_put, upload, await run(body.finish), writer, wanted, tags)
        except BaseException:
            await run(upload.abort)
            raise
        return writer.md5.hexdigest()

    def _finish_put(
        self,
        upload: Upload,
        trailers: dict[str, str],
        writer: Writer,
        wanted: checksums.Wanted | None,
        tags: dict[str, str] | None,
    ) -> None:
        _check_md5(self.headers.get("content-md5"), writer.md5.digest())
        self.put_checksums = checksums.verified(wanted, trailers)
        meta = ObjectMeta(
            etag=writer.md5.hexdigest(),
            headers=_stored(self.headers),
            user=_user_meta(self.headers),
            tags=tags or {},
            checksums=self.put_checksums,
        )
        self._commit_put(upload, meta)

    def _commit_put(self, upload: Upload, meta: ObjectMeta) -> None:
        """A PutObject's bytes become the object, with the lock the request or the bucket
        asks for, as the bucket's new current version where it is versioned."""
        bucket = upload.view.share
        state = self.versioning(bucket)
        locks.apply_request(self, bucket, meta)
        _commit(upload, meta, state)
        if state:
            self.put_version = meta.version_id or versions.NULL

    async def _put_folder(self, view: ShareView, path: str, receive: Receive) -> str:
        """A key ending in ``/``: an empty body makes the folder."""
        if await _small_body(self, receive):
            raise S3Error(
                "InvalidRequest", "A key ending in '/' is a folder: its body must be empty."
            )
        run = self.app._run
        with contextlib.suppress(FsError):
            await run(view.mkdir, path)
        entry: Entry = await run(view.stat, path)
        if not entry.is_dir:
            raise from_fs(FsError(errno.EEXIST, "exists"), path)
        return meta_of(view, path, entry).etag

    def delete_object(
        self, bucket: str, path: str, folder: bool, version: str | None = None
    ) -> versions.Deleted | None:
        state = self.versioning(bucket)
        with self.view(bucket) as view:
            if not view.writable:
                raise S3Error("AccessDenied", "Access Denied")
            if not folder and (state or version is not None):
                bypass = locks.may_bypass(self)
                return versions.delete(view, path[1:], state, version, bypass)
            _delete_plain(view, path, folder)
        return None


def _delete_plain(view: ShareView, path: str, folder: bool) -> None:
    """DeleteObject in a bucket never versioned (and of folder objects)."""
    try:
        if folder:
            view.rmdir(path)
        else:
            entry = view.stat(path)
            if not entry.is_dir:
                view.delete(path)
    except FsError as exc:
        if exc.code not in (errno.ENOENT, errno.ENOTDIR, errno.ENOTEMPTY):  # S3: 204
            raise
    _remove_empty_parents(view, path)


@dataclass
class _Found:
    contents: list[Listed]
    prefixes: list[str]
    truncated: bool
    last: str


@dataclass
class _Listing:
    """A ListObjects (v1) or ListObjectsV2 request's parameters."""

    v2: bool
    prefix: str
    delimiter: str
    url: bool
    max_keys: int
    start: str
    query: dict[str, str]

    @classmethod
    def of(cls, q: dict[str, str]) -> _Listing:
        v2 = q.get("list-type") == "2"
        url = q.get("encoding-type") == "url"
        if "encoding-type" in q and not url:
            raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
        try:
            max_keys = int(q.get("max-keys", str(MAX_KEYS)))
        except ValueError:
            raise S3Error("InvalidArgument", "max-keys must be an integer.") from None
        if max_keys < 0:
            raise S3Error("InvalidArgument", "max-keys must not be negative.")
        if v2 and "continuation-token" in q:
            start = _token_key(q["continuation-token"])
        else:
            start = q.get("start-after" if v2 else "marker", "")
        return cls(
            v2=v2,
            prefix=q.get("prefix", ""),
            delimiter=q.get("delimiter", ""),
            url=url,
            max_keys=min(max_keys, MAX_KEYS),
            start=start,
            query=q,
        )

    def collect(self, view: ShareView) -> _Found:
        found = _Found([], [], False, "")
        for item in walk(view, self.prefix, self.delimiter, self.start):
            if len(found.contents) + len(found.prefixes) >= self.max_keys:
                found.truncated = self.max_keys > 0  # AWS: max-keys=0 is never "truncated"
                break
            if isinstance(item, str):
                found.prefixes.append(item)
                found.last = item
            else:
                found.contents.append(item)
                found.last = item.key
        return found

    def enc(self, text: str) -> str:
        return escape(quote(text, safe="") if self.url else text)

    def render(
        self, bucket: str, found: _Found, objects: list[tuple[Listed, ObjectMeta]], owner: str
    ) -> str:
        q = self.query
        parts = [f'<ListBucketResult xmlns="{XMLNS}"><Name>{escape(bucket)}</Name>']
        parts.append(f"<Prefix>{self.enc(self.prefix)}</Prefix>")
        if self.v2:
            if "continuation-token" in q:
                token = escape(q["continuation-token"])
                parts.append(f"<ContinuationToken>{token}</ContinuationToken>")
            if "start-after" in q:
                parts.append(f"<StartAfter>{self.enc(q['start-after'])}</StartAfter>")
            parts.append(f"<KeyCount>{len(found.contents) + len(found.prefixes)}</KeyCount>")
        else:
            parts.append(f"<Marker>{self.enc(self.start)}</Marker>")
        parts.append(f"<MaxKeys>{self.max_keys}</MaxKeys>")
        if self.delimiter:
            parts.append(f"<Delimiter>{self.enc(self.delimiter)}</Delimiter>")
        if self.url:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append(f"<IsTruncated>{'true' if found.truncated else 'false'}</IsTruncated>")
        if found.truncated and self.v2:
            parts.append(f"<NextContinuationToken>{_token(found.last)}</NextContinuationToken>")
        elif found.truncated and self.delimiter:
            parts.append(f"<NextMarker>{self.enc(found.last)}</NextMarker>")
        shown = owner if not self.v2 or q.get("fetch-owner") == "true" else ""
        for item, meta in objects:
            parts.append(
                f"<Contents><Key>{self.enc(item.key)}</Key>"
                f"<LastModified>{_iso(item.entry.mtime_ns)}</LastModified>"
                f'<ETag>"{meta.etag}"</ETag><Size>{item.entry.size}</Size>'
                f"{shown}<StorageClass>STANDARD</StorageClass></Contents>"
            )
        for common in found.prefixes:
            parts.append(f"<CommonPrefixes><Prefix>{self.enc(common)}</Prefix></CommonPrefixes>")
        parts.append("</ListBucketResult>")
        return "".join(parts)


def _upload(view: ShareView, path: str) -> Upload:
    """An upload of ``path``, making the folders its key names on the way (S3 has none)."""
    try:
        return view.upload(path, keep_meta=False, digest=False)
    except FsError as exc:
        if exc.code == errno.ENOTDIR:
            raise from_fs(FsError(errno.EEXIST, "a part of the key is an object"), path) from None
        if exc.code != errno.ENOENT:
            raise
    parts = path.strip("/").split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        try:
            view.mkdir(folder)
        except FsError as exc:
            if exc.code != errno.EEXIST:
                raise
            if not view.stat(folder).is_dir:
                raise from_fs(
                    FsError(errno.EEXIST, "a part of the key is an object"), path
                ) from None
    return view.upload(path, keep_meta=False, digest=False)


def _remove_empty_parents(view: ShareView, path: str) -> None:
    """Folders an object's delete left empty go too, so its prefix disappears as in S3 (an
    empty folder would list as a folder object)."""
    parts = path.strip("/").split("/")[:-1]
    while parts:
        try:
            view.rmdir("/" + "/".join(parts))
        except FsError:
            return
        parts.pop()


def _commit(upload: Upload, meta: ObjectMeta, versioning: str = "") -> Entry:
    """The stored metadata goes on the temp file with the size and mtime the bytes have now,
    then the bytes become the object (in a versioned bucket: its new current version, the
    file it replaces kept as a version)."""
    if versioning:
        return versions.commit(upload, meta, versioning, "/".join(upload.parts))
    now = upload.stat()
    meta.size, meta.mtime_ns = now.size, now.mtime_ns
    upload.set_meta(META_NAME, meta.dump())
    return upload.commit()


def _put_length(headers: dict[str, str]) -> int | None:
    """The Content-Length of a PutObject (None for a chunked body), within AWS's limits."""
    length = headers.get("content-length")
    chunked = "aws-chunked" in headers.get("content-encoding", "") or (
        headers.get("transfer-encoding", "").lower() == "chunked"
    )
    if length is None:
        if not chunked:
            raise S3Error(
                "MissingContentLength", "You must provide the Content-Length HTTP header."
            )
        return None
    if not length.isdigit():
        raise S3Error("InvalidArgument", "Content-Length must be a number.")
    if int(length) > MAX_PUT + 64 * 1024**2:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    return int(length)


def _stored(headers: dict[str, str]) -> dict[str, str]:
    out = {name: headers[name] for name in STORED_HEADERS if name in headers}
    encoding = out.get("content-encoding", "")
    if "aws-chunked" in encoding:
        rest = ",".join(
            p for p in (x.strip() for x in encoding.split(",")) if p and p != "aws-chunked"
        )
        if rest:
            out["content-encoding"] = rest
        else:
            del out["content-encoding"]
    return out


def _user_meta(headers: dict[str, str]) -> dict[str, str]:
    meta = {k[len("x-amz-meta-") :]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}
    if sum(len(k) + len(v) for k, v in meta.items()) > 2048:
        raise S3Error(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
            400,
        )
    return meta


def _check_md5(given: str | None, digest: bytes) -> None:
    if given is None:
        return
    try:
        wanted = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.") from None
    if len(wanted) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
    if wanted != digest:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")


def _check_conditions(headers: dict[str, str], etag: str, mtime_ns: int) -> None:
    """If-Match and the others, in the order and with the answers RFC 7232 and S3 use."""
    match = headers.get("if-match")
    none_match = headers.get("if-none-match")
    mtime = mtime_ns // 1_000_000_000
    if match is not None and not _etag_in(match, etag):
        raise S3Error(
            "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
        )
    unmodified = _parse_date(headers.get("if-unmodified-since"))
    if match is None and unmodified is not None and mtime > unmodified:
        raise S3Error(
            "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
        )
    if none_match is not None and _etag_in(none_match, etag):
        raise S3Error("NotModified", "Not Modified")
    modified = _parse_date(headers.get("if-modified-since"))
    if none_match is None and modified is not None and mtime <= modified:
        raise S3Error("NotModified", "Not Modified")


def _etag_in(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    bare = etag.strip('"')
    return "*" in tags or any(t.removeprefix("W/").strip('"') == bare for t in tags)


def _parse_date(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError):
        return None


def _part_range(
    number: str | None, range_header: str | None, meta: ObjectMeta, entry: Entry
) -> tuple[tuple[int, int], int] | None:
    """GetObject/HeadObject ``?partNumber=N``: the part's [start, end) and the object's count
    of parts (an object not uploaded in parts, or changed since, is one part); None without
    the parameter."""
    if number is None:
        return None
    if range_header:
        raise S3Error(
            "InvalidRequest", "Cannot specify both Range header and partNumber query parameter."
        )
    if not number.isdigit() or not 1 <= int(number) <= multipart.MAX_PARTS:
        raise S3Error(
            "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive."
        )
    parts = meta.parts if sum(meta.parts) == entry.size and meta.parts else [entry.size]
    n = int(number)
    if n > len(parts):
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416)
    start = sum(parts[: n - 1])
    return (start, start + parts[n - 1]), len(parts)


def _range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b``, ``a-`` or ``-n`` as [start, end); None to send the whole object (a header
    S3 ignores: not bytes, several ranges); InvalidRange when nothing of it is in the object."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:
            n = int(last)
            if n <= 0:
                raise S3Error("InvalidRange", "The requested range is not satisfiable")
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size:
        raise S3Error("InvalidRange", "The requested range is not satisfiable")
    if end <= start:
        return None
    return start, min(end, size)


def _token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8", "surrogatepass")).decode()


def _token_key(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from None


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def _base(extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(b"server", b"Speicher"), *extra]


async def _small_body(context: _Context, receive: Receive) -> bytes:
    """A request's small body (XML settings, a folder's empty body), read whole and checked
    as every body is: its signed payload hash, or its aws-chunked framing and signatures."""
    too_large = S3Error("MalformedXML", "The XML you provided was too large.")
    return await Payload(context.verified, context.headers).whole(
        receive, bucketconfig.MAX_BODY, too_large
    )


async def _send(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = list(extra or [])
    if body:
        headers.append((b"content-type", b"application/xml"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": _base(headers)})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _with_request_id(send: Send, request_id: str) -> Send:
    """Every answer names its request, as AWS's do (``x-amz-request-id``)."""
    tag = (b"x-amz-request-id", request_id.encode())

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0] != b"x-amz-request-id"]
            message = {**message, "headers": [*headers, tag]}
        await send(message)

    return sending


class _Body:
    """The request's receive, noting whether the body has been read to its end."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.ended = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.ended = True
        return message

    def pending(self, scope: Scope) -> bool:
        """Whether a body may still be on its way (the client may even wait for 100
        Continue): an answer now must close the connection, or its bytes would be read as
        the next request."""
        if self.ended:
            return False
        for name, value in scope["headers"]:
            if name.lower() == b"transfer-encoding":
                return True
            if name.lower() == b"content-length":
                return value.strip() not in (b"", b"0")
        return False


async def _error(
    send: Send, exc: S3Error, resource: str, request_id: str, head: bool, close: bool = False
) -> None:
    body = (
        b"" if head or exc.status == 304 else document(exc.code, exc.message, resource, request_id)
    )
    headers = [(b"x-amz-request-id", request_id.encode()), *exc.headers]
    if close:
        headers.append((b"connection", b"close"))
    if body:
        headers.append((b"content-type", b"application/xml"))
    headers.append((b"content-length", str(len(body)).encode()))
    try:
        await send({"type": "http.response.start", "status": exc.status, "headers": _base(headers)})
        await send({"type": "http.response.body", "body": body})
    except Exception:  # the answer had started: the connection ends instead
        log.info("S3: could not send %s for %s", exc.code, resource)
