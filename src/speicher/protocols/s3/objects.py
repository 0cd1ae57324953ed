"""Objects as files: how an S3 key names a file of the bucket's share, what an object's
metadata is and where it lives, and listing keys in S3's order.

- A key is split at ``/``; every segment names a folder, the last one the file. A key that
  ends in ``/`` is a folder ("folder object", what consoles make for an empty folder). Keys
  whose segments cannot be names (empty, ``.``, ``..``, over 255 bytes, a NUL byte, or the
  internal ``.speicher``) are refused with ``InvalidArgument`` (``KeyTooLongError`` over
  1,024 bytes): each key names one file and no file two keys.
- Metadata (ETag, Content-Type and the other stored headers, ``x-amz-meta-*``) is one JSON
  xattr of the file (``user.speicher.meta.s3``), with the size and mtime it was written for:
  a file changed since (over SMB, WebDAV, SFTP) gets its ETag computed anew (MD5 of its bytes)
  and a type from its name.
- Listings are in UTF-8 binary order of the keys: a folder ``a`` sorts as ``a/``, so a walk
  that visits names in that order yields the keys in order.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass, field

from speicher.files import Entry, FsError, ReadFile, ShareView
from speicher.files.paths import INTERNAL_DIR, SNAPSHOTS_DIR
from speicher.protocols.s3.errors import S3Error

MAX_KEY = 1024
META_NAME = "s3"  # ShareView's metadata item (the xattr user.speicher.meta.s3)
STORED_HEADERS = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)


def key_path(key: str) -> tuple[str, bool]:
    """The share path of ``key`` and whether it names a folder (a key ending in ``/``)."""
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_KEY:
        raise S3Error("KeyTooLongError", "Your key is too long.")
    if not key:
        raise S3Error("InvalidArgument", "An object key may not be empty.")
    folder = key.endswith("/")
    segments = (key[:-1] if folder else key).split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise S3Error(
                "InvalidArgument",
                f"The key {key!r} cannot be a file: it has an empty, '.' or '..' part.",
            )
        if len(segment.encode("utf-8", "surrogatepass")) > 255:
            raise S3Error("KeyTooLongError", f"A part of the key {key!r} is longer than 255 bytes.")
        if "\x00" in segment:
            raise S3Error("InvalidArgument", "An object key may not contain a NUL byte.")
    if segments[0] == INTERNAL_DIR:
        raise S3Error("InvalidArgument", f"Keys under {INTERNAL_DIR}/ are reserved.")
    return "/" + "/".join(segments), folder


@dataclass
class ObjectMeta:
    etag: str = ""
    size: int = -1
    mtime_ns: int = -1
    headers: dict[str, str] = field(default_factory=dict)
    user: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix
    tags: dict[str, str] = field(default_factory=dict)  # object tagging, in the given order
    # the additional checksum the client sent with the bytes: {"crc32": base64}
    checksums: dict[str, str] = field(default_factory=dict)
    # versioning (protocols/s3/versions.py): the version id ("": the null version) and
    # whether this is a delete marker (an empty file in the versions folder)
    version_id: str = ""
    delete_marker: bool = False
    # Object Lock: "GOVERNANCE" or "COMPLIANCE" ("": none) until lock_until (ISO 8601, UTC),
    # and the legal hold
    lock_mode: str = ""
    lock_until: str = ""
    legal_hold: bool = False
    # a multipart upload's part sizes, in order (GetObject ?partNumber=N); empty otherwise
    parts: list[int] = field(default_factory=list)

    def dump(self) -> bytes:
        data: dict[str, object] = {
            "etag": self.etag,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "headers": self.headers,
            "user": self.user,
            "tags": self.tags,
            "checksums": self.checksums,
        }
        for name in (
            "version_id",
            "delete_marker",
            "lock_mode",
            "lock_until",
            "legal_hold",
            "parts",
        ):
            if getattr(self, name):
                data[name] = getattr(self, name)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def load(cls, raw: bytes | None) -> ObjectMeta | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(
                etag=str(data["etag"]),
                size=int(data["size"]),
                mtime_ns=int(data["mtime_ns"]),
                headers={str(k): str(v) for k, v in data.get("headers", {}).items()},
                user={str(k): str(v) for k, v in data.get("user", {}).items()},
                # records written before tagging and checksums have neither
                tags={str(k): str(v) for k, v in data.get("tags", {}).items()},
                checksums={str(k): str(v) for k, v in data.get("checksums", {}).items()},
                version_id=str(data.get("version_id", "")),
                delete_marker=bool(data.get("delete_marker", False)),
                lock_mode=str(data.get("lock_mode", "")),
                lock_until=str(data.get("lock_until", "")),
                legal_hold=bool(data.get("legal_hold", False)),
                parts=[int(n) for n in data.get("parts", [])],
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def stored_meta(view: ShareView, path: str, file: ReadFile | None = None) -> ObjectMeta | None:
    """The metadata S3 keeps with the file (read from ``file`` where it is open), if any."""
    try:
        items = file.get_meta() if file is not None else view.get_meta(path)
    except FsError:
        return None
    return ObjectMeta.load(items.get(META_NAME))


def fresh(stored: ObjectMeta | None, entry: Entry) -> bool:
    """Whether ``stored`` still describes the file (nobody changed it since S3 wrote it)."""
    return stored is not None and (stored.size, stored.mtime_ns) == (entry.size, entry.mtime_ns)


def meta_of(view: ShareView, path: str, entry: Entry, file: ReadFile | None = None) -> ObjectMeta:
    """The object's metadata; computed anew (and kept, where the view may write) when the file
    changed since S3 wrote it, or S3 never did. ``file``: the object's file, open."""
    if entry.is_dir:
        return ObjectMeta(etag=hashlib.md5(b"", usedforsecurity=False).hexdigest(), size=0)
    stored = stored_meta(view, path, file)
    if stored is not None and fresh(stored, entry):
        return stored
    digest = hashlib.md5(usedforsecurity=False)
    with view.open_read(path) as whole:
        for chunk in whole.chunks():
            digest.update(chunk)
    meta = ObjectMeta(
        etag=digest.hexdigest(),
        size=entry.size,
        mtime_ns=entry.mtime_ns,
        headers={"content-type": content_type(entry.name)},
        # tags name the file, not its bytes: a change in place over SMB keeps them (a
        # checksum of the old bytes is dropped with the old ETag)
        tags=stored.tags if stored is not None else {},
    )
    if view.writable and path.split("/", 2)[1] != SNAPSHOTS_DIR:
        try:
            now = view.stat(path)
            if (now.size, now.mtime_ns) == (entry.size, entry.mtime_ns):
                view.set_meta(path, META_NAME, meta.dump(), emit=False)
        except FsError:
            pass
    return meta


