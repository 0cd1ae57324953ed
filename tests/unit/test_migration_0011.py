"""Migration 0011 (S3 versioning state, Object Lock configuration) on a database of 0010 with
a share in it: the share stays, never versioned and without a lock; the schema is what the
models say, and it goes back."""

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
    database = seeded(
        tmp_path / "speicher.db",
        "0010",
        {"name": "backups", "s3_enabled": 1, "s3_tags": '{"a":"1"}'},
        grant=False,
    )
    try:
        yield database
    finally:
        database.close()


def test_upgrade_keeps_the_share_unversioned_and_unlocked(db: Database) -> None:
    migrate(db, "head")
    assert rows(
        db, "SELECT name, s3_enabled, s3_tags, s3_versioning, s3_object_lock FROM shares"
    ) == [("backups", 1, '{"a":"1"}', "", "")]


def test_the_schema_is_what_the_models_say(db: Database) -> None:
    migrate(db, "head")
    with db.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert [d for d in diffs if "s3" in repr(d)] == []


def test_downgrade_to_0010_keeps_the_share(db: Database) -> None:
    migrate(db, "head")
    migrate(db, "0010", down=True)
    columns = {c["name"] for c in inspect(db.engine).get_columns("shares")}
    assert not {"s3_versioning", "s3_object_lock"} & columns
    assert rows(db, "SELECT name, s3_tags FROM shares") == [("backups", '{"a":"1"}')]
