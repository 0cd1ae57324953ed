"""Users' S3 access keys.

A key is an access key id (``SPK`` and 17 upper-case letters and digits, 20 characters like
AWS's) and a secret of 40 URL-safe characters, shown once when it is made. SigV4 signs with
the secret itself, so the server must know it: it is kept sealed with Fernet (AES-128-CBC and
HMAC-SHA256) under a key in the root-only state directory (``<state>/s3/seal.key``, 0600,
made at first use), so a copy of the database alone does not give the secrets away. Keys go
with their user (``ON DELETE CASCADE``); a disabled user, or one without file access, has
keys that sign nothing (:meth:`S3KeyService.secret_for`).
"""

from __future__ import annotations

import builtins
import os
import secrets
import string
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from speicher.access.keys import ready_user
from speicher.access.models import S3KeyCreated, S3KeyInfo
from speicher.db import Database, S3Key, User
from speicher.errors import Conflict, NotFound, SpeicherError
from speicher.events import EventService

PREFIX = "SPK"
ALPHABET = string.ascii_uppercase + string.digits
MAX_KEYS_PER_USER = 10  # AWS allows two per IAM user; backup jobs of a team want a few more
LOOKUP_TABLES = frozenset({"users", "s3_keys"})


def new_access_key() -> str:
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(17))


def new_secret() -> str:
    return secrets.token_urlsafe(30)  # 40 characters, no "/" or "+" to quote in a shell


class Sealer:
    """Seals and opens secrets with the key in ``<state>/s3/seal.key``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "s3" / "seal.key"
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def _key(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(self.path.parent, 0o700)
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    key = self.path.read_bytes().strip()
                else:
                    key = Fernet.generate_key()
                    try:
                        os.write(fd, key + b"\n")
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                try:
                    self._fernet = Fernet(key)
                except ValueError:
                    raise SpeicherError(
                        f"{self.path} is not a sealing key; S3 keys cannot be read"
                    ) from None
            return self._fernet

    def seal(self, secret: str) -> str:
        return self._key().encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str | None:
        """The secret, or None if this key did not seal it (a state directory restored
        without its ``s3/seal.key``)."""
        try:
            return self._key().decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            return None


@dataclass(frozen=True)
class Signer:
    """Who an access key belongs to, and the secret that key signs with."""

    user: str
    secret: str


class S3KeyService:
    def __init__(self, state_dir: Path, db: Database, events: EventService) -> None:
        self.db = db
        self.events = events
        self.sealer = Sealer(state_dir)
        # access key -> signer, valid while the users and s3_keys tables have not changed
        self._signers: dict[str, Signer | None] = {}
        self._generation = -1
        self._lock = threading.Lock()

    def create(self, user: str) -> S3KeyCreated:
        secret = new_secret()
        sealed = self.sealer.seal(secret)
        with self.db.session() as s:
            row = ready_user(s, user)
            name = row.name
            count = len(builtins.list(s.scalars(select(S3Key.id).where(S3Key.user_id == row.id))))
            if count >= MAX_KEYS_PER_USER:
                raise Conflict(
                    f"user {name} has {count} S3 keys already, the most there may be; "
                    "delete one first (speicher user s3-key delete)"
                )
            key = S3Key(user_id=row.id, access_key=new_access_key(), secret_sealed=sealed)
            s.add(key)
            s.flush()
            created = S3KeyCreated(
                access_key=key.access_key, secret=secret, user=name, created_at=key.created_at
            )
        self.events.record(
            "info", "user.s3_key_created", name, f"S3 key {created.access_key} made for {name}"
        )
        return created

    def list(self, user: str) -> builtins.list[S3KeyInfo]:
        with self.db.session() as s:
            row = ready_user(s, user)
            query = select(S3Key).where(S3Key.user_id == row.id).order_by(S3Key.id)
            return [
                S3KeyInfo(access_key=k.access_key, created_at=k.created_at)
                for k in s.scalars(query)
            ]

    def delete(self, user: str, access_key: str) -> None:
        wanted = access_key.strip().upper()
        with self.db.session() as s:
            row = ready_user(s, user)
            name = row.name
            key = s.scalars(
                select(S3Key).where(S3Key.user_id == row.id, S3Key.access_key == wanted)
            ).first()
            if key is None:
                raise NotFound(f"user {name} has no S3 key {wanted}")
            s.delete(key)
        self.events.record(
            "info", "user.s3_key_deleted", name, f"S3 key {wanted} of {name} deleted"
        )

    def signer(self, access_key: str) -> Signer | None:
        """The user and secret of ``access_key``; None for an unknown key and for a key of a
        user who is disabled, half-made or without file access. Remembered until the users
        or keys change, so a request costs no database round trip."""
        generation = self.db.generation_of(LOOKUP_TABLES)
        with self._lock:
            if generation != self._generation:
                self._signers.clear()
                self._generation = generation
            if access_key in self._signers:
                return self._signers[access_key]
        found = self._look_up(access_key)
        with self._lock:
            if self._generation == generation:
                if len(self._signers) > 10_000:
                    self._signers.clear()
                self._signers[access_key] = found
        return found

    def _look_up(self, access_key: str) -> Signer | None:
        if len(access_key) > 32:
            return None
        with self.db.session() as s:
            row = s.execute(
                select(S3Key.secret_sealed, User)
                .join(User, User.id == S3Key.user_id)
                .where(S3Key.access_key == access_key)
            ).first()
            if row is None:
                return None
            sealed, user = row.tuple()
            usable = user.state == "ready" and user.enabled and user.file_access
            name = user.name
        if not usable:
            return None
        secret = self.sealer.open(sealed)
        return None if secret is None else Signer(name, secret)
