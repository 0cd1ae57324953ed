"""CopyObject: ``PUT /bucket/key`` with ``x-amz-copy-source: /srcbucket/srckey`` (S3 API
Reference, CopyObject), within a bucket or across buckets the user may read (source) and
write (target).

- The bytes are copied by the kernel (``copy_file_range``: a reflink on btrfs, so a copy
  within a pool costs no data; ``sendfile`` across file systems) into a ShareFS upload, which
  commits atomically with the usual ownership, durability and events.
- ``x-amz-metadata-directive``: ``COPY`` (the default) keeps the source's Content-Type, the
  other stored headers and ``x-amz-meta-*``; ``REPLACE`` takes them from the request.
  ``x-amz-tagging-directive`` does the same for tags (``REPLACE``: ``x-amz-tagging``).
- ``x-amz-copy-source-if-match``, ``-if-none-match``, ``-if-unmodified-since`` and
  ``-if-modified-since`` are checked against the source; a failed one is 412
  ``PreconditionFailed`` (never 304), with AWS's pairing rules.
- An object copied onto itself must change something (``REPLACE``, or a storage class),
  else ``InvalidRequest`` as AWS says.
- The ETag is the MD5 of the content, as for any object written in one piece: the source's
  when it is one; for a multipart source (``...-N``) it is computed from the bytes. The
  source's additional checksum is kept; ``x-amz-checksum-algorithm`` asks for another one,
  computed from the bytes.
- ``?versionId=`` in the source copies that version (docs/s3.md, Versioning).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

from speicher.files import Entry, ReadFile, ShareView
from speicher.protocols.s3 import app as s3app
from speicher.protocols.s3 import checksums, locks, tagging, versions
from speicher.protocols.s3.errors import S3Error
from speicher.protocols.s3.objects import ObjectMeta, key_path, meta_of

if TYPE_CHECKING:
    from speicher.protocols.s3.app import _Context

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
RESULT_NAMES = {
    "crc32": "ChecksumCRC32",
    "crc32c": "ChecksumCRC32C",
    "crc64nvme": "ChecksumCRC64NVME",
    "sha1": "ChecksumSHA1",
    "sha256": "ChecksumSHA256",
}


def _failed() -> S3Error:
    return S3Error(
        "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
    )


def source_of(header: str) -> tuple[str, str, str | None]:
    """The bucket and key an ``x-amz-copy-source`` names (URL-encoded, a leading ``/`` or
    not, an optional ``?versionId=``)."""
    try:
        text = header.encode("latin-1").decode("utf-8")  # a client that sent raw UTF-8
        raw, _, query = text.strip().partition("?")
        named = unquote(raw, errors="strict")
    except UnicodeError:
        raise S3Error("InvalidArgument", "Invalid copy source encoding") from None
    version = dict(parse_qsl(query, keep_blank_values=True)).get("versionId")
    bucket, _, key = named.removeprefix("/").partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    if version is not None:
        versions.check_id(version)
    return bucket, key, version


def source_object(
    context: _Context, source: ShareView, key: str, version: str | None
) -> tuple[Entry, ObjectMeta, versions.Version | None]:
    """What a copy's source names: the file (or, in a bucket that is or was versioned or
    with ``version``, the version) with its metadata; the version's id goes into the
    answer's ``x-amz-copy-source-version-id``."""
    path, folder = key_path(key)
    if not folder and (version is not None or context.versioning(source.share)):
        found = versions.find(source, key, version)
        if found is None:
            raise S3Error("NoSuchKey", "The specified key does not exist.")
        context.source_version = found.id
        return found.entry, found.meta, found
    entry = source.stat(path)
    if entry.is_dir != folder:
        raise S3Error("NoSuchKey", "The specified key does not exist.")
    return entry, meta_of(source, path, entry), None


def check_conditions(headers: dict[str, str], etag: str, mtime_ns: int) -> None:
    """The copy-source conditions, as AWS pairs them: a true if-match wins over a false
    if-unmodified-since; a false if-none-match fails whatever if-modified-since says."""
    prefix = "x-amz-copy-source-"
    match = headers.get(prefix + "if-match")
    none_match = headers.get(prefix + "if-none-match")
    mtime = mtime_ns // 1_000_000_000
    if match is not None:
        if not s3app._etag_in(match, etag):
            raise _failed()
    else:
        unmodified = s3app._parse_date(headers.get(prefix + "if-unmodified-since"))
        if unmodified is not None and mtime > unmodified:
            raise _failed()
    if none_match is not None:
        if s3app._etag_in(none_match, etag):
            raise _failed()
    else:
        modified = s3app._parse_date(headers.get(prefix + "if-modified-since"))
        if modified is not None and mtime <= modified:
            raise _failed()


def _directive(headers: dict[str, str], name: str, what: str) -> str:
    value = headers.get(name, "COPY").strip().upper()
    if value not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", f"Unknown {what} directive.")
    return value


def _wanted_algorithm(headers: dict[str, str]) -> str | None:
    name = headers.get("x-amz-checksum-algorithm", "").strip().lower() or None
    if name is not None and name not in checksums.ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the "
            "valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
        )
    return name


def _same(a: Entry, b: os.stat_result) -> bool:
    return (a.size, a.mtime_ns) == (b.st_size, b.st_mtime_ns)


