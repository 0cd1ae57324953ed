"""S3 versioning over ShareFS: the current version of a key is the file in the share; older
versions and delete markers live in the share's internal storage (docs/s3.md, Versioning).

Layout: ``.speicher/s3/versions/<h>/`` per key, ``h`` the first 40 hex digits of the
SHA-256 of the key (UTF-8), holding

- ``key``: the key itself, so a listing finds keys that have only old versions or a delete
  marker (no file in the share);
- one file per version, named by its version id (``null`` for the null version): the
  version's bytes, moved or hard-linked there, never copied, with the object's metadata
  attribute (``user.speicher.meta.s3``: ETag, headers, ``version_id``, lock state) as it had
  it in the share; a delete marker is an empty file whose metadata says ``delete_marker``.

Version ids are 16 hex digits of the creation time in nanoseconds followed by 16 random
URL-safe characters (96 bits): unguessable, and they sort as they were made, which is the
order of a key's versions (newest first). The ``null`` version sorts by its file's mtime.
A file without a version id in its metadata (written over SMB, or before versioning) is the
``null`` version. One change of a key's versions at a time: a ``flock`` on its folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import heapq
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeXml

from speicher.errors import Forbidden, SpeicherError
from speicher.files import Entry, FsError, InternalFolder, ReadFile, ShareView, Upload, seals
from speicher.hooks import POOL_DESTROYING, SHARE_DELETING, Hooks
from speicher.protocols.s3 import app as s3app
from speicher.protocols.s3 import locks
from speicher.protocols.s3.errors import S3Error
from speicher.protocols.s3.objects import META_NAME, ObjectMeta, key_path, meta_of, walk
from speicher.system import attrs, beneath

if TYPE_CHECKING:
    from speicher.files import ShareFS
    from speicher.protocols.s3.app import _Context
    from speicher.storage.shares import ShareService

VERSIONS = ("s3", "versions")
KEY_FILE = "key"
NULL = "null"
ENABLED = "Enabled"
SUSPENDED = "Suspended"
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000
_ID = re.compile(r"[0-9a-f]{16}[A-Za-z0-9_-]{16}")


def new_id() -> str:
    return f"{time.time_ns():016x}{secrets.token_urlsafe(12)}"


def check_id(version: str) -> None:
    """A version id a client sent: ``null`` or one of ours (``InvalidArgument`` else)."""
    if version != NULL and not _ID.fullmatch(version):
        raise S3Error("InvalidArgument", "Invalid version id specified")


def _folder_name(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass
class Version:
    key: str
    id: str  # "null" for the null version
    entry: Entry
    meta: ObjectMeta
    current: bool  # the file in the share (else a file of the versions folder)

    @property
    def marker(self) -> bool:
        return self.meta.delete_marker

    @property
    def stamp(self) -> int:
        return int(self.id[:16], 16) if self.id != NULL else self.entry.mtime_ns


def _root(view: ShareView, create: bool) -> InternalFolder | None:
    try:
        return view.internal(*VERSIONS, create=create)
    except FsError as exc:
        if exc.code == errno.ENOENT:
            return None
        raise


@contextlib.contextmanager
def key_folder(view: ShareView, key: str, create: bool = False) -> Iterator[InternalFolder | None]:
    """The versions folder of ``key``, open and locked (None: it has none)."""
    root = _root(view, create)
    if root is None:
        yield None
        return
    with root:
        try:
            folder = root.folder(_folder_name(key), create)
        except FsError as exc:
            if exc.code == errno.ENOENT:
                yield None
                return
            raise
        with folder, folder.locked():
            if create:
                try:
                    folder.stat(KEY_FILE)
                except FsError:
                    folder.write(KEY_FILE, key.encode("utf-8", "surrogatepass"))
            yield folder
            if len(folder.names()) <= 1:  # no version but the file in the share: no folder
                with contextlib.suppress(FsError):
                    root.remove_tree(_folder_name(key))


def _current(view: ShareView, key: str) -> Version | None:
    """The file of ``key`` in the share, as a version (folder objects are not versioned)."""
    path = "/" + key
    try:
        entry = view.stat(path)
    except FsError as exc:
        if exc.code in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    if entry.is_dir:
        return None
    meta = meta_of(view, path, entry)
    return Version(key, meta.version_id or NULL, entry, meta, True)


def _archived(folder: InternalFolder, key: str) -> list[Version]:
    """The versions in the folder, newest first."""
    found = []
    for name in folder.names():
        if name == KEY_FILE:
            continue
        try:
            with folder.open_read(name) as file:
                meta = ObjectMeta.load(folder.get_attr(file.fd, META_NAME))
                if meta is None:  # not ours as written: its bytes say what it is
                    digest = hashlib.md5(usedforsecurity=False)
                    for chunk in file.chunks():
                        digest.update(chunk)
                    meta = ObjectMeta(etag=digest.hexdigest(), size=file.entry.size)
                found.append(Version(key, name, file.entry, meta, False))
        except FsError:
            continue
    found.sort(key=lambda v: v.stamp, reverse=True)
    return found


def all_versions(view: ShareView, key: str, folder: InternalFolder | None) -> list[Version]:
    """Every version of ``key``, newest first: the file in the share (always the latest
    where there is one), then the versions folder's."""
    current = _current(view, key)
    rest = _archived(folder, key) if folder is not None else []
    return ([current] if current is not None else []) + rest


