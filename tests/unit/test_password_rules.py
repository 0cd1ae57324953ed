"""Password rules and Argon2id hashing."""

from __future__ import annotations

import pytest

from speicher.access import passwords


@pytest.mark.parametrize(
    "password",
    ["x" * 8, "correct horse battery staple", "pässwörd", "x" * 1024, " " * 8, "🔑" * 8],
)
def test_acceptable_passwords(password: str) -> None:
    assert passwords.check(password) is None


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "must be at least 8 characters"),
        ("x" * 7, "must be at least 8 characters"),
        ("x" * 1025, "must be at most 1024 characters"),
        ("abcd\x00efgh", "must not contain control characters (such as a newline, tab or NUL)"),
        ("short\nshort", "must not contain control characters (such as a newline, tab or NUL)"),
    ],
)
def test_unacceptable_passwords(password: str, reason: str) -> None:
    assert passwords.check(password) == reason


def test_limits() -> None:
    assert (passwords.MIN_LENGTH, passwords.MAX_LENGTH) == (8, 1024)


def test_hash_is_argon2id_and_salted() -> None:
    first = passwords.hash_password("s3cret-pass")
    second = passwords.hash_password("s3cret-pass")
    assert first.startswith("$argon2id$")
    assert first != second
    assert "s3cret-pass" not in first


def test_verify_accepts_the_right_password_only() -> None:
    hashed = passwords.hash_password("s3cret-pass")
    assert passwords.verify(hashed, "s3cret-pass") is True
    assert passwords.verify(hashed, "s3cret-pasS") is False
    assert passwords.verify(hashed, "") is False


def test_verify_handles_non_ascii_passwords() -> None:
    hashed = passwords.hash_password("pässwörd-🔑")
    assert passwords.verify(hashed, "pässwörd-🔑") is True
    assert passwords.verify(hashed, "passwort-🔑") is False


@pytest.mark.parametrize("stored", ["", "plaintext", "$argon2id$v=19$broken", "$2b$12$abc"])
def test_verify_against_a_bad_hash_is_false_not_an_error(stored: str) -> None:
    assert passwords.verify(stored, "s3cret-pass") is False


def test_dummy_hash_is_a_real_hash() -> None:
    assert passwords.DUMMY_HASH.startswith("$argon2id$")
    assert passwords.verify(passwords.DUMMY_HASH, "speicher-no-such-user") is True
    assert passwords.verify(passwords.DUMMY_HASH, "anything else") is False