@dataclass(frozen=True)
class Listed:
    key: str
    entry: Entry


def walk(view: ShareView, prefix: str, delimiter: str, start_after: str) -> Iterator[Listed | str]:
    """Objects (``Listed``) and common prefixes (``str``) of keys that start with ``prefix``
    and sort after ``start_after``, in UTF-8 binary order, as ListObjects gives them."""
    base = prefix.rpartition("/")[0]  # the deepest folder every key with the prefix is in
    top = "" if not base else base + "/"
    try:
        key_path(top or "x")  # a prefix whose folder part cannot be a path matches nothing
    except S3Error:
        return
    last_prefix = ""
    for key, entry in _keys(view, top, start_after, prefix, delimiter):
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if common != last_prefix:
                    last_prefix = common
                    if common > start_after:
                        yield common
                continue
        yield Listed(key, entry)


def _bkey(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _keys(
    view: ShareView, folder: str, start_after: str, prefix: str, delimiter: str
) -> Iterator[tuple[str, Entry]]:
    """Every key below ``folder`` (``""`` or ``"a/b/"``) in binary order, skipping folders
    that hold no key after ``start_after`` or with ``prefix``."""
    try:
        entries = view.list("/" + folder.rstrip("/"))
    except FsError:
        return
    if not folder:
        entries = [e for e in entries if e.name not in (INTERNAL_DIR, SNAPSHOTS_DIR)]
    named = sorted(
        ((folder + e.name + ("/" if e.is_dir else ""), e) for e in entries),
        key=lambda item: _bkey(item[0]),
    )
    bstart, bprefix = _bkey(start_after), _bkey(prefix)
    for key, entry in named:
        bkey = _bkey(key)
        if entry.is_dir:
            # nothing below it can match or come after start_after
            if not (bkey.startswith(bprefix) or bprefix.startswith(bkey)):
                continue
            if bkey < bstart and not bstart.startswith(bkey):
                continue
            if delimiter == "/" and bkey.startswith(bprefix) and len(bkey) > len(bprefix):
                yield key, entry  # rolled up into a common prefix: no need to look inside
                continue
            found = False
            for item in _keys(view, key, start_after, prefix, delimiter):
                found = True
                yield item
            if not found and bkey.startswith(bprefix) and bkey > bstart:
                yield key, entry  # an empty folder is the folder object "key/"
            continue
        if bkey.startswith(bprefix) and bkey > bstart:
            yield key, entry