def latest(versions: list[Version]) -> Version | None:
    """The latest version: the file in the share, or a delete marker on top of the folder.
    (A key whose file was deleted over another protocol has no latest version.)"""
    if versions and (versions[0].current or versions[0].marker):
        return versions[0]
    return None


def _meta_in(folder: InternalFolder, name: str) -> ObjectMeta | None:
    try:
        with folder.open_read(name) as file:
            return ObjectMeta.load(folder.get_attr(file.fd, META_NAME))
    except FsError:
        return None


def _remove(folder: InternalFolder, name: str, check: bool = True) -> None:
    """Remove version file ``name`` if there is one (AccessDenied while it is locked)."""
    meta = _meta_in(folder, name)
    if meta is not None and check:
        locks.check_removable(meta, "")
    with contextlib.suppress(FsError):
        locks.unprotect(folder, name)
        folder.remove(name)


def _make_parents(view: ShareView, path: str) -> None:
    parts = path.strip("/").split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        with contextlib.suppress(FsError):
            view.mkdir("/" + "/".join(parts[:depth]))


def _promote(view: ShareView, folder: InternalFolder, key: str) -> None:
    """The newest version of the folder becomes the file in the share again, unless it is a
    delete marker (which then is the latest version)."""
    rest = _archived(folder, key)
    if not rest or rest[0].marker:
        return
    top = rest[0]
    path = "/" + key
    _make_parents(view, path)
    with locks.lifted(folder, top.id, top.meta):
        view.move_in(folder, top.id, path)
    locks.protect_in_share(view, path, top.meta)


def _remove_empty_parents(view: ShareView, path: str) -> None:
    parts = path.strip("/").split("/")[:-1]
    while parts:
        try:
            view.rmdir("/" + "/".join(parts))
        except FsError:
            return
        parts.pop()


# -- writing: PUT, CopyObject and CompleteMultipartUpload replace the current file ---------


def commit(upload: Upload, meta: ObjectMeta, state: str, key: str) -> Entry:
    """Commit ``upload`` as the new current version of ``key`` in a bucket whose versioning
    is ``state``; the file it replaces stays as a version (hard-linked into the versions
    folder just before the rename), except a null version replaced by a null one
    (Suspended). ``meta.version_id`` is the new version's id afterwards."""
    view = upload.view
    path = "/" + key
    meta.version_id = new_id() if state == ENABLED else ""
    with key_folder(view, key, create=True) as folder:
        assert folder is not None
        current = _current(view, key)
        if current is not None and current.id == NULL and state != ENABLED:
            locks.check_removable(current.meta, "")  # a locked null version stays
        if state != ENABLED or (current is not None and current.id == NULL):
            old_null = _meta_in(folder, NULL)  # the null version this write replaces
            if old_null is not None:
                locks.check_removable(old_null, "")
        kept = ""

        def keep() -> None:
            nonlocal kept
            if current is None or (state != ENABLED and current.id == NULL):
                return
            _remove(folder, current.id)  # an older null version (only null comes twice)
            with locks.lifted_in_share(view, path, current.meta):
                view.link_out(path, folder, current.id)
            kept = current.id

        now = upload.stat()
        meta.size, meta.mtime_ns = now.size, now.mtime_ns
        upload.set_meta(META_NAME, meta.dump())
        try:
            entry = upload.commit(before_rename=keep)
        except BaseException:
            if kept and current is not None:
                with contextlib.suppress(FsError):
                    if folder.stat(kept).st_nlink > 1:  # the rename did not happen
                        folder.remove(kept)
                        locks.protect_in_share(view, path, current.meta)
            raise
        if kept and current is not None:  # the old version keeps its lock where it is now
            locks.protect(folder, kept, current.meta)
        if state != ENABLED:
            _remove(folder, NULL)
        locks.protect_in_share(view, path, meta)
        if current is not None:
            locks.settle_in_share(view, path, current.meta, meta)
        return entry


