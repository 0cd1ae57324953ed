"""Admin API tokens.

A token is ``spk_<key>_<secret>``. The key finds the row; the secret is checked against a
SHA-256 digest. Decision: tokens carry 256 bits of randomness, so a slow password hash (Argon2)
adds nothing against guessing and would cost ~50 ms on every API call; passwords, which people
choose, are hashed with Argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from speicher.access.models import TokenCreated, TokenInfo
from speicher.db import Database, Token
from speicher.db.models import utcnow
from speicher.errors import Conflict, NotFound, Validator
from speicher.events import EventService

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    def __init__(self, db: Database, events: EventService) -> None:
        self.db = db
        self.events = events

    def create(self, name: str) -> TokenCreated:
        v = Validator()
        if not _NAME.match(name):
            v.add("name", "must be 1-64 letters, digits, '_', '.' and '-'")
        v.check()
        key = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        try:
            with self.db.session() as s:
                if s.scalars(select(Token).where(Token.name == name)).first():
                    raise Conflict(f"token '{name}' already exists")
                row = Token(name=name, key=key, secret_hash=_digest(secret))
                s.add(row)
                s.flush()
                info = TokenInfo(
                    name=row.name, key=row.key, created_at=row.created_at, last_used_at=None
                )
        except IntegrityError:
            raise Conflict(f"token '{name}' already exists") from None
        self.events.record("info", "token.created", name, f"API token {name} created")
        return TokenCreated(**info.model_dump(), token=f"spk_{key}_{secret}")

    def list(self) -> list[TokenInfo]:
        with self.db.session() as s:
            return [
                TokenInfo(
                    name=t.name, key=t.key, created_at=t.created_at, last_used_at=t.last_used_at
                )
                for t in s.scalars(select(Token).order_by(Token.name))
            ]

    def delete(self, name: str) -> None:
        with self.db.session() as s:
            row = s.scalars(select(Token).where(Token.name == name)).first()
            if row is None:
                raise NotFound(f"token '{name}' does not exist")
            s.delete(row)
        self.events.record("info", "token.deleted", name, f"API token {name} deleted")

    def verify(self, token: str) -> str | None:
        """The token's name if ``token`` is valid, else None."""
        match = re.fullmatch(r"spk_([0-9a-f]{12})_([A-Za-z0-9_-]+)", token)
        if not match:
            return None
        with self.db.session() as s:
            row = s.scalars(select(Token).where(Token.key == match.group(1))).first()
            if row is None or not hmac.compare_digest(row.secret_hash, _digest(match.group(2))):
                return None
            now = utcnow()
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now  # at most one write a minute per token
            return row.name
