"""Migration 0013 (share links) on a database of 0012 with a share and a user in it: both
stay, the table is what the models say, a link goes with its share, and it goes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from test_migration_0007 import NOW, migrate, rows, seeded

from speicher.db import Base, Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = seeded(tmp_path / "speicher.db", "0012", {"name": "docs"})
    try:
        yield database
    finally:
        database.close()


def test_upgrade_adds_the_links_and_keeps_share_and_user(db: Database) -> None:
    migrate(db, "0013")
    assert "share_links" in inspect(db.engine).get_table_names()
    assert rows(db, "SELECT name FROM shares") == [("docs",)]
    assert rows(db, "SELECT name FROM users") == [("alice",)]
    with db.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert [d for d in diffs if "share_links" in repr(d)] == []


def test_a_link_has_a_known_kind_and_goes_with_its_share(db: Database) -> None:
    migrate(db, "0013")
    insert = text(
        "INSERT INTO share_links (token_hash, share_id, path, kind, user_id, created_at) "
        "VALUES (:hash, 1, 'a', :kind, 1, :now)"
    )
    with db.engine.begin() as c:
        c.execute(insert, {"hash": "1" * 64, "kind": "download", "now": NOW})
    assert rows(db, "SELECT kind, bytes_received, password_hash FROM share_links") == [
        ("download", 0, None)
    ]
    with pytest.raises(Exception, match="CHECK constraint"), db.engine.begin() as c:
        c.execute(insert, {"hash": "2" * 64, "kind": "delete", "now": NOW})
    with db.engine.begin() as c:
        c.execute(text("PRAGMA foreign_keys=ON"))
        c.execute(text("DELETE FROM grants"))
        c.execute(text("DELETE FROM shares"))
    assert rows(db, "SELECT count(*) FROM share_links") == [(0,)]


def test_downgrade_to_0012_drops_only_the_links(db: Database) -> None:
    migrate(db, "0013")
    migrate(db, "0012", down=True)
    assert "share_links" not in inspect(db.engine).get_table_names()
    assert "web_sessions" in inspect(db.engine).get_table_names()
    assert rows(db, "SELECT name FROM shares") == [("docs",)]
