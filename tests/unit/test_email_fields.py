"""E-mail fields of users: a syntactically valid address (email-validator, no DNS) or empty."""

from __future__ import annotations

import pydantic
import pytest

from speicher.access.models import UserCreate, UserUpdate


@pytest.mark.parametrize(
    "address",
    ["alice@example.com", "alice.smith+nas@mail.example.co.uk", "müller@beispiel.de", ""],
)
def test_valid_addresses_and_empty_are_accepted(address: str) -> None:
    assert UserCreate(name="alice", password="p", email=address).email == address
    assert UserUpdate(email=address).email == address


def test_the_domain_is_stored_normalised() -> None:
    assert UserUpdate(email="Alice@Example.COM").email == "Alice@example.com"


@pytest.mark.parametrize(
    "address",
    [
        "alice",
        "alice@",
        "@example.com",
        "alice@example",
        "a..b@example.com",
        "alice smith@example.com",
        "Alice <alice@example.com>",
        "alice@example.com\nBcc: mallory@example.com",
        "x" * 250 + "@example.com",
    ],
)
def test_invalid_addresses_are_refused_with_the_field_named(address: str) -> None:
    for make in (
        lambda: UserCreate(name="alice", password="p", email=address),
        lambda: UserUpdate(email=address),
    ):
        with pytest.raises(pydantic.ValidationError) as caught:
            make()
        (error,) = caught.value.errors()
        assert error["loc"] == ("email",)
        assert "e-mail address" in error["msg"] or "at most 254" in error["msg"]