# -- deleting ----------------------------------------------------------------------------------


@dataclass
class Deleted:
    version_id: str | None  # for x-amz-version-id (None: not versioned)
    marker: bool  # x-amz-delete-marker: true


def delete(view: ShareView, key: str, state: str, version: str | None, bypass: bool) -> Deleted:
    """DeleteObject in a bucket that is or was versioned (``state`` not empty)."""
    path = "/" + key
    if version is not None:
        check_id(version)
        return _delete_version(view, key, version, bypass)
    with key_folder(view, key, create=True) as folder:
        assert folder is not None
        current = _current(view, key)
        if current is not None:
            if state != ENABLED and current.id == NULL:
                locks.check_removable(current.meta, "")
                with locks.lifted_in_share(view, path, current.meta):
                    view.delete(path)
            else:
                _remove(folder, current.id)
                with locks.lifted_in_share(view, path, current.meta):
                    view.move_out(path, folder, current.id)
                locks.protect(folder, current.id, current.meta)
            _remove_empty_parents(view, path)
            locks.settle_in_share(view, path, current.meta, None)
        marker_id = new_id() if state == ENABLED else NULL
        if marker_id == NULL:
            _remove(folder, NULL)
        with folder.create() as file:
            file.set_attr(
                META_NAME,
                ObjectMeta(
                    etag="",
                    size=0,
                    mtime_ns=time.time_ns(),
                    version_id=marker_id,
                    delete_marker=True,
                ).dump(),
            )
            file.publish(marker_id)
    return Deleted(marker_id, True)


def _delete_version(view: ShareView, key: str, version: str, bypass: bool) -> Deleted:
    path = "/" + key
    with key_folder(view, key) as folder:
        current = _current(view, key)
        if current is not None and current.id == version:
            locks.check_removable(current.meta, "governance" if bypass else "")
            with locks.lifted_in_share(view, path, current.meta):
                view.delete(path)
            if folder is not None:
                _promote(view, folder, key)
            if _current(view, key) is None:
                _remove_empty_parents(view, path)
            locks.settle_in_share(view, path, current.meta, None)
            return Deleted(version, False)
        if folder is None:
            return Deleted(version, False)
        rest = _archived(folder, key)
        found = next((v for v in rest if v.id == version), None)
        if found is None:
            return Deleted(version, False)  # AWS: a version that is not there is deleted
        locks.check_removable(found.meta, "governance" if bypass else "")
        _remove(folder, version)
        if current is None and rest[0] is found:
            _promote(view, folder, key)
        return Deleted(version, found.marker)


# -- reading a version -------------------------------------------------------------------------


@dataclass
class Found:
    version: Version
    folder: InternalFolder | None  # open while the caller reads an archived version


def find(view: ShareView, key: str, version: str | None) -> Version | None:
    """The version GET/HEAD mean: ``version`` (NoSuchVersion if there is none), or the latest
    (None when the key has none that is a file: the caller's NoSuchKey, with the delete
    marker's headers raised here)."""
    with key_folder(view, key) as folder:
        versions = all_versions(view, key, folder)
    if version is None:
        top = latest(versions)
        if top is not None and top.marker:
            raise S3Error(
                "NoSuchKey",
                "The specified key does not exist.",
                404,
                headers=[(b"x-amz-delete-marker", b"true"), (b"x-amz-version-id", top.id.encode())],
            )
        return top
    check_id(version)
    for found in versions:
        if found.id == version:
            if found.marker:
                raise S3Error(
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                    405,
                    headers=[
                        (b"x-amz-delete-marker", b"true"),
                        (b"x-amz-version-id", version.encode()),
                        (b"allow", b"DELETE"),
                    ],
                )
            return found
    raise S3Error("NoSuchVersion", "The specified version does not exist.", 404)


