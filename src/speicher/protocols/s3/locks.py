"""S3 Object Lock (docs/s3.md, Object Lock; docs/immutability.md).

- A bucket has Object Lock when it was created with ``x-amz-bucket-object-lock-enabled:
  true`` (versioning forced on) or got an ``ObjectLockConfiguration`` while versioning was
  on; its configuration (enabled, a default retention) is ``shares.s3_object_lock``.
- A version's lock is in its metadata (``lock_mode``, ``lock_until``, ``legal_hold``), and a
  locked version's file has the immutable attribute, in the share or in the versions
  folder, so no protocol and no root process that does not lift it first can change or
  delete it. S3's own moves of versions lift it and set it again where AWS allows them.
- Every protection is noted in ``.speicher/s3/locks/`` (one small file per locked version,
  named by the end of its retention) so the daemon lifts the attribute when retention ends
  (:func:`expire`) without walking the share; a legal hold keeps it.
- GOVERNANCE may be shortened, removed or its version deleted only with
  ``x-amz-bypass-governance-retention: true`` by an admin; COMPLIANCE by nobody.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from defusedxml import ElementTree as SafeXml

from speicher.errors import NotFound
from speicher.files import FsError, InternalFolder, ShareView
from speicher.protocols.s3.errors import S3Error
from speicher.protocols.s3.objects import ObjectMeta

if TYPE_CHECKING:
    from speicher.protocols.s3.app import _Context

MODES = ("GOVERNANCE", "COMPLIANCE")
HOLD = 10**20 - 1  # the "end" of a legal hold in a note's name: never
LOCKS = ("s3", "locks")
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _denied() -> S3Error:
    return S3Error("AccessDenied", "Access Denied because object protected by object lock.")


def _until_ns(meta: ObjectMeta) -> int:
    if not meta.lock_mode or not meta.lock_until:
        return 0
    try:
        return int(dt.datetime.fromisoformat(meta.lock_until).timestamp() * 1e9)
    except ValueError:
        return 0


def retained(meta: ObjectMeta, now_ns: int | None = None) -> bool:
    return _until_ns(meta) > (time.time_ns() if now_ns is None else now_ns)


def active(meta: ObjectMeta) -> bool:
    return meta.legal_hold or retained(meta)


def check_removable(meta: ObjectMeta, bypass: str) -> None:
    """AccessDenied when the version ``meta`` describes may not go yet (``bypass``:
    "governance" when the request may bypass GOVERNANCE retention)."""
    if meta.legal_hold:
        raise _denied()
    if retained(meta) and (meta.lock_mode == "COMPLIANCE" or bypass != "governance"):
        raise _denied()


def _parse_date(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise S3Error(
            "InvalidArgument", "The retain until date must be an ISO 8601 timestamp."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return (
        when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    )


# -- protecting files ----------------------------------------------------------------------


def _note(view: ShareView, key: str, version: str, meta: ObjectMeta) -> None:
    """An entry for the daemon: this version's retention ends at ``lock_until``."""
    with contextlib.suppress(FsError), view.internal(*LOCKS, create=True) as notes:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        until = _until_ns(meta) if meta.lock_mode else HOLD
        name = f"{until:020d}-{digest}-{version}"
        notes.write(name, json.dumps({"key": key, "version": version}).encode())


def protect(folder: InternalFolder, name: str, meta: ObjectMeta) -> None:
    """Set the immutable attribute of a version file that is locked."""
    if active(meta):
        folder.set_immutable(name, True)


def unprotect(folder: InternalFolder, name: str) -> None:
    with contextlib.suppress(FsError):
        folder.set_immutable(name, False)


def protect_in_share(view: ShareView, path: str, meta: ObjectMeta) -> None:
    """Set the immutable attribute of the current file when its version is locked, and seal
    the folders above it (files/seals.py)."""
    if active(meta):
        view.protect(path)
        note_extended(view, path[1:], meta.version_id or "null", meta)


def settle_in_share(
    view: ShareView, path: str, before: ObjectMeta, after: ObjectMeta | None
) -> None:
    """After the current file at ``path`` changed from version ``before`` to ``after``
    (None: no current file now): where a lock left it, lift the seals above it that no other
    lock needs."""
    if active(before) and not (after is not None and active(after)):
        with contextlib.suppress(FsError):
            view.settle(path)


