"""DeleteObjects (``POST /bucket?delete``): up to 1,000 keys in one request, each deleted as
DeleteObject deletes it, answered with a ``DeleteResult`` of what was deleted and what was
not (S3 API Reference, DeleteObjects).

- The body must come with a ``Content-MD5`` or an ``x-amz-checksum-*`` header (or trailer),
  as AWS requires (``InvalidRequest`` otherwise), and is checked against it; it is read whole
  up to :data:`MAX_BODY` and parsed by defusedxml (no DTDs, no entities).
- More than 1,000 keys, no key at all, or XML that is not a ``Delete`` document is
  ``MalformedXML``, and nothing is deleted: the whole request is checked before the first
  key goes.
- A key that does not exist is ``Deleted``, as in AWS; a key that cannot be an object of the
  share (``..``, too long) or that the user may not delete (a read-only grant) is an
  ``Error`` entry with its code. ``Quiet`` leaves the ``Deleted`` entries out.
- Version ids: a ``VersionId`` deletes that version for good, as DeleteObject with
  ``versionId`` does; without one a versioned bucket gets a delete marker, reported as
  ``DeleteMarker`` with its ``DeleteMarkerVersionId``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeXml
from starlette.types import Receive

from speicher.files import FsError
from speicher.protocols.s3 import checksums, versions
from speicher.protocols.s3.errors import S3Error, from_fs
from speicher.protocols.s3.objects import key_path

if TYPE_CHECKING:
    from speicher.protocols.s3.app import _Context

MAX_OBJECTS = 1000
# 1,000 keys of 1,024 bytes, each character escaped, with room for version ids
MAX_BODY = 8 * 1024 * 1024
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _malformed() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


@dataclass(frozen=True)
class Wanted:
    key: str
    version: str | None


def _local(element: Element) -> str:
    return element.tag.rpartition("}")[2]


def parse(body: bytes) -> tuple[list[Wanted], bool]:
    """The keys (with version ids) of a ``Delete`` document, and whether it is quiet."""
    try:
        root = SafeXml.fromstring(body, forbid_dtd=True)
    except (SafeXml.ParseError, ValueError):  # defusedxml's refusals are ValueErrors
        raise _malformed() from None
    if _local(root) != "Delete":
        raise _malformed()
    quiet = False
    wanted: list[Wanted] = []
    for child in root:
        name = _local(child)
        if name == "Quiet":
            text = (child.text or "").strip().lower()
            if text not in ("true", "false"):
                raise _malformed()
            quiet = text == "true"
        elif name == "Object":
            if len(wanted) == MAX_OBJECTS:
                raise S3Error(
                    "MalformedXML",
                    f"The request names more than {MAX_OBJECTS} objects; nothing was deleted.",
                )
            keys = [e for e in child if _local(e) == "Key"]
            versions = [e for e in child if _local(e) == "VersionId"]
            if len(keys) != 1 or len(versions) > 1:
                raise _malformed()
            version = (versions[0].text or "") if versions else None
            wanted.append(Wanted(keys[0].text or "", version))
        else:
            raise _malformed()
    if not wanted:
        raise _malformed()
    return wanted, quiet


def _one(context: _Context, bucket: str, item: Wanted) -> S3Error | versions.Deleted | None:
    """Delete one key as DeleteObject does; the refusal, if any, or what versioning did."""
    try:
        path, folder = key_path(item.key)
        return context.delete_object(bucket, path, folder, item.version)
    except S3Error as exc:
        return exc
    except FsError as exc:
        return from_fs(exc, item.key)


def run(context: _Context, bucket: str, wanted: list[Wanted], quiet: bool) -> bytes:
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="{XMLNS}">']
    for item in wanted:
        error = _one(context, bucket, item)
        key = f"<Key>{escape(item.key)}</Key>"
        version = "" if item.version is None else f"<VersionId>{escape(item.version)}</VersionId>"
        if isinstance(error, S3Error):
            parts.append(
                f"<Error>{key}{version}<Code>{escape(error.code)}</Code>"
                f"<Message>{escape(error.message)}</Message></Error>"
            )
        elif not quiet:
            marker = ""
            if error is not None and error.marker and error.version_id is not None:
                marker = (
                    "<DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>"
                    f"{escape(error.version_id)}</DeleteMarkerVersionId>"
                )
            parts.append(f"<Deleted>{key}{version}{marker}</Deleted>")
    parts.append("</DeleteResult>")
    return "".join(parts).encode()


async def delete_objects(context: _Context, bucket: str, receive: Receive) -> bytes:
    await context.app._run(context.head_bucket, bucket)  # NoSuchBucket before anything else
    checksums.require_integrity(context.headers)
    body = await checksums.read_body(receive, context.verified, context.headers, MAX_BODY)
    wanted, quiet = parse(body)
    result: bytes = await context.app._run(run, context, bucket, wanted, quiet)
    return result