def open_archived(view: ShareView, version: Version) -> ReadFile:
    """An archived version's bytes, open."""
    root = _root(view, False)
    if root is None:
        raise S3Error("NoSuchVersion", "The specified version does not exist.", 404)
    with root:
        folder = root.folder(_folder_name(version.key))
    with folder:
        try:
            return folder.open_read(version.id)
        except FsError:
            raise S3Error("NoSuchVersion", "The specified version does not exist.", 404) from None


def has_versions(view: ShareView) -> bool:
    """Whether any key has an old version or a delete marker (DeleteBucket: not empty)."""
    root = _root(view, False)
    if root is None:
        return False
    with root:
        return bool(root.names())


# -- the bucket's versioning setting -----------------------------------------------------------


def parse_config(body: bytes) -> str:
    """The Status of a ``VersioningConfiguration`` ("" when it has none)."""
    try:
        root = SafeXml.fromstring(body, forbid_dtd=True)
    except (SafeXml.ParseError, ValueError):
        raise _malformed() from None
    if root.tag.rpartition("}")[2] != "VersioningConfiguration":
        raise _malformed()
    status = ""
    for child in root:
        name = child.tag.rpartition("}")[2]
        text = (child.text or "").strip()
        if name == "Status":
            if text not in (ENABLED, SUSPENDED):
                raise _malformed()
            status = text
        elif name == "MfaDelete":
            if text == "Enabled":
                raise S3Error("NotImplemented", "MFA delete is not supported by this server.")
            if text != "Disabled":
                raise _malformed()
        else:
            raise _malformed()
    return status


def _malformed() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def config_xml(state: str) -> bytes:
    inner = f"<Status>{state}</Status>" if state else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<VersioningConfiguration xmlns="{XMLNS}">{inner}</VersioningConfiguration>'
    ).encode()


# -- ListObjectVersions ------------------------------------------------------------------------


