"""Object tagging: GetObjectTagging, PutObjectTagging, DeleteObjectTagging (``?tagging`` on
an object), the ``x-amz-tagging`` header of PutObject and CopyObject, and the tag set's XML.

Tags live with the object's other metadata (``ObjectMeta.tags``, the ``user.speicher.meta.s3``
xattr), in the order they came. AWS's limits (S3 User Guide, "Categorizing your storage using
tags"): at most 10 tags an object, keys of 1 to 128 and values of up to 256 Unicode characters,
no key twice, no key starting with ``aws:``; anything else is ``InvalidTag``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeXml
from starlette.types import Receive

from speicher.files import ShareView
from speicher.protocols.s3 import checksums
from speicher.protocols.s3.errors import S3Error
from speicher.protocols.s3.objects import META_NAME, ObjectMeta, meta_of

if TYPE_CHECKING:
    from speicher.protocols.s3.app import _Context

MAX_TAGS = 10
MAX_KEY = 128
MAX_VALUE = 256
MAX_BODY = 64 * 1024
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def check(tags: list[tuple[str, str]]) -> dict[str, str]:
    """A tag set within AWS's limits, as stored; ``InvalidTag`` otherwise."""
    if len(tags) > MAX_TAGS:
        raise S3Error("InvalidTag", f"Object tags cannot be greater than {MAX_TAGS}")
    out: dict[str, str] = {}
    for key, value in tags:
        if not key or len(key) > MAX_KEY:
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid")
        if len(value) > MAX_VALUE:
            raise S3Error("InvalidTag", "The TagValue you have provided is too long, max 256")
        if key.lower().startswith("aws:"):
            raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:")
        if key in out:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
        out[key] = value
    return out


def from_header(headers: dict[str, str]) -> dict[str, str] | None:
    """The tags of ``x-amz-tagging`` (URL query encoded: ``a=1&b=2``); None without one."""
    raw = headers.get("x-amz-tagging")
    if raw is None:
        return None
    try:
        # headers arrive as latin-1; the query encoding is of UTF-8
        text = raw.encode("latin-1").decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeError, ValueError):
        raise S3Error(
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
            "parameters without tag name duplicates.",
        ) from None
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise S3Error(
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
            "parameters without tag name duplicates.",
        )
    return check(pairs)


def _local(element: Element) -> str:
    return element.tag.rpartition("}")[2]


def parse(body: bytes) -> dict[str, str]:
    """A ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging>`` document."""
    try:
        root = SafeXml.fromstring(body, forbid_dtd=True)
    except (SafeXml.ParseError, ValueError):  # defusedxml's refusals are ValueErrors
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our "
            "published schema",
        ) from None
    malformed = S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
    if _local(root) != "Tagging":
        raise malformed
    sets = [e for e in root if _local(e) == "TagSet"]
    if len(sets) != 1:
        raise malformed
    pairs: list[tuple[str, str]] = []
    for tag in sets[0]:
        if _local(tag) != "Tag":
            raise malformed
        keys = [e for e in tag if _local(e) == "Key"]
        values = [e for e in tag if _local(e) == "Value"]
        if len(keys) != 1 or len(values) > 1:
            raise malformed
        value = (values[0].text or "") if values else ""
        pairs.append((keys[0].text or "", value))
    return check(pairs)


def render(tags: dict[str, str]) -> bytes:
    items = "".join(
        f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Tagging xmlns="{XMLNS}"><TagSet>{items}</TagSet></Tagging>'
    ).encode()


def count_header(meta: ObjectMeta) -> list[tuple[bytes, bytes]]:
    """``x-amz-tagging-count`` of a GET or HEAD, when the object has tags."""
    return [(b"x-amz-tagging-count", str(len(meta.tags)).encode())] if meta.tags else []


def _file_meta(view: ShareView, path: str, folder: bool) -> ObjectMeta:
    entry = view.stat(path)
    if entry.is_dir != folder:
        raise S3Error("NoSuchKey", "The specified key does not exist.")
    if folder:
        raise S3Error(
            "NotImplemented", "Tags on folder objects (keys ending in '/') are not supported."
        )
    return meta_of(view, path, entry)


def get(context: _Context, bucket: str, path: str, folder: bool) -> bytes:
    with context.view(bucket) as view:
        if folder:
            entry = view.stat(path)
            if not entry.is_dir:
                raise S3Error("NoSuchKey", "The specified key does not exist.")
            return render({})
        return render(_file_meta(view, path, folder).tags)


def store(context: _Context, bucket: str, path: str, folder: bool, tags: dict[str, str]) -> None:
    """The object's tags replaced by ``tags`` (none: deleted), its other metadata kept."""
    with context.view(bucket) as view:
        if not view.writable:
            raise S3Error("AccessDenied", "Access Denied")
        meta = _file_meta(view, path, folder)
        meta.tags = tags
        now = view.stat(path)
        if (now.size, now.mtime_ns) != (meta.size, meta.mtime_ns):
            raise S3Error("InternalError", "The object changed while its tags were set; retry.")
        view.set_meta(path, META_NAME, meta.dump())


async def handle(
    context: _Context, method: str, bucket: str, path: str, folder: bool, receive: Receive
) -> tuple[int, bytes]:
    """Get/Put/DeleteObjectTagging: the status and body of the answer."""
    run = context.app._run
    if method == "GET":
        return 200, await run(get, context, bucket, path, folder)
    if method == "PUT":
        await put(context, bucket, path, folder, receive)
        return 200, b""
    if method == "DELETE":
        await run(store, context, bucket, path, folder, {})
        return 204, b""
    raise S3Error("MethodNotAllowed", "The specified method is not allowed.")


async def put(context: _Context, bucket: str, path: str, folder: bool, receive: Receive) -> None:
    body = await checksums.read_body(receive, context.verified, context.headers, MAX_BODY)
    tags = parse(body)
    await context.app._run(store, context, bucket, path, folder, tags)
