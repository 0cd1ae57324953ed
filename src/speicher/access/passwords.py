"""Password hashing with Argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from speicher.validation import control_reason

_hasher = PasswordHasher()

MIN_LENGTH = 8
MAX_LENGTH = 1024


def check(password: str) -> str | None:
    """Why a password is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if reason := control_reason(password):
        return reason
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# Compared against when a user does not exist, so a wrong name costs as long as a wrong password.
DUMMY_HASH = hash_password("speicher-no-such-user")
