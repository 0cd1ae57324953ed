"""Admin API tokens.

A token is ``spk_<key>_<secret>``. The key finds the row; the secret is checked against a
SHA-256 digest. Decision: tokens carry 256 bits of randomness, so a slow password hash (Argon2)
adds nothing against guessing and would cost ~50 ms on every API call; passwords, which people
choose, are hashed with Argon2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from speicher.access.models import TokenCreate, TokenCreated, TokenInfo
from speicher.db import Database, Token
from speicher.db.models import utcnow
from speicher.errors import Conflict, NotFound, Unauthorized, Validator
from speicher.events import EventService

_TOKEN = re.compile(r"spk_([0-9a-f]{12})_([A-Za-z0-9_-]+)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: Token, now: dt.datetime) -> TokenInfo:
    return TokenInfo(
        name=row.name,
        key=row.key,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        expired=row.expires_at is not None and row.expires_at <= now,
        last_used_at=row.last_used_at,
    )


def expiry(req: TokenCreate, now: dt.datetime, v: Validator) -> dt.datetime | None:
    """When a token asked for by ``req`` expires (None: never); a time without a zone is
    UTC, as everywhere in Speicher."""
    if req.expires_days is not None and req.expires_at is not None:
        v.add("expires_at", "give expires_days or expires_at, not both")
        return None
    if req.expires_days is not None:
        return now + dt.timedelta(days=req.expires_days)
    if req.expires_at is None:
        return None
    when = req.expires_at if req.expires_at.tzinfo else req.expires_at.replace(tzinfo=dt.UTC)
    if when <= now:
        v.add("expires_at", "must be in the future")
    elif when > now + dt.timedelta(days=36500):
        v.add("expires_at", "must be within 100 years")
    return when


class TokenService:
    def __init__(self, db: Database, events: EventService) -> None:
        self.db = db
        self.events = events
        # key -> (secret digest, name, expiry, when the database last confirmed it)
        self._known: dict[str, tuple[str, str, dt.datetime | None, dt.datetime]] = {}
        # token -> (name, monotonic time until which the cache alone proves it): a crowd of
        # requests with one token costs a dictionary lookup each, not a SHA-256 and a clock
        # (in memory only; only tokens that proved right get here, so guesses cannot fill it)
        self._proven: dict[str, tuple[str, float]] = {}

    def create(self, req: TokenCreate, created_by: str) -> TokenCreated:
        """A new token for ``req``, recorded as made by the principal ``created_by``."""
        name, now = req.name, utcnow()
        v = Validator()
        if not _NAME.match(name):
            v.add("name", "must be 1-64 letters, digits, '_', '.' and '-'")
        expires_at = expiry(req, now, v)
        v.check()
        key = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        try:
            with self.db.session() as s:
                if s.scalars(select(Token).where(Token.name == name)).first():
                    raise Conflict(f"token '{name}' already exists", field="name")
                row = Token(
                    name=name,
                    key=key,
                    secret_hash=_digest(secret),
                    created_at=now,
                    created_by=created_by,
                    expires_at=expires_at,
                )
                s.add(row)
                s.flush()
                info = _info(row, now)
        except IntegrityError:
            raise Conflict(f"token '{name}' already exists", field="name") from None
        until = f", valid until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
        self.events.record(
            "info", "token.created", name, f"API token {name} created by {created_by}{until}"
        )
        return TokenCreated(**info.model_dump(), token=f"spk_{key}_{secret}")

    def list(self) -> list[TokenInfo]:
        now = utcnow()
        with self.db.session() as s:
            return [_info(t, now) for t in s.scalars(select(Token).order_by(Token.name))]

    def delete(self, name: str) -> None:
        with self.db.session() as s:
            row = s.scalars(select(Token).where(Token.name == name)).first()
            if row is None:
                raise NotFound(f"token '{name}' does not exist")
            self._known.pop(row.key, None)
            s.delete(row)
        self._known.clear()  # a deleted token is refused at once, not after a minute
        self._proven.clear()
        self.events.record("info", "token.deleted", name, f"API token {name} deleted")

    def cached(self, token: str) -> str | None:
        """The token's name if the cache alone proves it valid (right secret, not expired, its
        last use recorded within the minute), else None: then :meth:`verify` decides. Lets a
        crowd of token requests pass without a database query each."""
        proven = self._proven.get(token)
        if proven is not None and time.monotonic() < proven[1]:
            return proven[0]
        match = _TOKEN.fullmatch(token)
        if not match:
            return None
        entry = self._known.get(match.group(1))
        if entry is None:
            return None
        digest, name, expires_at, checked = entry
        now = utcnow()
        if not hmac.compare_digest(digest, _digest(match.group(2))):
            return None
        left = 60 - (now - checked).total_seconds()
        if expires_at is not None:
            left = min(left, (expires_at - now).total_seconds())
        if left <= 0:
            return None
        if len(self._proven) > 10_000:
            self._proven.clear()
        self._proven[token] = (name, time.monotonic() + left)
        return name

    def verify(self, token: str) -> str | None:
        """The token's name if ``token`` is valid, else None; raises Unauthorized for a right
        token that has expired, so its owner learns why."""
        match = _TOKEN.fullmatch(token)
        if not match:
            return None
        with self.db.session() as s:
            row = s.scalars(select(Token).where(Token.key == match.group(1))).first()
            if row is None or not hmac.compare_digest(row.secret_hash, _digest(match.group(2))):
                return None
            now = utcnow()
            if row.expires_at is not None and row.expires_at <= now:
                raise Unauthorized("the API token has expired")
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now  # at most one write a minute per token
            self._known[row.key] = (row.secret_hash, row.name, row.expires_at, now)
            return row.name