@contextlib.contextmanager
def lifted(folder: InternalFolder, name: str, meta: ObjectMeta) -> Iterator[None]:
    """The attribute of a version file lifted for the block (set again if it fails)."""
    if not active(meta):
        yield
        return
    folder.set_immutable(name, False)
    try:
        yield
    except BaseException:
        with contextlib.suppress(FsError):
            folder.set_immutable(name, True)
        raise


@contextlib.contextmanager
def lifted_in_share(view: ShareView, path: str, meta: ObjectMeta) -> Iterator[None]:
    """The attribute of the current file lifted for the block (set again if it fails)."""
    if not active(meta):
        yield
        return
    view.set_immutable(path, False)
    try:
        yield
    except BaseException:
        with contextlib.suppress(FsError):
            view.set_immutable(path, True)
        raise


# -- what a request asks for -----------------------------------------------------------------


def headers(meta: ObjectMeta) -> list[tuple[bytes, bytes]]:
    """The Object Lock headers of a GET or HEAD."""
    out = []
    if meta.lock_mode and meta.lock_until:
        out.append((b"x-amz-object-lock-mode", meta.lock_mode.encode()))
        out.append((b"x-amz-object-lock-retain-until-date", meta.lock_until.encode()))
    if meta.legal_hold:
        out.append((b"x-amz-object-lock-legal-hold", b"ON"))
    return out


def may_bypass(context: _Context) -> bool:
    """Whether the request asks to bypass GOVERNANCE retention and its user may: admins."""
    if context.headers.get("x-amz-bypass-governance-retention", "").lower() != "true":
        return False
    try:
        return context.app.services.users.get(context.user).admin
    except NotFound:
        return False


def _wanted(context: _Context, bucket: str) -> dict[str, str]:
    h = context.headers
    mode = h.get("x-amz-object-lock-mode", "")
    until = h.get("x-amz-object-lock-retain-until-date", "")
    hold = h.get("x-amz-object-lock-legal-hold", "")
    config = context.app.config.object_lock(bucket)
    if (mode or until or hold) and not config.get("enabled"):
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    if bool(mode) != bool(until):
        raise S3Error(
            "InvalidArgument",
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )
    if mode and mode not in MODES:
        raise S3Error("InvalidArgument", "Unknown wormMode directive.")
    if hold and hold not in ("ON", "OFF"):
        raise S3Error("InvalidArgument", "Legal Hold must be either of 'ON' or 'OFF'")
    out: dict[str, str] = {}
    if until:
        when = _parse_date(until)
        if when <= dt.datetime.now(dt.UTC):
            raise S3Error("InvalidArgument", "The retain until date must be in the future!")
        out = {"mode": mode, "until": _iso(when)}
    elif config.get("mode"):
        days = int(config.get("days") or 0) + 365 * int(config.get("years") or 0)
        when = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
        out = {"mode": str(config["mode"]), "until": _iso(when)}
    if hold == "ON":
        out["legal_hold"] = "ON"
    return out


def apply_request(context: _Context, bucket: str, meta: ObjectMeta) -> None:
    """The lock a write asks for (headers) or the bucket's default retention, onto ``meta``."""
    from_record(_wanted(context, bucket), meta)


def for_record(context: _Context, bucket: str) -> dict[str, str]:
    """The lock a CreateMultipartUpload asks for, kept in the upload's record."""
    return _wanted(context, bucket)


def from_record(lock: dict[str, str], meta: ObjectMeta) -> None:
    meta.lock_mode = lock.get("mode", "")
    meta.lock_until = lock.get("until", "")
    meta.legal_hold = lock.get("legal_hold") == "ON"


# -- the bucket's configuration ----------------------------------------------------------------


def _malformed() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def _xml_tree(body: bytes, root: str) -> Any:
    try:
        tree = SafeXml.fromstring(body, forbid_dtd=True)
    except (SafeXml.ParseError, ValueError):
        raise _malformed() from None
    if tree.tag.rpartition("}")[2] != root:
        raise _malformed()
    return tree


def _children(element: Any) -> dict[str, Any]:
    return {child.tag.rpartition("}")[2]: child for child in element}


