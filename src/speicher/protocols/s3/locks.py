"""S3 Object Lock on versions (filled in with Object Lock; versioning calls these)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from speicher.files import InternalFolder, ShareView
from speicher.protocols.s3.objects import ObjectMeta


def check_removable(meta: ObjectMeta, bypass: str) -> None:
    """AccessDenied when the version ``meta`` describes may not go yet."""


def unprotect(folder: InternalFolder, name: str) -> None:
    """Lift the immutable attribute of a version file before it is removed."""


def protect(folder: InternalFolder, name: str, meta: ObjectMeta) -> None:
    """Set the immutable attribute of a version file that is locked."""


def protect_in_share(view: ShareView, path: str, meta: ObjectMeta) -> None:
    """Set the immutable attribute of the current file when its version is locked."""


@contextlib.contextmanager
def lifted(folder: InternalFolder, name: str, meta: ObjectMeta) -> Iterator[None]:
    yield


@contextlib.contextmanager
def lifted_in_share(view: ShareView, path: str, meta: ObjectMeta) -> Iterator[None]:
    yield


def headers(meta: ObjectMeta) -> list[tuple[bytes, bytes]]:
    """The Object Lock headers of a GET or HEAD."""
    return []


def may_bypass(context: object) -> bool:
    """Whether the request asks to bypass GOVERNANCE retention and its user may."""
    return False


def apply_request(context: object, bucket: str, meta: ObjectMeta) -> None:
    """The lock a write asks for (headers) or the bucket's default retention, onto ``meta``."""


def for_record(context: object, bucket: str) -> dict[str, str]:
    """The lock a CreateMultipartUpload asks for, kept in the upload's record."""
    return {}


def from_record(lock: dict[str, str], meta: ObjectMeta) -> None:
    """An upload record's lock onto the completed object's ``meta``."""
