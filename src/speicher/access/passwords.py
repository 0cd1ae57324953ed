"""Password rules, and hashing with Argon2id.

A password must not be one that attackers try first: the 30,000 most common passwords (the
list zxcvbn ranks, bundled as ``common-passwords.txt`` with its source and licence) are
refused whatever their case, and so are passwords of only spaces and the user's own name."""

from __future__ import annotations

import functools
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from speicher.validation import control_reason

_hasher = PasswordHasher()

MIN_LENGTH = 8
MAX_LENGTH = 1024


COMMON_LIST = "common-passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords, in lower case (read once, on first use)."""
    text = resources.files(__package__).joinpath(COMMON_LIST).read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def check(password: str, user: str | None = None) -> str | None:
    """Why a password is not acceptable (for ``user``, if given), or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if reason := control_reason(password):
        return reason
    if not password.strip():
        return "must not be only spaces (or other whitespace)"
    folded = password.strip().lower()
    if user and folded == user.strip().lower():
        return "must not be the user name"
    if folded in common_passwords():
        return (
            "is one of the most common passwords, the first that attackers try; choose "
            "another (a few unrelated words make a good one)"
        )
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