def parse_config(body: bytes) -> dict[str, Any]:
    tree = _children(_xml_tree(body, "ObjectLockConfiguration"))
    enabled = tree.get("ObjectLockEnabled")
    if enabled is None or (enabled.text or "").strip() != "Enabled":
        raise _malformed()
    config: dict[str, Any] = {"enabled": True}
    rule = tree.get("Rule")
    if rule is not None:
        retention = _children(rule).get("DefaultRetention")
        if retention is None:
            raise _malformed()
        parts = {k: (v.text or "").strip() for k, v in _children(retention).items()}
        mode = parts.get("Mode", "")
        if mode not in MODES:
            raise _malformed()
        if ("Days" in parts) == ("Years" in parts):
            raise _malformed()
        amount = parts.get("Days") or parts.get("Years") or ""
        if not amount.isdigit() or int(amount) <= 0:
            raise S3Error(
                "InvalidArgument", "Default retention period must be a positive integer value."
            )
        config["mode"] = mode
        config["days" if "Days" in parts else "years"] = int(amount)
    return config


def config_xml(config: dict[str, Any]) -> bytes:
    rule = ""
    if config.get("mode"):
        unit, amount = (
            ("Days", config["days"]) if config.get("days") else ("Years", config["years"])
        )
        rule = (
            f"<Rule><DefaultRetention><Mode>{config['mode']}</Mode><{unit}>{amount}</{unit}>"
            "</DefaultRetention></Rule>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ObjectLockConfiguration xmlns="{XMLNS}"><ObjectLockEnabled>Enabled'
        f"</ObjectLockEnabled>{rule}</ObjectLockConfiguration>"
    ).encode()


# -- retention and legal hold of one version ----------------------------------------------------


def parse_retention(body: bytes) -> tuple[str, str]:
    tree = _children(_xml_tree(body, "Retention"))
    mode = (tree["Mode"].text or "").strip() if "Mode" in tree else ""
    until = (tree["RetainUntilDate"].text or "").strip() if "RetainUntilDate" in tree else ""
    if bool(mode) != bool(until) or (mode and mode not in MODES):
        raise _malformed()
    return mode, _iso(_parse_date(until)) if until else ""


def check_retention_change(old: ObjectMeta, mode: str, until: str, bypass: bool) -> None:
    """AWS's rules: COMPLIANCE is never shortened, removed or weakened; GOVERNANCE only with
    the bypass; extending is always allowed."""
    if not retained(old):
        if until and _parse_date(until) <= dt.datetime.now(dt.UTC):
            raise S3Error("InvalidArgument", "The retain until date must be in the future!")
        return
    new = ObjectMeta(lock_mode=mode, lock_until=until)
    stronger = mode == old.lock_mode or (old.lock_mode == "GOVERNANCE" and mode == "COMPLIANCE")
    if stronger and _until_ns(new) >= _until_ns(old):
        return
    if old.lock_mode == "COMPLIANCE" or not bypass:
        raise _denied()


def retention_xml(meta: ObjectMeta) -> bytes:
    if not (meta.lock_mode and meta.lock_until):
        raise S3Error(
            "NoSuchObjectLockConfiguration",
            "The specified object does not have a ObjectLock configuration",
            404,
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Retention xmlns="{XMLNS}"><Mode>{meta.lock_mode}</Mode>'
        f"<RetainUntilDate>{meta.lock_until}</RetainUntilDate></Retention>"
    ).encode()


def parse_legal_hold(body: bytes) -> bool:
    tree = _children(_xml_tree(body, "LegalHold"))
    status = (tree["Status"].text or "").strip() if "Status" in tree else ""
    if status not in ("ON", "OFF"):
        raise _malformed()
    return status == "ON"


def legal_hold_xml(meta: ObjectMeta) -> bytes:
    status = "ON" if meta.legal_hold else "OFF"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<LegalHold xmlns="{XMLNS}"><Status>{status}</Status></LegalHold>'
    ).encode()


def note_extended(view: ShareView, key: str, version: str, meta: ObjectMeta) -> None:
    """Note a locked version for the daemon (a legal hold as never ending: share deletion
    looks at it; its release lifts the attribute itself)."""
    if meta.legal_hold:
        _note(view, key, version, ObjectMeta())
    if retained(meta):
        _note(view, key, version, meta)
