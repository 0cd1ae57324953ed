"""Password rules and Argon2id hashing."""

from __future__ import annotations

import secrets
from importlib import resources

import pytest

from speicher.access import passwords


@pytest.mark.parametrize(
    "password",
    [
        "x" * 8 + "y",
        "correct horse battery staple",
        "pässwörd",
        "x" * 1024,
        "🔑" * 8,
        " pass word ",
    ],
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


COMMON = "is one of the most common passwords, the first that attackers try"


@pytest.mark.parametrize(
    "password",
    ["12345678", "password", "PASSWORD", "Password", "  password  ", "iloveyou", "qwertyuiop"],
)
def test_common_passwords_are_refused_whatever_their_case(password: str) -> None:
    reason = passwords.check(password)
    assert reason is not None and reason.startswith(COMMON)


@pytest.mark.parametrize("password", [" " * 8, " " * 20, "\u00a0" * 8])
def test_whitespace_only_passwords_are_refused(password: str) -> None:
    assert passwords.check(password) == "must not be only spaces (or other whitespace)"


def test_the_user_name_is_no_password() -> None:
    assert passwords.check("alice.smith", "alice.smith") == "must not be the user name"
    assert passwords.check("Alice.Smith ", "alice.smith") == "must not be the user name"
    assert passwords.check("alice.smith", "bob.smith") is None
    assert passwords.check("alice.smith") is None


def test_the_bundled_list_is_the_30000_most_common_and_names_its_source() -> None:
    common = passwords.common_passwords()
    assert len(common) == 30000
    assert all(p == p.lower() and p.strip() == p and p for p in common)
    assert {"123456", "password", "12345678", "qwerty", "trustno1"} <= common
    text = resources.files("speicher.access").joinpath(passwords.COMMON_LIST).read_text()
    notice = [line for line in text.splitlines() if line.startswith("#")]
    assert any("zxcvbn 4.5.0" in line for line in notice)
    assert any("MIT License" in line for line in notice)


def test_generated_passwords_pass() -> None:
    """The first admin's password is ``secrets.token_urlsafe(12)`` (see ensure_admin)."""
    assert all(passwords.check(secrets.token_urlsafe(12), "admin") is None for _ in range(1000))


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
