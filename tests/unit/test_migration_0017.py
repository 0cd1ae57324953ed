"""Migration 0017 (replication tasks) on a database of 0016 with a share
in it: the share stays, the table is what the model says, and it goes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from test_migration_0007 import migrate, rows, seeded

from speicher.db import Base, Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = seeded(tmp_path / "speicher.db", "0016", {"name": "docs"}, grant=False)
    try:
        yield database
    finally:
        database.close()


def test_upgrade_adds_the_replication_tables(db: Database) -> None:
    migrate(db, "head")
    assert {"replication_tasks"} <= set(inspect(db.engine).get_table_names())
    assert rows(db, "SELECT name FROM shares") == [("docs",)]
    with db.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert [d for d in diffs if "replication_" in repr(d)] == []


def test_downgrade_to_0016(db: Database) -> None:
    migrate(db, "head")
    migrate(db, "0016", down=True)
    tables = set(inspect(db.engine).get_table_names())
    assert "replication_tasks" not in tables
    assert rows(db, "SELECT name FROM shares") == [("docs",)]