def _bkey(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _history_keys(view: ShareView, prefix: str) -> list[str]:
    """Keys with a versions folder, with ``prefix``, in binary order."""
    root = _root(view, False)
    if root is None:
        return []
    keys = []
    with root:
        for name in root.names():
            try:
                with root.folder(name) as folder:
                    raw = folder.read(KEY_FILE, 4096)
            except FsError:
                continue
            key = raw.decode("utf-8", "surrogateescape")
            if key.startswith(prefix):
                keys.append(key)
    return sorted(keys, key=_bkey)


def _all_keys(view: ShareView, prefix: str, marker: str) -> Iterator[str]:
    """Every key with a version, with ``prefix``, from ``marker`` on (itself included), in
    binary order, once each."""
    current = (
        item.key
        for item in walk(view, prefix, "", "")
        if not isinstance(item, str) and _bkey(item.key) >= _bkey(marker)
    )
    history = (k for k in _history_keys(view, prefix) if _bkey(k) >= _bkey(marker))
    last = None
    for key in heapq.merge(current, history, key=_bkey):
        if key != last:
            last = key
            yield key


@dataclass
class _Wanted:
    """A ListObjectVersions request's parameters."""

    prefix: str
    delimiter: str
    key_marker: str
    vid_marker: str
    max_keys: int
    url: bool

    @classmethod
    def of(cls, q: dict[str, str]) -> _Wanted:
        url = q.get("encoding-type") == "url"
        if "encoding-type" in q and not url:
            raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
        try:
            max_keys = min(int(q.get("max-keys", str(MAX_KEYS))), MAX_KEYS)
        except ValueError:
            raise S3Error("InvalidArgument", "max-keys must be an integer.") from None
        if max_keys < 0:
            raise S3Error("InvalidArgument", "max-keys must not be negative.")
        wanted = cls(
            q.get("prefix", ""),
            q.get("delimiter", ""),
            q.get("key-marker", ""),
            q.get("version-id-marker", ""),
            max_keys,
            url,
        )
        if wanted.vid_marker and not wanted.key_marker:
            raise S3Error(
                "InvalidArgument", "A version-id marker cannot be specified without a key marker."
            )
        if wanted.vid_marker:
            check_id(wanted.vid_marker)
        return wanted

    def enc(self, text: str) -> str:
        return escape(quote(text, safe="") if self.url else text)


@dataclass
class _Listed:
    items: list[str]
    truncated: bool = False
    next_key: str = ""
    next_vid: str = ""


def _key_versions(
    view: ShareView, key: str, wanted: _Wanted
) -> tuple[list[Version], Version | None]:
    """A key's versions as the listing shows them (after the version marker), and its
    latest."""
    if key.endswith("/"):  # a folder object: its null version, unversioned
        found = _folder_object(view, key)
    else:
        with key_folder(view, key) as folder:
            found = all_versions(view, key, folder)
    top = latest(found)
    if key == wanted.key_marker:  # only what comes after the marker's version
        ids = [v.id for v in found]
        found = found[ids.index(wanted.vid_marker) + 1 :] if wanted.vid_marker in ids else []
    return found, top


def _collect(view: ShareView, wanted: _Wanted, owner: str) -> _Listed:
    listed = _Listed([])
    count = 0
    last_prefix = ""
    for key in _all_keys(view, wanted.prefix, wanted.key_marker):
        if key == wanted.key_marker and not wanted.vid_marker:
            continue
        cut = key.find(wanted.delimiter, len(wanted.prefix)) if wanted.delimiter else -1
        if cut >= 0:
            common = key[: cut + len(wanted.delimiter)]
            if common == last_prefix or _bkey(common) <= _bkey(wanted.key_marker):
                continue
            if count >= wanted.max_keys:
                listed.truncated = True
                break
            last_prefix = common
            listed.items.append(
                f"<CommonPrefixes><Prefix>{wanted.enc(common)}</Prefix></CommonPrefixes>"
            )
            count += 1
            listed.next_key, listed.next_vid = common, ""
            continue
        found, top = _key_versions(view, key, wanted)
        for v in found:
            if count >= wanted.max_keys:
                listed.truncated = True
                break
            listed.items.append(_entry_xml(v, v is top, wanted.enc, owner))
            count += 1
            listed.next_key, listed.next_vid = key, v.id
        if listed.truncated:
            break
    return listed


def list_versions(context: _Context, bucket: str) -> bytes:
    wanted = _Wanted.of(context.query)
    with context.view(bucket) as view:
        listed = _collect(view, wanted, context.owner())
    enc = wanted.enc
    parts = [
        f'<ListVersionsResult xmlns="{XMLNS}"><Name>{escape(bucket)}</Name>',
        f"<Prefix>{enc(wanted.prefix)}</Prefix><KeyMarker>{enc(wanted.key_marker)}</KeyMarker>",
        f"<VersionIdMarker>{escape(wanted.vid_marker)}</VersionIdMarker>",
    ]
    if listed.truncated:
        parts.append(f"<NextKeyMarker>{enc(listed.next_key)}</NextKeyMarker>")
        if listed.next_vid:
            parts.append(f"<NextVersionIdMarker>{escape(listed.next_vid)}</NextVersionIdMarker>")
    parts.append(f"<MaxKeys>{wanted.max_keys}</MaxKeys>")
    if wanted.delimiter:
        parts.append(f"<Delimiter>{enc(wanted.delimiter)}</Delimiter>")
    if wanted.url:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<IsTruncated>{'true' if listed.truncated else 'false'}</IsTruncated>")
    parts.extend(listed.items)
    parts.append("</ListVersionsResult>")
    return s3app._xml("".join(parts))


def _folder_object(view: ShareView, key: str) -> list[Version]:
    path, _folder = key_path(key)
    try:
        entry = view.stat(path)
    except FsError:
        return []
    return [Version(key, NULL, entry, meta_of(view, path, entry), True)]


def _entry_xml(v: Version, is_latest: bool, enc: Callable[[str], str], owner: str) -> str:
    iso = s3app._iso
    head = (
        f"<Key>{enc(v.key)}</Key><VersionId>{escape(v.id)}</VersionId>"
        f"<IsLatest>{'true' if is_latest else 'false'}</IsLatest>"
        f"<LastModified>{iso(v.meta.mtime_ns if v.marker else v.entry.mtime_ns)}</LastModified>"
    )
    if v.marker:
        return f"<DeleteMarker>{head}{owner}</DeleteMarker>"
    return (
        f'<Version>{head}<ETag>"{escape(v.meta.etag)}"</ETag><Size>{v.entry.size}</Size>'
        f"<StorageClass>STANDARD</StorageClass>{owner}</Version>"
    )


# -- Object Lock on one version -------------------------------------------------------------


def lock_operation(context: _Context, method: str, bucket: str, key: str, body: bytes) -> bytes:
    """Get/PutObjectRetention and Get/PutObjectLegalHold (``?retention``, ``?legal-hold``)."""
    retention = "retention" in context.query
    if not context.app.config.object_lock(bucket).get("enabled"):
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    with context.view(bucket) as view:
        chosen = find(view, key, context.query.get("versionId"))
        if chosen is None:
            raise S3Error("NoSuchKey", "The specified key does not exist.")
        if method == "GET":
            return (
                locks.retention_xml(chosen.meta) if retention else locks.legal_hold_xml(chosen.meta)
            )
        if method != "PUT":
            raise S3Error("MethodNotAllowed", "The specified method is not allowed.")
        if not view.writable:
            raise S3Error("AccessDenied", "Access Denied")
        meta = ObjectMeta.load(chosen.meta.dump()) or ObjectMeta()
        if retention:
            mode, until = locks.parse_retention(body)
            locks.check_retention_change(chosen.meta, mode, until, locks.may_bypass(context))
            meta.lock_mode, meta.lock_until = mode, until
        else:
            meta.legal_hold = locks.parse_legal_hold(body)
        with key_folder(view, key) as folder:
            _rewrite(view, folder, chosen, meta)
    return b""


def _rewrite(
    view: ShareView, folder: InternalFolder | None, chosen: Version, meta: ObjectMeta
) -> None:
    path = "/" + chosen.key
    if chosen.current:
        with locks.lifted_in_share(view, path, chosen.meta):
            view.set_meta(path, META_NAME, meta.dump(), emit=False)
        locks.protect_in_share(view, path, meta)
        locks.settle_in_share(view, path, chosen.meta, meta)
        return
    if folder is None:
        raise S3Error("NoSuchVersion", "The specified version does not exist.", 404)
    with locks.lifted(folder, chosen.id, chosen.meta):
        folder.set_attr_of(chosen.id, META_NAME, meta.dump())
    locks.protect(folder, chosen.id, meta)
    locks.note_extended(view, chosen.key, chosen.id, meta)


def expire_one(files: ShareFS, top: Path, key: str, version: str, now_ns: int) -> bool:
    """Lift the attribute of version ``version`` of ``key`` if its retention ended and no
    legal hold remains; whether it was lifted."""
    with contextlib.suppress(FsError, OSError):
        path = key_path(key)[0]
        parent, _, name = path[1:].rpartition("/")
        root = beneath.open_root(top)
        try:
            dir_fd = beneath.open_dir(root, parent) if parent else os.dup(root)
            try:
                lifted = _lift_if_over(dir_fd, name, version, now_ns, in_share=True)
            finally:
                os.close(dir_fd)
            if lifted:
                if parent:  # the folders above it need no seal for it any more
                    with contextlib.suppress(OSError):
                        seals.settle(root, tuple(parent.split("/")))
                return True
        finally:
            os.close(root)
    folder = files.internal_of(top, *VERSIONS, _folder_name(key))
    if folder is None:
        return False
    with folder, contextlib.suppress(FsError, OSError):
        return _lift_if_over(folder.fd, version, version, now_ns, in_share=False)
    return False


def _lift_if_over(dir_fd: int, name: str, version: str, now_ns: int, in_share: bool) -> bool:
    fd = os.open(name, attrs.OPEN_FLAGS, dir_fd=dir_fd)
    try:
        try:
            meta = ObjectMeta.load(os.getxattr(fd, "user.speicher.meta." + META_NAME))
        except OSError:
            return False
        if meta is None or (in_share and (meta.version_id or NULL) != version):
            return False
        if meta.legal_hold or locks.retained(meta, now_ns) or not attrs.immutable(fd):
            return False
        attrs.set_immutable(fd, False)
        return True
    finally:
        os.close(fd)


# -- the daemon: retention that ended; vetoes while locks last --------------------------


def expire(files: ShareFS, top: Path, now_ns: int | None = None) -> int:
    """Lift the immutable attribute of versions of the share at ``top`` whose retention
    ended (unless a legal hold remains); the number lifted."""
    now = time.time_ns() if now_ns is None else now_ns
    notes = files.internal_of(top, *locks.LOCKS)
    if notes is None:
        return 0
    lifted_count = 0
    with notes:
        for name in notes.names():
            stamp = name.split("-", 1)[0]
            if not stamp.isdigit() or int(stamp) > now:
                break  # sorted by the end of retention: the rest ends later
            try:
                note = json.loads(notes.read(name))
                key, version = str(note["key"]), str(note["version"])
            except (FsError, ValueError, KeyError, TypeError):
                with contextlib.suppress(FsError):
                    notes.remove(name)
                continue
            if expire_one(files, top, key, version, now):
                lifted_count += 1
            with contextlib.suppress(FsError):
                notes.remove(name)
    return lifted_count


def reseal(files: ShareFS, top: Path) -> int:
    """Seal the folders above every current file of the share at ``top`` that is locked
    (at start: a share locked before seals existed, or a seal lifted by hand); how many
    files' folders were sealed."""
    notes = files.internal_of(top, *locks.LOCKS)
    if notes is None:
        return 0
    now = time.time_ns()
    wanted: set[str] = set()
    with notes:
        for name in notes.names():
            stamp = name.split("-", 1)[0]
            if not stamp.isdigit() or int(stamp) <= now:
                continue
            with contextlib.suppress(FsError, ValueError, KeyError, TypeError):
                key = str(json.loads(notes.read(name))["key"])
                if "/" in key:
                    wanted.add(key)
    sealed = 0
    root = beneath.open_root(top)
    try:
        for key in sorted(wanted):
            with contextlib.suppress(OSError, S3Error):
                parts = tuple(key_path(key)[0][1:].split("/"))
                dir_fd = beneath.open_dir(root, "/".join(parts[:-1]))
                try:
                    fd = os.open(parts[-1], attrs.OPEN_FLAGS, dir_fd=dir_fd)
                finally:
                    os.close(dir_fd)
                try:
                    locked = attrs.immutable(fd)
                finally:
                    os.close(fd)
                if locked:
                    seals.seal_above(root, parts)
                    sealed += 1
    finally:
        os.close(root)
    return sealed


def locked_count(files: ShareFS, top: Path) -> int:
    """How many versions of the share at ``top`` are locked now (retention or legal hold)."""
    notes = files.internal_of(top, *locks.LOCKS)
    if notes is None:
        return 0
    now = time.time_ns()
    seen: set[tuple[str, str]] = set()
    with notes:
        for name in notes.names():
            stamp = name.split("-", 1)[0]
            if not stamp.isdigit() or int(stamp) <= now:
                continue
            try:
                note = json.loads(notes.read(name))
                seen.add((str(note["key"]), str(note["version"])))
            except (FsError, ValueError, KeyError, TypeError):
                continue
    return sum(1 for key, version in seen if _still_locked(files, top, key, version))


def _still_locked(files: ShareFS, top: Path, key: str, version: str) -> bool:
    with contextlib.suppress(FsError, OSError, S3Error):
        path = key_path(key)[0]
        parent, _, name = path[1:].rpartition("/")
        root = beneath.open_root(top)
        try:
            dir_fd = beneath.open_dir(root, parent) if parent else os.dup(root)
        finally:
            os.close(root)
        try:
            meta = _meta_at(dir_fd, name)
            if meta is not None and (meta.version_id or NULL) == version and locks.active(meta):
                return True
        finally:
            os.close(dir_fd)
    folder = files.internal_of(top, *VERSIONS, _folder_name(key))
    if folder is None:
        return False
    with folder:
        meta = _meta_in(folder, version)
        return meta is not None and locks.active(meta)


def _meta_at(dir_fd: int, name: str) -> ObjectMeta | None:
    fd = os.open(name, attrs.OPEN_FLAGS, dir_fd=dir_fd)
    try:
        return ObjectMeta.load(os.getxattr(fd, "user.speicher.meta." + META_NAME))
    except OSError:
        return None
    finally:
        os.close(fd)


def register_vetoes(hooks: Hooks, shares: ShareService, files: ShareFS) -> None:
    """Deleting a share, or destroying its pool, is refused while an S3 object lock of it
    lasts, as for locked snapshots."""

    def share_deleting(share: str, **_: object) -> None:
        try:
            top = shares.path(share)
        except SpeicherError:
            return
        count = locked_count(files, top)
        if count:
            raise Forbidden(
                f"share '{share}' has {count} S3 object version(s) under Object Lock "
                "(retention or legal hold); it cannot be deleted before they end"
            )

    def pool_destroying(pool: str, shares: list[str], **_: object) -> None:
        for share in shares:
            try:
                share_deleting(share)
            except Forbidden as exc:
                raise Forbidden(f"pool '{pool}' cannot be destroyed: {exc.message}") from None

    hooks.subscribe(SHARE_DELETING, share_deleting)
    hooks.subscribe(POOL_DESTROYING, pool_destroying)
