"""Upgrading a database of 0003 (before intent states and file access) keeps every grant and
group membership: Alembic's batch mode rebuilds ``users`` and ``shares`` by copying them, and
with SQLite's foreign keys on, dropping the old copies deleted all rows pointing at them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from speicher.db import Database

NOW = "2026-01-01 00:00:00"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    database.migrate("0003")
    statements = [
        "INSERT INTO pools (id, name, profile, uuid, md_uuid, state, created_at) "
        "VALUES (1, 'tank', 'raid1', 'u', '', 'ready', :now)",
        "INSERT INTO shares (id, name, pool_id, description, compression, created_at) "
        "VALUES (1, 'docs', 1, '', '', :now)",
        "INSERT INTO users (id, name, uid, full_name, email, password_hash, is_admin, enabled, "
        "created_at) VALUES (1, 'alice', 20000, '', '', 'x', 0, 1, :now)",
        "INSERT INTO groups (id, name, gid, description, created_at) "
        "VALUES (1, 'team', 20001, '', :now)",
        "INSERT INTO group_members (group_id, user_id) VALUES (1, 1)",
        "INSERT INTO grants (id, share_id, user_id, access) VALUES (1, 1, 1, 'rw')",
        "INSERT INTO grants (id, share_id, group_id, access) VALUES (2, 1, 1, 'ro')",
    ]
    with database.engine.begin() as c:
        for sql in statements:
            c.execute(text(sql), {"now": NOW})
    try:
        yield database
    finally:
        database.close()


def rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql))]


def test_grants_and_memberships_survive_the_upgrade(db: Database) -> None:
    db.migrate()
    assert rows(db, "SELECT id, share_id, user_id, group_id, access FROM grants ORDER BY id") == [
        (1, 1, 1, None, "rw"),
        (2, 1, None, 1, "ro"),
    ]
    assert rows(db, "SELECT group_id, user_id FROM group_members") == [(1, 1)]
    assert rows(db, "SELECT name, state FROM users") == [("alice", "ready")]
    with db.engine.connect() as c:  # and foreign keys are on again for the daemon's sessions
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
