"""Sessions and CSRF tokens on a real database file: a session is found by its cookie secret
only (the database keeps a hash), ends when idle, when too old, at logout and when its user
is disabled; a CSRF token belongs to one session. And the file manager's ranges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from speicher.db import Database
from speicher.db.models import User, WebSession
from speicher.web import files, live
from speicher.web.sessions import IDLE, LIFETIME, SessionService


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    database.migrate()  # the schema of migration 0012 (web_sessions), as a daemon has it
    with database.session() as s:
        s.add(User(name="alice", uid=20001, password_hash="x", state="ready", enabled=True))
        s.add(User(name="bob", uid=20002, password_hash="x", state="ready", enabled=True))
    try:
        yield database
    finally:
        database.close()


def age(db: Database, created: dt.timedelta, seen: dt.timedelta) -> None:
    now = dt.datetime.now(dt.UTC)
    with db.session() as s:
        s.execute(update(WebSession).values(created_at=now - created, last_seen_at=now - seen))


def test_a_session_is_its_secret_and_the_database_keeps_only_a_hash(db: Database) -> None:
    sessions = SessionService(db)
    secret = sessions.create("alice", "192.0.2.7")
    found = sessions.lookup(secret)
    assert found is not None and found.name == "alice" and not found.admin
    with db.session() as s:
        stored = s.scalars(select(WebSession)).one()
        assert secret not in (stored.secret_hash, stored.csrf_secret)
        assert stored.address == "192.0.2.7"
    assert sessions.lookup(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert sessions.lookup("") is None and sessions.lookup("x" * 500) is None


def test_sessions_end_idle_too_old_at_logout_and_with_their_user(db: Database) -> None:
    sessions = SessionService(db)
    secret = sessions.create("alice", None)
    age(db, created=IDLE, seen=IDLE + dt.timedelta(seconds=5))
    assert sessions.lookup(secret) is None  # idle too long, and gone for good
    secret = sessions.create("alice", None)
    age(db, created=LIFETIME + dt.timedelta(seconds=5), seen=dt.timedelta(seconds=1))
    assert sessions.lookup(secret) is None  # busy, but older than its lifetime
    secret = sessions.create("alice", None)
    other = sessions.create("bob", None)
    sessions.end(secret)
    assert sessions.lookup(secret) is None and sessions.lookup(other) is not None
    secret = sessions.create("alice", None)
    with db.session() as s:
        s.execute(update(User).where(User.name == "alice").values(enabled=False))
    assert sessions.lookup(secret) is None
    assert sessions.end_all("bob") == 1 and sessions.lookup(other) is None


def test_a_csrf_token_belongs_to_one_session(db: Database) -> None:
    sessions = SessionService(db)
    first = sessions.lookup(sessions.create("alice", None))
    second = sessions.lookup(sessions.create("alice", None))
    assert first is not None and second is not None
    assert first.csrf_ok(first.csrf_token())
    assert not first.csrf_ok(second.csrf_token())
    assert not first.csrf_ok(None) and not first.csrf_ok("")


def test_ranges_of_a_download() -> None:
    assert files.byte_range(None, 100) is None
    assert files.byte_range("bytes=0-9", 100) == (0, 10)
    assert files.byte_range("bytes=90-", 100) == (90, 100)
    assert files.byte_range("bytes=95-200", 100) == (95, 100)
    assert files.byte_range("bytes=-10", 100) == (90, 100)
    assert files.byte_range("bytes=-200", 100) == (0, 100)
    assert files.byte_range("bytes=0-1,5-6", 100) is None  # several: the whole file
    assert files.byte_range("items=0-1", 100) is None
    for beyond in ("bytes=100-", "bytes=-0", "bytes=50-10"):
        with pytest.raises(files.Unsatisfiable):
            files.byte_range(beyond, 100)


def test_disk_throughput_is_read_from_diskstats() -> None:
    sample = (
        "   7       3 loop3 10 0 200 5 20 0 400 9 0 12 14 0 0 0 0 0 0\n"
        "   8       0 sda 99 0 999 5 99 0 999 9 0 12 14 0 0 0 0 0 0\n"
        "   7       4 loop4 1 0 8 5 2 0 16 9 0 12 14 0 0 0 0 0 0\n"
    )
    assert live.disk_bytes({"loop3", "loop4"}, sample) == ((200 + 8) * 512, (400 + 16) * 512)
    assert live.disk_bytes(set(), sample) == (0, 0)
    read, written = live.disk_bytes({"loop0", "vda", "sda"})  # this machine's own, read live
    assert read >= 0 and written >= 0
