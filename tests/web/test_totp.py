"""The second factor on a real database file: a secret is in use only after a right first
code; a code counts once (a replay is refused), within one step of the clock either way; a
recovery code logs in once; turning it off removes secret and codes. The secret is stored
sealed, the recovery codes as Argon2 hashes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from speicher.access.totp import TotpService
from speicher.db import Database
from speicher.db.models import RecoveryCode, TotpSecret, User
from speicher.errors import Conflict, InvalidInput
from speicher.events import EventService

NOW = 1_800_000_000.0  # a fixed moment: every code here is computed for it


@pytest.fixture
def totp(tmp_path: Path) -> Iterator[TotpService]:
    db = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    db.migrate()
    with db.session() as s:
        s.add(User(name="alice", uid=20001, password_hash="x", state="ready", enabled=True))
    try:
        yield TotpService(tmp_path, db, EventService(db))
    finally:
        db.close()


def code_at(secret: str, moment: float) -> str:
    return pyotp.TOTP(secret).at(moment)


def test_enrolment_needs_a_right_first_code(totp: TotpService) -> None:
    enrolment = totp.begin("alice")
    assert enrolment.uri.startswith("otpauth://totp/Speicher:alice?secret=")
    assert not totp.enabled("alice")
    with pytest.raises(InvalidInput):
        totp.confirm("alice", code_at(enrolment.secret, NOW + 3600), NOW)  # an hour off
    assert not totp.enabled("alice")
    assert totp.verify("alice", code_at(enrolment.secret, NOW), NOW) is False  # not on yet
    codes = totp.confirm("alice", code_at(enrolment.secret, NOW), NOW)
    assert totp.enabled("alice") and len(codes) == 10 and len(set(codes)) == 10
    with totp.db.session() as s:
        row = s.scalars(select(TotpSecret)).one()
        assert enrolment.secret not in row.secret_sealed  # sealed, not in the clear
        hashes = [r.code_hash for r in s.scalars(select(RecoveryCode))]
        assert all(h.startswith("$argon2") for h in hashes)
        assert not any(c.replace("-", "") in h for c in codes for h in hashes)
    with pytest.raises(Conflict):
        totp.begin("alice")  # in use: turn it off first


def test_a_code_counts_once_and_near_its_time(totp: TotpService) -> None:
    secret = totp.begin("alice").secret
    totp.confirm("alice", code_at(secret, NOW), NOW)
    assert not totp.verify("alice", code_at(secret, NOW), NOW)  # the confirming code is spent
    later = NOW + 30
    assert totp.verify("alice", code_at(secret, later), later)
    assert not totp.verify("alice", code_at(secret, later), later)  # a replay
    assert totp.verify("alice", code_at(secret, later + 60), later + 30)  # one step ahead
    assert not totp.verify("alice", code_at(secret, later + 300), later + 90)  # too far
    assert not totp.verify("alice", "12345", later + 90) and not totp.verify("alice", "", later)


def test_a_recovery_code_logs_in_once_and_off_removes_everything(totp: TotpService) -> None:
    secret = totp.begin("alice").secret
    codes = totp.confirm("alice", code_at(secret, NOW), NOW)
    assert totp.verify("alice", codes[3].upper(), NOW + 600)  # case and dashes do not matter
    assert not totp.verify("alice", codes[3], NOW + 630)
    assert totp.recovery_codes_left("alice") == 9
    assert not totp.verify("alice", "ffffff-ffffff-ffffff", NOW + 660)
    totp.disable("alice")
    assert not totp.enabled("alice") and totp.recovery_codes_left("alice") == 0
    assert not totp.verify("alice", codes[4], NOW + 700)
