"""Share links: a file or folder of a share for people without an account.

A *download* link shows one file, or one folder with everything below it, read only. An
*upload* link ("file request") takes files into one folder and shows nothing of what is
there, up to ``max_bytes`` in all. Either may have a password (kept as an Argon2 hash) and
an expiry; its creator or an admin revokes it. The link's token (``secrets.token_urlsafe``,
192 bits) is shown once; the database keeps its SHA-256, as for sessions and API tokens, so a
copy of the database opens no link.

Rules (docs/web.md, "Share links"):

- A link acts as its creator: every request opens the share with ShareFS as the creator
  (protocol ``web``), so the creator's grant, their account being enabled and the share being
  offered are checked every time, and a link dies with any of them. An upload link needs the
  creator's write access; a download link's view is made read only.
- Nothing a link serves is outside its file or folder: the path below it is parsed with
  :func:`speicher.files.paths.parse`, a ``..`` anywhere is refused (not resolved), and ShareFS
  itself follows no symbolic link. A link never shows the share's snapshots.
- An unknown, expired or revoked link, or one whose creator lost access, is one and the same
  :class:`NotFound`, so tokens cannot be probed.
- A wrong password counts against the link and the client's address (``Throttle``, as for
  logins); a locked link is refused without an Argon2 check, and at most
  ``PASSWORD_CHECKS`` checks run at once. A right password gives a *proof* (an HMAC with a
  secret of this process, valid for ``UNLOCKED``) that the browser keeps, so the next request
  costs no Argon2 check; a restart of the daemon asks for the password again.
- An upload never replaces a file: a name that is taken becomes ``name (2).ext``. Its bytes
  are reserved against ``max_bytes`` when it starts (with the uploads in progress), and
  counted in ``bytes_received`` when it is complete; an upload that would go over the limit
  is refused before a byte is written.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from speicher.access.passwords import MAX_LENGTH, check, hash_password, verify
from speicher.access.throttle import Throttle, address_key
from speicher.db import Database, Share, User
from speicher.db.models import ShareLink, utcnow
from speicher.errors import NotFound, SpeicherError, Unauthorized, Validator
from speicher.events import EventService
from speicher.files import paths
from speicher.files.errors import FsError
from speicher.files.sharefs import Entry, ShareFS, ShareView, Upload

KINDS = ("download", "upload")
PROTOCOL = "web"
TOKEN_BYTES = 24
UNLOCKED = dt.timedelta(hours=1)  # a right password opens its link for this long
PASSWORD_CHECKS = 2  # Argon2 checks of link passwords at once (64 MiB each)
MAX_BYTES = 1 << 50  # the largest size limit of an upload link (1 PiB)
MAX_YEARS = 100
GONE = "no such link"  # the one answer for unknown, expired and revoked links

# the reasons of InvalidInput, which the web pages translate
NO_KIND = "must be download or upload"
IN_PAST = "must be in the future"
TOO_LATE = f"must be within {MAX_YEARS} years"
LIMIT_FOR_UPLOADS = "only upload links have a size limit"
LIMIT_RANGE = f"must be between 1 byte and {MAX_BYTES} bytes"
NO_SNAPSHOTS = "a link cannot show snapshots"
NO_SHARE = "no such share, or you may not open it"
NO_PATH = "no such file or folder"
NEEDS_FOLDER = "an upload link needs a folder"
NEEDS_WRITE = "an upload link needs write access to the share"


class PasswordNeeded(Unauthorized):
    """The link has a password and none (or no valid proof) came with the request."""


class WrongPassword(Unauthorized):
    """The link's password was wrong."""


class LinkLocked(SpeicherError):
    """Too many wrong passwords for this link or from this address: wait ``retry_after``."""

    status = 429
    title = "Too many requests"

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many wrong passwords; try again later")
        self.retry_after = max(1, int(retry_after + 0.999))