def _copy_bytes(
    source: ReadFile,
    target: ShareView,
    path: str,
    meta: ObjectMeta,
    hash_md5: bool,
    crc: str | None,
    versioning: str = "",
) -> None:
    """Copy the source's bytes into a new upload of ``path`` and commit it with ``meta``;
    the MD5 and a checksum are read from the source where they must be computed."""
    upload = s3app._upload(target, path)
    try:
        upload.copy_from(source.fd, 0, source.entry.size)
        if upload.size != source.entry.size:
            raise S3Error("InternalError", "The source object changed while it was copied.", 500)
        if hash_md5 or crc is not None:
            md5 = hashlib.md5(usedforsecurity=False)
            checksum = checksums.Checksum(crc) if crc is not None else None
            for chunk in source.chunks():
                if hash_md5:
                    md5.update(chunk)
                if checksum is not None:
                    checksum.update(chunk)
            if hash_md5:
                meta.etag = md5.hexdigest()
            if checksum is not None:
                meta.checksums = {checksum.name: checksum.b64()}
        if not _same(source.entry, os.fstat(source.fd)):
            raise S3Error("InternalError", "The source object changed while it was copied.", 500)
        s3app._commit(upload, meta, versioning)
    except BaseException:
        upload.abort()
        raise


@dataclass
class _Request:
    """What a CopyObject asks for besides its source, checked before anything is read."""

    directive: str
    tag_directive: str
    tags: dict[str, str] | None
    algorithm: str | None
    user: dict[str, str] | None  # REPLACE's x-amz-meta-*

    @classmethod
    def of(cls, headers: dict[str, str]) -> _Request:
        directive = _directive(headers, "x-amz-metadata-directive", "metadata")
        return cls(
            directive=directive,
            tag_directive=_directive(headers, "x-amz-tagging-directive", "tagging"),
            tags=tagging.from_header(headers),
            algorithm=_wanted_algorithm(headers),
            user=s3app._user_meta(headers) if directive == "REPLACE" else None,
        )

    def meta(self, headers: dict[str, str], meta: ObjectMeta) -> tuple[ObjectMeta, str | None]:
        """The copy's metadata, and the checksum that must be computed from the bytes."""
        copied = ObjectMeta(
            etag=meta.etag,
            headers=dict(meta.headers) if self.user is None else s3app._stored(headers),
            user=dict(meta.user) if self.user is None else self.user,
            tags=dict(meta.tags) if self.tag_directive == "COPY" else (self.tags or {}),
            checksums=dict(meta.checksums),
        )
        if self.algorithm is None:
            return copied, None
        if self.algorithm in meta.checksums:
            copied.checksums = {self.algorithm: meta.checksums[self.algorithm]}
            return copied, None
        return copied, self.algorithm


def _write(
    source: ShareView,
    src_path: str,
    entry: Entry,
    target: ShareView,
    path: str,
    copied: ObjectMeta,
    crc: str | None,
    versioning: str = "",
    found: versions.Version | None = None,
) -> None:
    if entry.is_dir:  # a folder object is an empty object
        upload = s3app._upload(target, path)
        try:
            if crc is not None:
                copied.checksums = {crc: checksums.of(crc, b"")}
            s3app._commit(upload, copied, versioning)
        except BaseException:
            upload.abort()
            raise
        return
    opened = (
        versions.open_archived(source, found)
        if found is not None and not found.current
        else source.open_read(src_path)
    )
    with opened as file:
        if (file.entry.size, file.entry.mtime_ns) != (entry.size, entry.mtime_ns):
            raise S3Error("InternalError", "The source object changed while it was read.", 500)
        _copy_bytes(file, target, path, copied, "-" in copied.etag, crc, versioning)


def _check_copy(
    headers: dict[str, str], request: _Request, same: bool, meta: ObjectMeta, entry: Entry
) -> None:
    check_conditions(headers, f'"{meta.etag}"', entry.mtime_ns)
    if same and request.directive != "REPLACE" and "x-amz-storage-class" not in headers:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes.",
        )
    if entry.size > s3app.MAX_PUT:
        raise S3Error(
            "InvalidRequest",
            "The specified copy source is larger than the maximum allowable size for a copy "
            f"source: {s3app.MAX_PUT}",
        )


def copy_object(context: _Context, bucket: str, path: str, folder: bool) -> bytes:
    headers = context.headers
    src_bucket, src_key, src_version = source_of(headers["x-amz-copy-source"])
    src_path, _folder = key_path(src_key)
    request = _Request.of(headers)
    if folder:
        raise S3Error(
            "InvalidRequest",
            "A key ending in '/' is a folder: it cannot be a copy's target; PUT it instead.",
        )
    with context.view(bucket) as target:
        if not target.writable:
            raise S3Error("AccessDenied", "Access Denied")
        source = target if src_bucket == bucket else context.view(src_bucket)
        try:
            entry, meta, found = source_object(context, source, src_key, src_version)
            same = src_bucket == bucket and src_path == path and (found is None or found.current)
            _check_copy(headers, request, same, meta, entry)
            copied, crc = request.meta(headers, meta)
            state = context.versioning(bucket)
            locks.apply_request(context, bucket, copied)
            _write(source, src_path, entry, target, path, copied, crc, state, found)
            if state:
                context.put_version = copied.version_id or versions.NULL
        finally:
            if source is not target:
                source.close()
    result = "".join(
        f"<{RESULT_NAMES[name]}>{escape(value)}</{RESULT_NAMES[name]}>"
        for name, value in copied.checksums.items()
        if name in RESULT_NAMES
    )
    return s3app._xml(
        f'<CopyObjectResult xmlns="{XMLNS}"><LastModified>{s3app._iso(copied.mtime_ns)}'
        f'</LastModified><ETag>"{copied.etag}"</ETag>{result}</CopyObjectResult>'
    )
