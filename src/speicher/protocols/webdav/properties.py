"""Dead properties (PROPPATCH) kept as ShareFS metadata: extended attributes of the file or
folder itself, so they survive restarts, move with a MOVE (a rename keeps the inode), are
copied by COPY (ShareFS copies metadata), stay with a file a PUT replaces (``keep_meta``) and
go with a DELETE.

One property is one metadata item: the key is ``dav.`` and a hash of the property's name in
Clark notation (names can be longer than an xattr name may be), the value is the name, a NUL
(which XML cannot contain) and the property's XML as the client sent it.
"""

from __future__ import annotations

import errno
import hashlib
from typing import Any
from urllib.parse import unquote

from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError

from speicher.files import FsError
from speicher.protocols.webdav.provider import context, dav_error, split

KEY_PREFIX = "dav."
MAX_VALUE = 16 * 1024  # what one btrfs xattr holds comfortably (a node is 16 KiB)


def key_of(name: str) -> str:
    return KEY_PREFIX + hashlib.sha256(name.encode("utf-8")).hexdigest()[:40]


class MetaProperties:
    """wsgidav's property manager interface over ShareFS metadata. ``norm_url`` is the
    resource's quoted URL below the mount (``/share/a/b``); the request's view of the share
    does the work, so the user's access applies to properties too."""

    def __repr__(self) -> str:
        return "MetaProperties"

    def _target(self, norm_url: str, environ: dict[str, Any]) -> tuple[Any, str] | None:
        share, rel = split(unquote(norm_url))
        if not share:
            return None
        view = context(environ).view(share)
        return (view, rel) if view is not None else None

    def _all(self, norm_url: str, environ: dict[str, Any]) -> dict[str, bytes]:
        """name -> XML of the resource's dead properties (read once per request)."""
        target = self._target(norm_url, environ)
        if target is None:
            return {}
        view, rel = target
        cache = context(environ).meta
        key = (view.share, rel)
        if key not in cache:
            try:
                items = view.get_meta(rel)
            except FsError:
                items = {}
            found = {}
            for item, value in items.items():
                if item.startswith(KEY_PREFIX) and b"\x00" in value:
                    name, _, xml = value.partition(b"\x00")
                    found[name.decode("utf-8", "replace")] = xml
            cache[key] = found
        return cache[key]

    def get_properties(self, norm_url: str, environ: dict[str, Any]) -> list[str]:
        return list(self._all(norm_url, environ))

    def get_property(self, norm_url: str, name: str, environ: dict[str, Any]) -> bytes | None:
        return self._all(norm_url, environ).get(name)

    def _set(
        self, norm_url: str, name: str, xml: bytes | None, dry_run: bool, environ: dict[str, Any]
    ) -> None:
        target = self._target(norm_url, environ)
        if target is None:
            raise DAVError(HTTP_FORBIDDEN, "the list of shares has no properties")
        view, rel = target
        if xml is not None and len(xml) + len(name) > MAX_VALUE:
            raise dav_error(FsError(errno.ENOSPC, "the property is too large"))
        if not view.writable:
            raise DAVError(HTTP_FORBIDDEN, "read-only access to this share")
        if dry_run:
            return
        value = None if xml is None else name.encode("utf-8") + b"\x00" + xml
        try:
            view.set_meta(rel, key_of(name), value)
        except FsError as exc:
            raise dav_error(exc) from None
        context(environ).meta.pop((view.share, rel), None)

    def write_property(
        self,
        norm_url: str,
        name: str,
        property_value: bytes,
        dry_run: bool = False,
        environ: dict[str, Any] | None = None,
    ) -> None:
        assert environ is not None
        self._set(norm_url, name, property_value, dry_run, environ)

    def remove_property(
        self,
        norm_url: str,
        name: str,
        dry_run: bool = False,
        environ: dict[str, Any] | None = None,
    ) -> None:
        """Removing a property that does not exist is no error (RFC 4918, 9.2)."""
        assert environ is not None
        self._set(norm_url, name, None, dry_run, environ)

    # The metadata belongs to the file or folder itself: deleting it deletes them, a rename
    # moves them and ShareFS's copy copies them, so there is nothing to do for these.

    def remove_properties(self, norm_url: str, environ: dict[str, Any] | None = None) -> None:
        return None

    def copy_properties(
        self, src_url: str, dest_url: str, environ: dict[str, Any] | None = None
    ) -> None:
        return None

    def move_properties(
        self,
        src_url: str,
        dest_url: str,
        with_children: bool,
        environ: dict[str, Any] | None = None,
    ) -> None:
        return None
