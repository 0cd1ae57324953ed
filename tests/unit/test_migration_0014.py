"""Migration 0014 (TOTP secrets, recovery codes, sessions that wait for the second factor) on
a database of 0013 with a share in it: the share stays, the tables are what the models say,
and it goes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from test_migration_0007 import migrate, rows, seeded

from speicher.db import Base, Database

NEW = ("totp_secrets", "recovery_codes", "second_factor_due")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = seeded(tmp_path / "speicher.db", "0013", {"name": "docs"}, grant=False)
    try:
        yield database
    finally:
        database.close()


def test_upgrade_adds_the_second_factor(db: Database) -> None:
    migrate(db, "head")
    tables = set(inspect(db.engine).get_table_names())
    assert {"totp_secrets", "recovery_codes"} <= tables
    columns = {c["name"] for c in inspect(db.engine).get_columns("web_sessions")}
    assert "second_factor_due" in columns
    assert rows(db, "SELECT name FROM shares") == [("docs",)]
    with db.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert [d for d in diffs if any(n in repr(d) for n in NEW)] == []


def test_downgrade_to_0013(db: Database) -> None:
    migrate(db, "head")
    migrate(db, "0013", down=True)
    tables = set(inspect(db.engine).get_table_names())
    assert not {"totp_secrets", "recovery_codes"} & tables
    columns = {c["name"] for c in inspect(db.engine).get_columns("web_sessions")}
    assert "second_factor_due" not in columns
    assert rows(db, "SELECT name FROM shares") == [("docs",)]
