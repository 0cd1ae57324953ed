"""Migration 0007 (WebDAV/SFTP switches, SSH keys) on a database of 0006 with data in it: the
data stays, the switches start off, the schema is what the models say, and it goes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from speicher.db import Base, Database
from speicher.db.session import MIGRATIONS

NOW = "2026-01-01 00:00:00"


def migrate(db: Database, revision: str, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)


def seeded(path: Path, revision: str, share: dict[str, object], grant: bool = True) -> Database:
    """A database of ``revision`` holding a pool ``tank``, a share (id 1 with ``share``'s
    columns besides the required ones) and, with ``grant``, user alice with an rw grant."""
    database = Database(f"sqlite:///{path}")
    migrate(database, revision)
    columns = {"id": 1, "pool_id": 1, "description": "d", "compression": "", **share}
    names = ", ".join([*columns, "created_at"])
    values = ", ".join([*(f":{k}" for k in columns), ":now"])
    with database.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO pools (id, name, profile, uuid, md_uuid, state, created_at) "
                "VALUES (1, 'tank', 'raid1', 'u', '', 'ready', :now)"
            ),
            {"now": NOW},
        )
        c.execute(text(f"INSERT INTO shares ({names}) VALUES ({values})"), {**columns, "now": NOW})  # noqa: S608
        if grant:
            c.execute(
                text(
                    "INSERT INTO users (id, name, uid, full_name, email, password_hash, "
                    "is_admin, enabled, created_at) "
                    "VALUES (1, 'alice', 20000, '', '', 'x', 0, 1, :now)"
                ),
                {"now": NOW},
            )
            c.execute(
                text("INSERT INTO grants (id, share_id, user_id, access) VALUES (1, 1, 1, 'rw')")
            )
    return database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A database of revision 0006 holding a pool, a share with SMB on, a user and a grant."""
    database = seeded(tmp_path / "speicher.db", "0006", {"name": "docs", "smb_enabled": 1})
    try:
        yield database
    finally:
        database.close()


def rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql))]


def test_upgrade_keeps_the_data_and_starts_with_the_switches_off(db: Database) -> None:
    migrate(db, "head")
    assert rows(db, "SELECT name, smb_enabled, webdav_enabled, sftp_enabled FROM shares") == [
        ("docs", 1, 0, 0)
    ]
    assert rows(db, "SELECT share_id, user_id, access FROM grants") == [(1, 1, "rw")]
    assert rows(db, "SELECT name FROM users") == [("alice",)]
    assert rows(db, "SELECT count(*) FROM ssh_keys") == [(0,)]


def test_the_schema_is_what_the_models_say(db: Database) -> None:
    migrate(db, "head")
    with db.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), Base.metadata)
    mine = [d for d in diffs if "ssh_keys" in repr(d) or "webdav" in repr(d) or "sftp" in repr(d)]
    assert mine == []
    columns = {c["name"]: c for c in inspect(db.engine).get_columns("ssh_keys")}
    assert set(columns) == {
        "id",
        "user_id",
        "fingerprint",
        "algorithm",
        "comment",
        "public_key",
        "created_at",
    }
    [fk] = inspect(db.engine).get_foreign_keys("ssh_keys")
    assert (fk["referred_table"], fk["options"].get("ondelete")) == ("users", "CASCADE")
    [unique] = inspect(db.engine).get_unique_constraints("ssh_keys")
    assert unique["column_names"] == ["user_id", "fingerprint"]


def test_a_users_keys_go_with_the_user(db: Database) -> None:
    migrate(db, "head")
    with db.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO ssh_keys (user_id, fingerprint, algorithm, comment, public_key, "
                "created_at) VALUES (1, 'SHA256:x', 'ssh-ed25519', '', 'ssh-ed25519 AAAA', :now)"
            ),
            {"now": NOW},
        )
    with db.engine.begin() as c:  # the daemon's connections have foreign keys on
        c.execute(text("DELETE FROM users WHERE id = 1"))
    assert rows(db, "SELECT count(*) FROM ssh_keys") == [(0,)]


def test_downgrade_to_0006_keeps_shares_and_grants(db: Database) -> None:
    migrate(db, "head")
    migrate(db, "0006", down=True)
    assert "ssh_keys" not in inspect(db.engine).get_table_names()
    columns = {c["name"] for c in inspect(db.engine).get_columns("shares")}
    assert not {"webdav_enabled", "sftp_enabled"} & columns
    assert rows(db, "SELECT name, smb_enabled FROM shares") == [("docs", 1)]
    assert rows(db, "SELECT share_id, user_id, access FROM grants") == [(1, 1, "rw")]