class TooLarge(SpeicherError):
    """An upload over the link's size limit, or more bytes than the upload announced."""

    status = 413
    exit_code = 2
    title = "Too large"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def end_of(day: dt.date) -> dt.datetime:
    """When a link that is valid "until ``day``" expires: at the end of that day (UTC, as
    everywhere in Speicher until the console has a time zone)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


@dataclass(frozen=True)
class LinkInfo:
    """A link as its creator and admins see it (never its token)."""

    id: int
    share: str
    path: str  # in the share, "" for its top
    kind: str
    has_password: bool
    expires_at: dt.datetime | None
    max_bytes: int | None
    bytes_received: int
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    expired: bool

    @property
    def name(self) -> str:
        """What the link shows as its title: the file's or folder's name, or the share's."""
        return self.path.rsplit("/", 1)[-1] if self.path else self.share

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.expired

    @property
    def remaining(self) -> int | None:
        """Bytes an upload link still takes (None: no limit but the share's)."""
        if self.max_bytes is None:
            return None
        return max(0, self.max_bytes - self.bytes_received)


def _info(row: ShareLink, now: dt.datetime) -> LinkInfo:
    return LinkInfo(
        id=row.id,
        share=row.share.name,
        path=row.path,
        kind=row.kind,
        has_password=row.password_hash is not None,
        expires_at=row.expires_at,
        max_bytes=row.max_bytes,
        bytes_received=row.bytes_received,
        created_by=row.creator.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        expired=row.expires_at is not None and row.expires_at <= now,
    )


def _expiry(when: dt.datetime | None, now: dt.datetime, v: Validator) -> dt.datetime | None:
    if when is None:
        return None
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    if when <= now:
        v.add("expires_at", IN_PAST)
    elif when > now + dt.timedelta(days=365 * MAX_YEARS):
        v.add("expires_at", TOO_LATE)
    return when


def below(rel: str) -> tuple[str, ...]:
    """The names of ``rel``, a path below a link's file or folder; FsError for one that may
    not be (a ``..`` anywhere, even one that would stay inside, a NUL, an over-long name,
    Speicher's own files). An absolute path is taken as relative to the link."""
    if ".." in rel.replace("\\", "/").split("/"):
        raise FsError(errno.EACCES, "the path leaves the link's folder")
    return paths.parse(rel)


