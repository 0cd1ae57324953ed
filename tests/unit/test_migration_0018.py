"""Migration 0018 (backup targets and tasks; the bytes and time left of a job) on a
database of 0017 with a share and a finished job in it: both stay, the tables are what the
model says, and it goes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from test_migration_0007 import migrate, rows, seeded

from speicher.db import Base, Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = seeded(tmp_path / "speicher.db", "0017", {"name": "docs"}, grant=False)
    with database.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO jobs (kind, target, state, progress, message, error, created_at) "
                "VALUES ('pool.create', 'tank', 'succeeded', 100, 'done', '', '2026-01-01')"
            )
        )
    try:
        yield database
    finally:
        database.close()


def test_upgrade_adds_the_backup_tables(db: Database) -> None:
    migrate(db, "head")
    assert {"backup_targets", "backup_tasks"} <= set(inspect(db.engine).get_table_names())
    assert rows(db, "SELECT name FROM shares") == [("docs",)]
    assert rows(db, "SELECT kind, bytes_done, eta_seconds FROM jobs") == [
        ("pool.create", None, None)
    ]
    with db.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert [d for d in diffs if "backup_" in repr(d) or "jobs" in repr(d)] == []


def test_downgrade_to_0017(db: Database) -> None:
    migrate(db, "head")
    migrate(db, "0017", down=True)
    tables = set(inspect(db.engine).get_table_names())
    assert not {"backup_targets", "backup_tasks"} & tables
    assert "bytes_done" not in {c["name"] for c in inspect(db.engine).get_columns("jobs")}
    assert rows(db, "SELECT kind FROM jobs") == [("pool.create",)]
