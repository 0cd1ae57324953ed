"""Migrations 0008 (shares' write_sync) and 0009 (the S3 switch, S3 keys) on a database of
0007 with data in it: the data stays, writes stay durable, S3 starts off, the schema is what
the models say, and it goes back."""

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
    """A database of revision 0007 holding a pool, a share with WebDAV on, a user, a grant."""
    database = seeded(tmp_path / "speicher.db", "0007", {"name": "docs", "webdav_enabled": 1})
    try:
        yield database
    finally:
        database.close()


def test_upgrade_keeps_the_data_durable_writes_and_s3_off(db: Database) -> None:
    migrate(db, "head")
    assert rows(db, "SELECT name, webdav_enabled, write_sync, s3_enabled FROM shares") == [
        ("docs", 1, "always", 0)
    ]
    assert rows(db, "SELECT share_id, user_id, access FROM grants") == [(1, 1, "rw")]
    assert rows(db, "SELECT count(*) FROM s3_keys") == [(0,)]


def test_the_schema_is_what_the_models_say(db: Database) -> None:
    migrate(db, "head")
    with db.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), Base.metadata)
    mine = [d for d in diffs if any(w in repr(d) for w in ("s3", "write_sync"))]
    assert mine == []
    columns = {c["name"] for c in inspect(db.engine).get_columns("s3_keys")}
    assert columns == {"id", "user_id", "access_key", "secret_sealed", "created_at"}
    [fk] = inspect(db.engine).get_foreign_keys("s3_keys")
    assert (fk["referred_table"], fk["options"].get("ondelete")) == ("users", "CASCADE")
    [unique] = inspect(db.engine).get_unique_constraints("s3_keys")
    assert unique["column_names"] == ["access_key"]


def test_downgrade_to_0007_keeps_shares_and_grants(db: Database) -> None:
    migrate(db, "head")
    migrate(db, "0007", down=True)
    assert "s3_keys" not in inspect(db.engine).get_table_names()
    columns = {c["name"] for c in inspect(db.engine).get_columns("shares")}
    assert not {"write_sync", "s3_enabled"} & columns
    assert rows(db, "SELECT name, webdav_enabled FROM shares") == [("docs", 1)]
    assert rows(db, "SELECT share_id, user_id, access FROM grants") == [(1, 1, "rw")]