class LinkService:
    def __init__(
        self,
        db: Database,
        files: ShareFS,
        events: EventService,
        throttle: Throttle | None = None,
    ) -> None:
        self.db = db
        self.files = files
        self.events = events
        self.throttle = throttle if throttle is not None else Throttle()  # (an empty one is falsy)
        self._secret = secrets.token_bytes(32)  # signs proofs; a restart forgets them
        self._checks = threading.BoundedSemaphore(PASSWORD_CHECKS)
        self._lock = threading.Lock()
        self._reserved: dict[int, int] = {}  # link id -> bytes of its uploads in progress

    # -- the creator's side --------------------------------------------------------------------

    def create(
        self,
        creator: str,
        share: str,
        path: str,
        kind: str,
        password: str | None = None,
        expires_at: dt.datetime | None = None,
        max_bytes: int | None = None,
        address: str | None = None,
    ) -> tuple[LinkInfo, str]:
        """A new link of ``creator`` to ``path`` in ``share``; its info and its token (shown
        once). InvalidInput lists everything that is wrong."""
        now = utcnow()
        parts, expires = self._validated(
            creator, share, path, kind, password, expires_at, max_bytes, address, now, Validator()
        )
        token = secrets.token_urlsafe(TOKEN_BYTES)
        password_hash = hash_password(password) if password else None
        with self.db.session() as s:
            user = s.scalars(select(User).where(User.name == creator)).one()
            share_row = s.scalars(select(Share).where(Share.name == share)).one()
            row = ShareLink(
                token_hash=_digest(token),
                share=share_row,
                path="/".join(parts),
                kind=kind,
                password_hash=password_hash,
                expires_at=expires,
                max_bytes=max_bytes,
                creator=user,
                created_at=now,
            )
            s.add(row)
            s.flush()
            info = _info(row, now)
        what = "download link" if kind == "download" else "upload link"
        until = f", valid until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
        secured = ", with a password" if password_hash else ""
        self.events.record(
            "info",
            "link.created",
            creator,
            f"{creator} made {what} {info.id} to {share}{paths.display(parts)}{secured}{until}",
        )
        return info, token

    def validate(
        self,
        creator: str,
        share: str,
        path: str,
        kind: str,
        password: str | None = None,
        expires_at: dt.datetime | None = None,
        max_bytes: int | None = None,
        address: str | None = None,
    ) -> None:
        """Raise InvalidInput with everything :meth:`create` would refuse, without making a
        link (a form with a field that could not be read still shows every other problem)."""
        self._validated(
            creator, share, path, kind, password, expires_at, max_bytes, address, utcnow(),
            Validator(),
        )  # fmt: skip

    def _validated(
        self,
        creator: str,
        share: str,
        path: str,
        kind: str,
        password: str | None,
        expires_at: dt.datetime | None,
        max_bytes: int | None,
        address: str | None,
        now: dt.datetime,
        v: Validator,
    ) -> tuple[tuple[str, ...], dt.datetime | None]:
        if kind not in KINDS:
            v.add("kind", NO_KIND)
        if password and (reason := check(password)):
            v.add("password", reason)
        expires = _expiry(expires_at, now, v)
        if max_bytes is not None:
            if kind != "upload":
                v.add("max_bytes", LIMIT_FOR_UPLOADS)
            elif not 1 <= max_bytes <= MAX_BYTES:
                v.add("max_bytes", LIMIT_RANGE)
        parts: tuple[str, ...] | None = None
        try:
            parts = paths.parse(path)
        except FsError as exc:
            v.add("path", exc.message)
        if parts and parts[0] == paths.SNAPSHOTS_DIR:
            v.add("path", NO_SNAPSHOTS)
            parts = None
        if parts is not None:
            self._check_target(creator, share, parts, kind, address, v)
        v.check()
        assert parts is not None
        return parts, expires

    def _check_target(
        self,
        creator: str,
        share: str,
        parts: tuple[str, ...],
        kind: str,
        address: str | None,
        v: Validator,
    ) -> None:
        """The creator may open the path (for an upload link: a folder they may write)."""
        try:
            view = self.files.open(creator, share, PROTOCOL, address)
        except FsError as exc:
            v.add("share", NO_SHARE if exc.code == errno.ENOENT else exc.message)
            return
        with view:
            try:
                entry = view.stat("/".join(parts))
            except FsError:
                v.add("path", NO_PATH)
                return
            if kind == "upload":
                if not entry.is_dir:
                    v.add("path", NEEDS_FOLDER)
                if not view.writable:
                    v.add("kind", NEEDS_WRITE)

    def list(self, user: str, admin: bool) -> list[LinkInfo]:
        """The links ``user`` made, newest first; an admin sees everybody's."""
        now = utcnow()
        query = (
            select(ShareLink)
            .options(joinedload(ShareLink.share), joinedload(ShareLink.creator))
            .order_by(ShareLink.id.desc())
        )
        if not admin:
            query = query.where(ShareLink.creator.has(User.name == user))
        with self.db.session() as s:
            return [_info(row, now) for row in s.scalars(query)]

    def get(self, link_id: int, user: str, admin: bool) -> LinkInfo:
        with self.db.session() as s:
            return _info(self._own(s, link_id, user, admin), utcnow())

    def _own(self, s: Session, link_id: int, user: str, admin: bool) -> ShareLink:
        row = s.get(
            ShareLink,
            link_id,
            options=[joinedload(ShareLink.share), joinedload(ShareLink.creator)],
        )
        if row is None or (not admin and row.creator.name != user):
            raise NotFound(f"link {link_id} does not exist")  # also another user's
        return row

    def revoke(self, link_id: int, by_user: str, admin: bool) -> LinkInfo:
        """End a link at once (its creator, or an admin); revoking twice changes nothing."""
        now = utcnow()
        with self.db.session() as s:
            row = self._own(s, link_id, by_user, admin)
            changed = row.revoked_at is None
            if changed:
                row.revoked_at = now
            info = _info(row, now)
        if changed:
            self.events.record(
                "info",
                "link.revoked",
                by_user,
                f"{by_user} revoked link {link_id} of {info.created_by} to "
                f"{info.share}/{info.path}",
            )
        return info

    # -- the visitor's side --------------------------------------------------------------------

    def resolve(
        self,
        token: str,
        password: str | None = None,
        address: str | None = None,
        proof: str | None = None,
    ) -> ResolvedLink:
        """The link of ``token``, open as its creator: NotFound for a link that is not (or no
        longer) there; PasswordNeeded, WrongPassword or LinkLocked for one with a password
        when neither a valid ``proof`` nor the right ``password`` came."""
        info, password_hash = self._find(token)
        new_proof = None
        if password_hash is not None:
            left = self._proof_left(info.id, token, proof)
            if left is None:
                if not password:
                    raise PasswordNeeded("this link needs its password")
                self._check_password(info, password_hash, password, address)
            if left is None or left < UNLOCKED / 2:
                new_proof = self._proof(info.id, token)
        view, entry = self._open(info, address)
        return ResolvedLink(self, info, view, entry, new_proof)

    def _find(self, token: str) -> tuple[LinkInfo, str | None]:
        """The active link of ``token`` and its password hash."""
        now = utcnow()
        with self.db.session() as s:
            row = s.scalars(
                select(ShareLink)
                .where(ShareLink.token_hash == _digest(token))
                .options(joinedload(ShareLink.share), joinedload(ShareLink.creator))
            ).first()
            if row is None:
                raise NotFound(GONE)
            info = _info(row, now)
            password_hash = row.password_hash
        if not info.active:
            raise NotFound(GONE)
        return info, password_hash

    def _open(self, info: LinkInfo, address: str | None) -> tuple[ShareView, Entry]:
        """The share as the link's creator sees it now, and the link's file or folder."""
        try:
            view = self.files.open(info.created_by, info.share, PROTOCOL, address)
        except FsError as exc:
            if exc.code == errno.ENOENT:
                raise NotFound(GONE) from None  # the creator lost their access
            raise
        try:
            if info.kind == "download":
                view.access = "ro"  # a download link writes nothing, whatever its creator may
            elif not view.writable:
                raise NotFound(GONE)
            try:
                entry = view.stat(info.path)
            except FsError as exc:
                if exc.code in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                    raise NotFound(GONE) from None
                raise
            if info.kind == "upload" and not entry.is_dir:
                raise NotFound(GONE)
        except BaseException:
            view.close()
            raise
        return view, entry

    def _check_password(
        self, info: LinkInfo, password_hash: str, password: str, address: str | None
    ) -> None:
        keys = (address_key(address), f"link:{info.id}")
        wait = self.throttle.locked(*keys)
        if wait > 0:
            raise LinkLocked(wait)
        if not self._checks.acquire(timeout=10):
            raise LinkLocked(1)
        try:
            right = len(password) <= MAX_LENGTH and verify(password_hash, password)
        finally:
            self._checks.release()
        if not right:
            for lockout in self.throttle.failed(*keys):
                kind, _, subject = lockout.key.partition(":")
                what = f"link {subject}" if kind == "link" else f"address {subject}"
                self.events.record(
                    "warning",
                    "link.lockout",
                    subject,
                    f"{lockout.failures} wrong link passwords for {what}; refused for "
                    f"{lockout.seconds:.0f} s",
                )
            raise WrongPassword("wrong password")
        self.throttle.succeeded(keys[1])

    def _proof(self, link_id: int, token: str) -> str:
        until = int(time.time() + UNLOCKED.total_seconds())
        return f"{until}.{self._mac(link_id, token, until)}"

    def _mac(self, link_id: int, token: str, until: int) -> str:
        message = f"{link_id}:{_digest(token)}:{until}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _proof_left(self, link_id: int, token: str, proof: str | None) -> dt.timedelta | None:
        """How long ``proof`` still opens the link; None when it does not."""
        if not proof or len(proof) > 128:
            return None
        until, _, mac = proof.partition(".")
        if not until.isdigit() or len(until) > 12:
            return None
        if not hmac.compare_digest(mac, self._mac(link_id, token, int(until))):
            return None
        left = int(until) - time.time()
        return dt.timedelta(seconds=left) if left > 0 else None

    # -- uploads -------------------------------------------------------------------------------

    def _reserve(self, link_id: int, total: int) -> None:
        with self._lock:
            with self.db.session() as s:
                row = s.get(ShareLink, link_id)
                if row is None:
                    raise NotFound(GONE)
                limit, received = row.max_bytes, row.bytes_received
            held = self._reserved.get(link_id, 0)
            if limit is not None and received + held + total > limit:
                left = max(0, limit - received - held)
                raise TooLarge(f"this link takes {left} more bytes, not {total}")
            self._reserved[link_id] = held + total

    def _release(self, link_id: int, total: int, received: bool) -> None:
        with self._lock:
            if received:
                with self.db.session() as s:
                    row = s.get(ShareLink, link_id)
                    if row is not None:
                        row.bytes_received += total
            held = self._reserved.get(link_id, 0) - total
            if held > 0:
                self._reserved[link_id] = held
            else:
                self._reserved.pop(link_id, None)


