"""Browser sessions of the web console and the file manager.

A login makes a row in ``web_sessions`` and gives the browser its secret in a cookie
(``__Host-speicher``: ``Secure``, ``HttpOnly``, ``SameSite=Strict``, ``Path=/``). The
database keeps only the secret's SHA-256, as for API tokens, so a copy of the database logs
nobody in. A session ends when the user logs out, after ``IDLE`` without a request, after
``LIFETIME`` in any case, and at once when the user is disabled or deleted (the lookup reads
the user's row every time; a page is one indexed select, never an Argon2 check).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from speicher.db import Database
from speicher.db.models import User, WebSession

COOKIE = "__Host-speicher"
IDLE = dt.timedelta(minutes=30)
LIFETIME = dt.timedelta(hours=12)
TOUCH = dt.timedelta(seconds=60)  # last_seen_at is written at most this often
PENDING = dt.timedelta(minutes=5)  # for the second factor after a right password


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class WebUser:
    """Who a request's session belongs to."""

    name: str
    admin: bool
    file_access: bool
    session_id: int
    csrf_secret: str
    second_factor_due: bool = False

    def csrf_token(self) -> str:
        """The token every form of this session carries (and every state change checks)."""
        return hmac.new(self.csrf_secret.encode(), b"csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token())


class SessionService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, user: str, address: str | None, second_factor_due: bool = False) -> str:
        """A new session of ``user`` (who just logged in); its cookie secret.
        ``second_factor_due``: the password was right and the second factor is still to come;
        such a session opens nothing but the code's page (:meth:`pending`)."""
        secret = secrets.token_urlsafe(32)
        with self.db.session() as s:
            row = s.scalars(select(User).where(User.name == user)).one()
            s.add(
                WebSession(
                    secret_hash=_hash(secret),
                    user_id=row.id,
                    csrf_secret=secrets.token_hex(32),
                    address=(address or "")[:64],
                    second_factor_due=second_factor_due,
                )
            )
            # a user's expired sessions go when they log in again
            s.execute(
                delete(WebSession).where(
                    WebSession.user_id == row.id, WebSession.created_at < _now() - LIFETIME
                )
            )
        return secret

    def lookup(self, secret: str | None) -> WebUser | None:
        """The user of the session whose cookie secret this is; None when there is none, it
        expired, the user may not log in any more, or its second factor is still due."""
        found = self._find(secret)
        return found if found is not None and not found.second_factor_due else None

    def pending(self, secret: str | None) -> WebUser | None:
        """The user of a session that waits for its second factor (within ``PENDING``)."""
        found = self._find(secret)
        if found is None or not found.second_factor_due:
            return None
        return found

    def complete(self, secret: str, address: str | None) -> str:
        """The second factor was right: a new session (a new secret: the one that came
        before the code opens nothing any more)."""
        found = self._find(secret)
        if found is None or not found.second_factor_due:
            raise ValueError("no session waits for a second factor")
        self.end(secret)
        return self.create(found.name, address)

    def _find(self, secret: str | None) -> WebUser | None:
        if not secret or len(secret) > 128:
            return None
        now = _now()
        with self.db.quiet_session() as s:
            found = s.execute(
                select(WebSession, User)
                .join(User, User.id == WebSession.user_id)
                .where(WebSession.secret_hash == _hash(secret))
            ).first()
            if found is None:
                return None
            session, user = found[0], found[1]
            expired = now - session.last_seen_at > IDLE or now - session.created_at > LIFETIME
            if session.second_factor_due and now - session.created_at > PENDING:
                expired = True
            if expired or not user.enabled or user.state != "ready":
                s.delete(session)
                return None
            if now - session.last_seen_at > TOUCH:
                session.last_seen_at = now
            return WebUser(
                name=user.name,
                admin=user.is_admin,
                file_access=user.file_access,
                session_id=session.id,
                csrf_secret=session.csrf_secret,
                second_factor_due=session.second_factor_due,
            )

    def end(self, secret: str | None) -> None:
        """Log out: the session is gone (nothing when there is none)."""
        if secret:
            with self.db.session() as s:
                s.execute(delete(WebSession).where(WebSession.secret_hash == _hash(secret)))

    def end_all(self, user: str) -> int:
        """End every session of ``user`` (a password change elsewhere, an admin's order)."""
        with self.db.session() as s:
            row = s.scalars(select(User).where(User.name == user)).first()
            if row is None:
                return 0
            result = s.execute(delete(WebSession).where(WebSession.user_id == row.id))
            return int(getattr(result, "rowcount", 0) or 0)
