"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, ListParts,
ListMultipartUploads, CompleteMultipartUpload and AbortMultipartUpload (docs/s3.md,
"Multipart uploads").

An upload in progress lives in the share itself, in ShareFS's internal storage
(:meth:`ShareView.internal`): ``.speicher/s3/uploads/<upload-id>/``, invisible to every
protocol, root's alone. The folder holds ``upload.json`` (key, initiator, initiation time, the
metadata and stored headers given at Create) and one file per part, ``part-NNNNN``, with its
MD5 and size in an xattr written before the part's atomic rename. Nothing is in the database:
what is on the disk is the truth, and a share (its snapshots, its quota) carries its uploads.

Completing assembles the object in an ordinary ShareFS upload (temp file beside the target,
atomic rename, the user's ownership, the usual event) with ``copy_file_range`` from each part:
btrfs shares the parts' extents instead of copying them, and no byte passes through Python.
The object's ETag is S3's multipart ETag, the MD5 of the parts' binary MD5s and ``-N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import itertools
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from starlette.types import Receive, Send

from speicher.files import FsError, InternalFile, InternalFolder, ShareView
from speicher.protocols.s3 import app as s3app
from speicher.protocols.s3 import copy, locks, versions
from speicher.protocols.s3.errors import S3Error, document, from_fs
from speicher.protocols.s3.objects import ObjectMeta, key_path
from speicher.protocols.s3.payload import Payload, Writer

if TYPE_CHECKING:
    from speicher.protocols.s3.app import _Context

UPLOADS = ("s3", "uploads")  # .speicher/s3/uploads/ of the share
RECORD = "upload.json"
PART_ATTR = "s3.part"  # the part's xattr user.speicher.meta.s3.part: {"md5", "size"}
MIN_PART = 5 * 1024**2  # every part but the last (AWS)
MAX_PART = 5 * 1024**3
MAX_PARTS = 10_000
MAX_LISTED = 1000
MAX_COMPLETE_BODY = 4 * 1024 * 1024  # 10,000 parts with long ETags and checksums
# 16 hex digits of the initiation time (so ids sort as uploads were made, as ListMultipartUploads
# lists them) and 32 random URL-safe characters (192 bits: unguessable)
_UPLOAD_ID = re.compile(r"[0-9a-f]{16}[A-Za-z0-9_-]{32}")
_PART_NAME = re.compile(r"part-(\d{5})")
_RESPOND_AFTER = 1.0  # a completion not done by then answers 200 at once and keeps it alive
_KEEPALIVE = 5.0

NO_SUCH_UPLOAD = (
    "The specified upload does not exist. The upload ID may be invalid, or the upload may "
    "have been aborted or completed."
)


@dataclass
class Record:
    """An upload in progress, as ``upload.json`` keeps it."""

    upload_id: str
    key: str
    initiator: str
    created_ns: int
    headers: dict[str, str] = field(default_factory=dict)
    user: dict[str, str] = field(default_factory=dict)
    # the Object Lock the object gets: {"mode", "until", "legal_hold"} (empty: none)
    lock: dict[str, str] = field(default_factory=dict)

    def dump(self) -> bytes:
        return json.dumps(
            {
                "key": self.key,
                "initiator": self.initiator,
                "created_ns": self.created_ns,
                "headers": self.headers,
                "user": self.user,
                "lock": self.lock,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def load(cls, upload_id: str, raw: bytes) -> Record | None:
        try:
            data = json.loads(raw)
            return cls(
                upload_id=upload_id,
                key=str(data["key"]),
                initiator=str(data["initiator"]),
                created_ns=int(data["created_ns"]),
                headers={str(k): str(v) for k, v in data.get("headers", {}).items()},
                user={str(k): str(v) for k, v in data.get("user", {}).items()},
                lock={str(k): str(v) for k, v in data.get("lock", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class Part:
    number: int
    md5: str  # hex
    size: int
    mtime_ns: int

    @property
    def etag(self) -> str:
        return f'"{self.md5}"'


def part_name(number: int) -> str:
    return f"part-{number:05d}"


def multipart_etag(md5s: list[str]) -> str:
    """S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, ``-`` and their
    number."""
    joined = b"".join(bytes.fromhex(m) for m in md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5s)}"


# -- dispatch (from app.py) ----------------------------------------------------------------------


async def object_operation(
    context: _Context,
    method: str,
    bucket: str,
    key: str,
    path: str,
    folder: bool,
    receive: Receive,
    send: Send,
) -> None:
    """The requests on an object that carry ``uploads`` or ``uploadId``."""
    q = context.query
    run = context.app._run
    if method == "POST" and "uploads" in q and "uploadId" not in q:
        body = await run(create, context, bucket, key, folder)
        await s3app._send(send, 200, body)
        return
    if "uploadId" not in q:
        raise S3Error("InvalidRequest", "This multipart request needs an uploadId.")
    upload_id = q["uploadId"]
    if method == "PUT":
        if "partNumber" not in q:
            raise S3Error("InvalidArgument", "An upload of a part needs a partNumber.")
        number = _part_number(q["partNumber"])
        if "x-amz-copy-source" in context.headers:
            body = await run(upload_part_copy, context, bucket, key, upload_id, number)
            await s3app._send(send, 200, body, extra=context.version_headers())
            return
        etag = await upload_part(context, bucket, key, upload_id, number, receive)
        await s3app._send(send, 200, b"", extra=[(b"etag", etag.encode())])
    elif method == "GET":
        await s3app._send(send, 200, await run(list_parts, context, bucket, key, upload_id))
    elif method == "POST":
        await complete(context, bucket, key, path, upload_id, receive, send)
    elif method == "DELETE":
        await run(abort, context, bucket, key, upload_id)
        await s3app._send(send, 204, b"")
    else:
        raise S3Error("MethodNotAllowed", "The specified method is not allowed.")


async def bucket_operation(context: _Context, bucket: str, send: Send) -> None:
    """ListMultipartUploads (GET on the bucket with ``uploads``)."""
    await s3app._send(send, 200, await context.app._run(list_uploads, context, bucket))


# -- the upload's folder -------------------------------------------------------------------------


def _writable(context: _Context, bucket: str) -> ShareView:
    view = context.view(bucket)
    if not view.writable:
        view.close()
        raise S3Error("AccessDenied", "Access Denied")
    return view


def _uploads(view: ShareView, create: bool = False) -> InternalFolder | None:
    try:
        return view.internal(*UPLOADS, create=create)
    except FsError as exc:
        if exc.code == errno.ENOENT and not create:
            return None
        raise


@contextlib.contextmanager
def _opened(view: ShareView, upload_id: str, key: str) -> Iterator[tuple[InternalFolder, Record]]:
    """The upload's folder and record; NoSuchUpload for an id that names none (or another
    key's)."""
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise S3Error("NoSuchUpload", NO_SUCH_UPLOAD)
    uploads = _uploads(view)
    if uploads is None:
        raise S3Error("NoSuchUpload", NO_SUCH_UPLOAD)
    try:
        with uploads:
            folder = uploads.folder(upload_id)
    except FsError as exc:
        if exc.code in (errno.ENOENT, errno.ENOTDIR):
            raise S3Error("NoSuchUpload", NO_SUCH_UPLOAD) from None
        raise
    with folder:
        record = _record(folder, upload_id)
        if record is None or record.key != key:
            raise S3Error("NoSuchUpload", NO_SUCH_UPLOAD)
        yield folder, record


def _record(folder: InternalFolder, upload_id: str) -> Record | None:
    try:
        return Record.load(upload_id, folder.read(RECORD))
    except FsError:
        return None  # gone: completed or aborted meanwhile


def _part_of(folder: InternalFolder, number: int) -> tuple[int, Part] | None:
    """The part file, open (the caller closes it), and what it is; None if there is none.
    Its xattr and its size must agree: a part a power cut left short (a share with ``sync``
    ``standard``) is no part."""
    try:
        file = folder.open_read(part_name(number))
    except FsError:
        return None
    try:
        raw = folder.get_attr(file.fd, PART_ATTR)
        info = json.loads(raw) if raw else None
        if not isinstance(info, dict) or int(info.get("size", -1)) != file.entry.size:
            file.close()
            return None
        return file.fd, Part(number, str(info["md5"]), file.entry.size, file.entry.mtime_ns)
    except (FsError, ValueError, KeyError, TypeError):
        file.close()
        return None


def _parts(folder: InternalFolder) -> list[Part]:
    found = []
    for name in folder.names():
        match = _PART_NAME.fullmatch(name)
        if match is None:
            continue
        opened = _part_of(folder, int(match.group(1)))
        if opened is not None:
            os.close(opened[0])
            found.append(opened[1])
    return sorted(found, key=lambda p: p.number)


def _part_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_PARTS:
        raise S3Error(
            "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"
        )
    return int(text)


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be an integer.") from None
    if value < 0:
        raise S3Error("InvalidArgument", f"{name} must not be negative.")
    return value


def _no_upload(exc: FsError) -> S3Error:
    """An upload's folder that vanished mid-request (an abort, a completion) is NoSuchUpload."""
    if exc.code in (errno.ENOENT, errno.ENOTDIR):
        return S3Error("NoSuchUpload", NO_SUCH_UPLOAD)
    return from_fs(exc)


# -- CreateMultipartUpload -----------------------------------------------------------------------


def create(context: _Context, bucket: str, key: str, folder: bool) -> bytes:
    if folder:
        raise S3Error(
            "InvalidRequest", "A key ending in '/' is a folder: it cannot be uploaded in parts."
        )
    now = time.time_ns()
    record = Record(
        upload_id=f"{now:016x}{secrets.token_urlsafe(24)}",
        key=key,
        initiator=context.user,
        created_ns=now,
        headers=s3app._stored(context.headers),
        user=s3app._user_meta(context.headers),
        lock=locks.for_record(context, bucket),
    )
    with _writable(context, bucket) as view:
        uploads = _uploads(view, create=True)
        assert uploads is not None
        with uploads, uploads.folder(record.upload_id, create=True) as made:
            made.write(RECORD, record.dump())
    return s3app._xml(
        f'<InitiateMultipartUploadResult xmlns="{s3app.XMLNS}"><Bucket>{escape(bucket)}</Bucket>'
        f"<Key>{escape(key)}</Key><UploadId>{record.upload_id}</UploadId>"
        "</InitiateMultipartUploadResult>"
    )


# -- UploadPart ----------------------------------------------------------------------------------


def _publish_part(file: InternalFile, number: int, md5: str) -> None:
    file.set_attr(PART_ATTR, json.dumps({"md5": md5, "size": file.size}).encode())
    file.publish(part_name(number))


async def upload_part(
    context: _Context, bucket: str, key: str, upload_id: str, number: int, receive: Receive
) -> str:
    """The part, streamed into a temp file of the upload's folder with its MD5, renamed to
    ``part-NNNNN`` once whole (a re-upload of the number replaces it at once); its ETag."""
    run = context.app._run
    length = s3app._put_length(context.headers)
    if length is not None and length > MAX_PART + 64 * 1024**2:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    view: ShareView = await run(_writable, context, bucket)
    try:
        folder: InternalFolder = await run(_enter, view, upload_id, key)
        try:
            file: InternalFile = await run(folder.create)
            try:
                md5 = await _receive_part(context, file, length, receive)
                await run(_publish_part, file, number, md5)
            finally:
                await run(file.discard)
        finally:
            folder.close()
    except FsError as exc:
        raise _no_upload(exc) from None
    finally:
        view.close()
    return f'"{md5}"'


async def _receive_part(
    context: _Context, file: InternalFile, length: int | None, receive: Receive
) -> str:
    """The request's body into ``file`` (decoded, its signature checked, as PutObject's);
    its MD5, checked against Content-MD5."""
    run = context.app._run
    body = Payload(context.verified, context.headers)
    body.length = length if body.decoder is None else None
    too_large = S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    writer = Writer(body, file, None, context.app.hashers, MAX_PART, too_large)
    await writer.stream(receive, run)
    await run(body.finish)
    s3app._check_md5(context.headers.get("content-md5"), writer.md5.digest())
    return writer.md5.hexdigest()


def _enter(view: ShareView, upload_id: str, key: str) -> InternalFolder:
    """The upload's folder, open past the check of its record (the caller closes it)."""
    with _opened(view, upload_id, key) as (folder, _record):
        return InternalFolder(os.dup(folder.fd), folder.writable, folder.durable)


# -- UploadPartCopy ------------------------------------------------------------------------------


def _copy_range(header: str | None, size: int) -> tuple[int, int]:
    """``bytes=first-last`` as [start, end); the whole object without the header."""
    if header is None:
        return 0, size
    match = re.fullmatch(r"bytes=(\d+)-(\d+)", header.strip())
    if match is None or int(match.group(1)) > int(match.group(2)):
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
        )
    first, last = int(match.group(1)), int(match.group(2))
    if last >= size:
        raise S3Error(
            "InvalidRange", f"Range specified is not valid for source object of size: {size}"
        )
    return first, last + 1


def _copy_conditions(headers: dict[str, str], etag: str, mtime_ns: int) -> None:
    """The x-amz-copy-source-if-* headers, as AWS applies them: a true If-Match outweighs a
    false If-Unmodified-Since, a false If-None-Match a true If-Modified-Since; every failure
    is 412."""
    failed = S3Error(
        "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
    )
    match = headers.get("x-amz-copy-source-if-match")
    none_match = headers.get("x-amz-copy-source-if-none-match")
    mtime = mtime_ns // 1_000_000_000
    if match is not None and not s3app._etag_in(match, etag):
        raise failed
    unmodified = s3app._parse_date(headers.get("x-amz-copy-source-if-unmodified-since"))
    if match is None and unmodified is not None and mtime > unmodified:
        raise failed
    if none_match is not None and s3app._etag_in(none_match, etag):
        raise failed
    modified = s3app._parse_date(headers.get("x-amz-copy-source-if-modified-since"))
    if none_match is None and modified is not None and mtime <= modified:
        raise failed


def upload_part_copy(
    context: _Context, bucket: str, key: str, upload_id: str, number: int
) -> bytes:
    """A part copied from (a range of) an object the user may read (or one of its versions:
    ``?versionId=`` in the source, as CopyObject), in the kernel (shared extents on btrfs),
    then hashed from the part itself."""
    src_bucket, src_key, src_version = copy.source_of(context.headers["x-amz-copy-source"])
    src_path, _folder = key_path(src_key)
    with _writable(context, bucket) as view, context.view(src_bucket) as source:
        entry, meta, found = copy.source_object(context, source, src_key, src_version)
        _copy_conditions(context.headers, f'"{meta.etag}"', entry.mtime_ns)
        start, end = _copy_range(context.headers.get("x-amz-copy-source-range"), entry.size)
        if end - start > MAX_PART:
            raise S3Error(
                "InvalidRequest",
                "The specified copy source is larger than the maximum allowable size for a "
                f"copy source: {MAX_PART}",
            )
        with _opened(view, upload_id, key) as (folder, _record):
            try:
                with folder.create() as file:
                    if end > start:
                        archived = found is not None and not found.current
                        with (
                            versions.open_archived(source, found)
                            if archived and found is not None
                            else source.open_read(src_path)
                        ) as read:
                            if read.entry.size != entry.size:
                                raise S3Error(
                                    "InternalError", "The source changed while it was read.", 500
                                )
                            file.copy_from(read.fd, start, end - start)
                    md5 = hashlib.md5(usedforsecurity=False)
                    offset = 0
                    while offset < file.size:
                        chunk = file.read(offset, s3app.CHUNK)
                        if not chunk:
                            break
                        md5.update(chunk)
                        offset += len(chunk)
                    _publish_part(file, number, md5.hexdigest())
                    mtime_ns = folder.stat(part_name(number)).st_mtime_ns
            except FsError as exc:
                raise _no_upload(exc) from None
    return s3app._xml(
        f'<CopyPartResult xmlns="{s3app.XMLNS}"><LastModified>{s3app._iso(mtime_ns)}'
        f'</LastModified><ETag>"{md5.hexdigest()}"</ETag></CopyPartResult>'
    )


# -- ListParts -----------------------------------------------------------------------------------


def list_parts(context: _Context, bucket: str, key: str, upload_id: str) -> bytes:
    q = context.query
    max_parts = min(_int_param(q, "max-parts", MAX_LISTED), MAX_LISTED)
    marker = _int_param(q, "part-number-marker", 0)
    url = _encoding(q)
    with context.view(bucket) as view, _opened(view, upload_id, key) as (folder, record):
        parts = [p for p in _parts(folder) if p.number > marker]
    shown, truncated = parts[:max_parts], len(parts) > max_parts
    out = [
        f'<ListPartsResult xmlns="{s3app.XMLNS}"><Bucket>{escape(bucket)}</Bucket>'
        f"<Key>{_enc(key, url)}</Key><UploadId>{upload_id}</UploadId>"
        f"{_people(record.initiator)}<StorageClass>STANDARD</StorageClass>"
        f"<PartNumberMarker>{marker}</PartNumberMarker>"
    ]
    if shown:
        out.append(f"<NextPartNumberMarker>{shown[-1].number}</NextPartNumberMarker>")
    out.append(f"<MaxParts>{max_parts}</MaxParts>")
    out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if url:
        out.append("<EncodingType>url</EncodingType>")
    for part in shown:
        out.append(
            f"<Part><PartNumber>{part.number}</PartNumber>"
            f"<LastModified>{s3app._iso(part.mtime_ns)}</LastModified>"
            f"<ETag>{escape(part.etag)}</ETag><Size>{part.size}</Size></Part>"
        )
    out.append("</ListPartsResult>")
    return s3app._xml("".join(out))


def _people(user: str) -> str:
    who = escape(user)
    person = f"<ID>{who}</ID><DisplayName>{who}</DisplayName>"
    return f"<Initiator>{person}</Initiator><Owner>{person}</Owner>"


def _encoding(q: dict[str, str]) -> bool:
    url = q.get("encoding-type") == "url"
    if "encoding-type" in q and not url:
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return url


def _enc(text: str, url: bool) -> str:
    return escape(quote(text, safe="") if url else text)


# -- ListMultipartUploads ------------------------------------------------------------------------


def _records(view: ShareView) -> list[Record]:
    uploads = _uploads(view)
    if uploads is None:
        return []
    found = []
    with uploads:
        for name in uploads.names():
            if not _UPLOAD_ID.fullmatch(name):
                continue
            try:
                with uploads.folder(name) as folder:
                    record = _record(folder, name)
            except FsError:
                continue
            if record is not None:
                found.append(record)
    return found


def _select(
    records: list[Record],
    prefix: str,
    delimiter: str,
    key_marker: str,
    id_marker: str,
    max_uploads: int,
) -> tuple[list[Record | str], bool]:
    """The uploads and common prefixes a ListMultipartUploads page shows, and whether more
    follow."""
    bmarker = key_marker.encode("utf-8", "surrogatepass")
    items: list[Record | str] = []
    truncated = False
    last_prefix = ""
    for record in records:
        if not record.key.startswith(prefix):
            continue
        bkey = record.key.encode("utf-8", "surrogatepass")
        if key_marker and not (
            bkey > bmarker or (id_marker and bkey == bmarker and record.upload_id > id_marker)
        ):
            continue
        common = ""
        if delimiter:
            cut = record.key.find(delimiter, len(prefix))
            if cut >= 0:
                common = record.key[: cut + len(delimiter)]
                if common == last_prefix or (
                    key_marker and common.encode("utf-8", "surrogatepass") <= bmarker
                ):
                    continue
        if len(items) >= max_uploads:
            truncated = True
            break
        if common:
            last_prefix = common
            items.append(common)
        else:
            items.append(record)
    return items, truncated


def list_uploads(context: _Context, bucket: str) -> bytes:
    """In UTF-8 binary order of keys, a key's uploads in the order they were initiated (their
    ids sort so), with ListObjects' prefix and delimiter rules."""
    q = context.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    id_marker = q.get("upload-id-marker", "") if key_marker else ""
    max_uploads = min(_int_param(q, "max-uploads", MAX_LISTED), MAX_LISTED)
    url = _encoding(q)
    with context.view(bucket) as view:
        records = _records(view)
    records.sort(key=lambda r: (r.key.encode("utf-8", "surrogatepass"), r.upload_id))
    items, truncated = _select(records, prefix, delimiter, key_marker, id_marker, max_uploads)
    out = [
        f'<ListMultipartUploadsResult xmlns="{s3app.XMLNS}"><Bucket>{escape(bucket)}</Bucket>'
        f"<KeyMarker>{_enc(key_marker, url)}</KeyMarker>"
        f"<UploadIdMarker>{escape(id_marker)}</UploadIdMarker>"
    ]
    if truncated and items:
        last = items[-1]
        next_key = last if isinstance(last, str) else last.key
        next_id = "" if isinstance(last, str) else last.upload_id
        out.append(f"<NextKeyMarker>{_enc(next_key, url)}</NextKeyMarker>")
        out.append(f"<NextUploadIdMarker>{next_id}</NextUploadIdMarker>")
    if delimiter:
        out.append(f"<Delimiter>{_enc(delimiter, url)}</Delimiter>")
    out.append(f"<Prefix>{_enc(prefix, url)}</Prefix><MaxUploads>{max_uploads}</MaxUploads>")
    out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if url:
        out.append("<EncodingType>url</EncodingType>")
    for item in items:
        if isinstance(item, Record):
            out.append(
                f"<Upload><Key>{_enc(item.key, url)}</Key><UploadId>{item.upload_id}</UploadId>"
                f"{_people(item.initiator)}<StorageClass>STANDARD</StorageClass>"
                f"<Initiated>{s3app._iso(item.created_ns)}</Initiated></Upload>"
            )
    for item in items:
        if isinstance(item, str):
            out.append(f"<CommonPrefixes><Prefix>{_enc(item, url)}</Prefix></CommonPrefixes>")
    out.append("</ListMultipartUploadsResult>")
    return s3app._xml("".join(out))


# -- CompleteMultipartUpload ---------------------------------------------------------------------


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """The (part number, ETag without quotes) list of a CompleteMultipartUpload body."""
    malformed = S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise malformed
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 (no DTD, no entities: refused above)
    except ElementTree.ParseError:
        raise malformed from None
    if _local(root.tag) != "CompleteMultipartUpload":
        raise malformed
    parts = []
    for element in root:
        if _local(element.tag) != "Part":
            raise malformed
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        number, etag = fields.get("PartNumber"), fields.get("ETag")
        if number is None or etag is None or not number.isdigit():
            raise malformed
        parts.append((int(number), etag.replace("&quot;", "").strip('"')))
    if not parts:
        raise malformed
    if len(parts) > MAX_PARTS:
        raise S3Error("InvalidRequest", f"A multipart upload has at most {MAX_PARTS} parts.")
    return parts


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


@dataclass
class _Assembly:
    """A validated completion, holding its upload's lock, ready to be assembled."""

    view: ShareView
    folder: InternalFolder
    record: Record
    parts: list[tuple[int, Part]]  # open part files with what they are
    path: str
    upload: Any = None  # the ShareFS Upload of the object
    versioning: str = ""  # the bucket's versioning state
    version: str | None = None  # the version the completion made (versioned buckets)

    def close(self) -> None:
        for fd, _part in self.parts:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.parts = []
        if self.upload is not None:
            self.upload.abort()
        with contextlib.suppress(OSError):
            fcntl.flock(self.folder.fd, fcntl.LOCK_UN)
        self.folder.close()
        self.view.close()


def _prepare(
    context: _Context,
    bucket: str,
    key: str,
    path: str,
    upload_id: str,
    wanted: list[tuple[int, str]],
) -> _Assembly:
    """Everything that can refuse a completion, before its answer starts: the upload, the
    part list against the parts (InvalidPartOrder, InvalidPart, EntityTooSmall), the
    conditions, and the object's temp file (a key that clashes with a folder)."""
    view = _writable(context, bucket)
    try:
        folder = _enter(view, upload_id, key)
    except BaseException:
        view.close()
        raise
    fcntl.flock(folder.fd, fcntl.LOCK_EX)  # one completion or abort of an upload at a time
    # a completion we waited for may have removed the upload
    record = _record(folder, upload_id)
    assembly = _Assembly(view, folder, record or Record(upload_id, key, "", 0), [], path)
    try:
        if record is None:
            raise S3Error("NoSuchUpload", NO_SUCH_UPLOAD)
        numbers = [n for n, _etag in wanted]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise S3Error(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. The parts list must be "
                "specified in order by part number.",
            )
        for number, etag in wanted:
            opened = _part_of(folder, number) if 1 <= number <= MAX_PARTS else None
            if opened is not None:
                assembly.parts.append(opened)
            if opened is None or opened[1].md5 != etag.lower():
                raise S3Error(
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part may not "
                    "have been uploaded, or the specified entity tag may not match the part's "
                    "entity tag.",
                )
        for _fd, part in assembly.parts[:-1]:
            if part.size < MIN_PART:
                raise S3Error(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                )
        if context.headers.get("if-none-match", "").strip() == "*":
            with contextlib.suppress(FsError):
                view.stat(path)
                raise S3Error(
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                )
        assembly.upload = s3app._upload(view, path)
        assembly.versioning = context.versioning(bucket)
    except BaseException:
        assembly.close()
        raise
    return assembly


def _assemble(assembly: _Assembly) -> str:
    """The parts into the object's temp file (copy_file_range), committed with its stored
    metadata, then the upload's folder removed; the object's ETag."""
    try:
        upload = assembly.upload
        for fd, part in assembly.parts:
            upload.copy_from(fd, 0, part.size)
        meta = ObjectMeta(
            etag=multipart_etag([part.md5 for _fd, part in assembly.parts]),
            headers=assembly.record.headers,
            user=assembly.record.user,
            parts=[part.size for _fd, part in assembly.parts],
        )
        locks.from_record(assembly.record.lock, meta)
        s3app._commit(upload, meta, assembly.versioning)
        if assembly.versioning:
            assembly.version = meta.version_id or versions.NULL
        assembly.upload = None
        uploads = _uploads(assembly.view)
        if uploads is not None:
            with uploads:
                uploads.remove_tree(assembly.record.upload_id)
        return meta.etag
    finally:
        assembly.close()


async def complete(
    context: _Context,
    bucket: str,
    key: str,
    path: str,
    upload_id: str,
    receive: Receive,
    send: Send,
) -> None:
    too_long = S3Error("MalformedXML", "The list of parts is too long.")
    body = await Payload(context.verified, context.headers).whole(
        receive, MAX_COMPLETE_BODY - 1, too_long
    )
    wanted = parse_complete(body)
    run = context.app._run
    assembly: _Assembly = await run(_prepare, context, bucket, key, path, upload_id, wanted)
    loop = asyncio.get_running_loop()
    task = loop.run_in_executor(context.app.pool, _assemble, assembly)
    done, _pending = await asyncio.wait({task}, timeout=_RESPOND_AFTER)
    if done:
        etag = _etag_of(task)  # raises the S3 error of a failed assembly, with its status
        extra = (
            [] if assembly.version is None else [(b"x-amz-version-id", assembly.version.encode())]
        )
        await s3app._send(send, 200, _complete_result(context, bucket, key, etag), extra=extra)
        return
    # a long assembly (no reflinks: the kernel copies): answer 200 now and keep the
    # connection alive with spaces, as AWS does; the result or the error follows in the body
    headers = [(b"content-type", b"application/xml")]
    await send({"type": "http.response.start", "status": 200, "headers": s3app._base(headers)})
    await send({"type": "http.response.body", "body": s3app._xml(""), "more_body": True})
    while not task.done():
        await asyncio.wait({task}, timeout=_KEEPALIVE)
        if not task.done():
            await send({"type": "http.response.body", "body": b" ", "more_body": True})
    try:
        result = _complete_result(context, bucket, key, _etag_of(task))
    except S3Error as exc:
        result = document(exc.code, exc.message, f"/{bucket}/{key}", context.request_id)
    await send({"type": "http.response.body", "body": result.split(b"\n", 1)[1]})


def _etag_of(task: asyncio.Future[str]) -> str:
    try:
        return task.result()
    except FsError as exc:
        raise from_fs(exc) from None


def _complete_result(context: _Context, bucket: str, key: str, etag: str) -> bytes:
    host = context.headers.get("host", "")
    location = f"http://{host}/{quote(bucket)}/{quote(key)}"
    return s3app._xml(
        f'<CompleteMultipartUploadResult xmlns="{s3app.XMLNS}">'
        f"<Location>{escape(location)}</Location><Bucket>{escape(bucket)}</Bucket>"
        f'<Key>{escape(key)}</Key><ETag>"{etag}"</ETag></CompleteMultipartUploadResult>'
    )


# -- AbortMultipartUpload ------------------------------------------------------------------------


def abort(context: _Context, bucket: str, key: str, upload_id: str) -> None:
    with (
        _writable(context, bucket) as view,
        _enter(view, upload_id, key) as folder,
        folder.locked(),
    ):
        if _record(folder, upload_id) is None:
            raise S3Error("NoSuchUpload", NO_SUCH_UPLOAD)
        uploads = _uploads(view)
        if uploads is not None:
            with uploads:
                uploads.remove_tree(upload_id)


# -- abandoned uploads ---------------------------------------------------------------------------


def remove_abandoned(uploads: InternalFolder, max_age_s: float, now_ns: int | None = None) -> int:
    """Remove the uploads of ``uploads`` (a share's ``.speicher/s3/uploads``) initiated and
    last given a part ``max_age_s`` or more ago (a part's arrival changes the folder's
    modification time), and what is not an upload at all; one being completed is left. How
    many were removed."""
    now = time.time_ns() if now_ns is None else now_ns
    cutoff = now - int(max_age_s * 1e9)
    removed = 0
    for name in uploads.names():
        try:
            st = uploads.stat(name)
            if not _UPLOAD_ID.fullmatch(name) or not stat.S_ISDIR(st.st_mode):
                if st.st_mtime_ns <= cutoff:
                    uploads.remove_tree(name)
                continue
            with uploads.folder(name) as folder:
                record = _record(folder, name)
                created = record.created_ns if record is not None else 0
                if max(created, st.st_mtime_ns) > cutoff:
                    continue
                try:
                    fcntl.flock(folder.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # being completed or aborted right now
                uploads.remove_tree(name)
                removed += 1
        except FsError:
            continue
    return removed