class ResolvedLink:
    """A link someone opened: its info, and the share as its creator sees it, confined to the
    link's file or folder. Close it (or use ``with``) when done."""

    def __init__(
        self,
        service: LinkService,
        info: LinkInfo,
        view: ShareView,
        entry: Entry,
        proof: str | None,
    ) -> None:
        self.service = service
        self.info = info
        self.view = view
        self.entry = entry  # the link's file or folder
        self.proof = proof  # a new proof for the browser to keep, if there is one
        self.root = paths.parse(info.path)

    @property
    def is_dir(self) -> bool:
        return self.entry.is_dir

    def close(self) -> None:
        self.view.close()

    def __enter__(self) -> ResolvedLink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def target(self, rel: str = "") -> str:
        """The path in the share of ``rel`` below the link (a download link's): its folder's
        entries, or its file itself (``rel`` empty or the file's name)."""
        if self.info.kind != "download":
            raise FsError(errno.EACCES, "an upload link shows nothing")
        parts = below(rel)
        if not self.is_dir:
            if parts and parts != self.root[-1:]:
                raise FsError(errno.ENOENT, "no such file or folder")
            return "/".join(self.root)
        full = self.root + parts
        if full and full[0] == paths.SNAPSHOTS_DIR:
            raise FsError(errno.ENOENT, "no such file or folder")
        return "/".join(full)

    def upload(self, name: str, total: int) -> LinkUpload:
        """Start an upload of ``total`` bytes as file ``name`` into an upload link's folder
        (a free name: ``name (2).ext`` when ``name`` is taken); TooLarge over the limit."""
        if self.info.kind != "upload":
            raise FsError(errno.EACCES, "a download link takes no files")
        parts = below(name)
        if len(parts) != 1:
            raise FsError(errno.EINVAL, "a file request takes files, not folders")
        if total < 0:
            raise FsError(errno.EINVAL, "a negative size")
        paths.check_new_name(parts[0])
        self.service._reserve(self.info.id, total)
        try:
            target = self._free(parts[0])
            upload = self.view.upload(target, False, False)
        except BaseException:
            self.service._release(self.info.id, total, False)
            raise
        return LinkUpload(self, upload, target, total)

    def _free(self, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not stem:
            stem, dot, ext = name, "", ""
        for n in range(1, 1000):
            candidate = name if n == 1 else f"{stem} ({n}){dot}{ext}"
            path = "/".join((*self.root, candidate))
            try:
                self.view.stat(path)
            except FsError as exc:
                if exc.code == errno.ENOENT:
                    return path
        raise FsError(errno.EEXIST, "too many files of that name")


class LinkUpload:
    """One file coming in through an upload link: bytes up to the size it announced, then
    :meth:`commit` (never over an existing file) or :meth:`abort`, which leave nothing
    behind."""

    def __init__(self, link: ResolvedLink, upload: Upload, path: str, total: int) -> None:
        self.link = link
        self.upload = upload
        self.path = path
        self.total = total
        self._open = True

    @property
    def size(self) -> int:
        return self.upload.size

    def write(self, data: bytes) -> None:
        if self.upload.size + len(data) > self.total:
            self.abort()
            raise TooLarge("more bytes than the upload announced")
        try:
            self.upload.write(data)
        except BaseException:
            self.abort()
            raise

    def commit(self) -> Entry:
        if self.upload.size != self.total:
            raise FsError(errno.EINVAL, "the upload is not complete")
        view = self.link.view

        def still_free() -> None:
            try:
                view.stat(self.path)
            except FsError:
                return
            raise FsError(errno.EEXIST, "a file of that name arrived meanwhile")

        try:
            entry = self.upload.commit(before_rename=still_free)
        except BaseException:
            self.abort()
            raise
        self._open = False
        info = self.link.info
        self.link.service._release(info.id, self.total, True)
        self.link.service.events.record(
            "info",
            "link.received",
            info.created_by,
            f"{entry.name} ({self.total} bytes) arrived through upload link {info.id} of "
            f"{info.created_by} in {info.share}{paths.display(self.link.root)}",
        )
        return entry

    def abort(self) -> None:
        if self._open:
            self._open = False
            self.upload.abort()
            self.link.service._release(self.link.info.id, self.total, False)
