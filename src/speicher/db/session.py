"""Engine, sessions and schema migration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from speicher.db.generations import SharedGenerations

MIGRATIONS = Path(__file__).parent / "migrations"
POOL_SIZE = 48


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


class Database:
    """One database: ``session()`` gives a unit of work that commits or rolls back."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Sized beyond the API's worker threads (anyio's 40) plus the monitor and jobs, so a
        # crowd of requests never waits for a connection; sessions are short (none is held
        # across a command), so the pool is rarely more than a few deep.
        self.engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=16, pool_timeout=30)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # bumped after every commit that changed something (a cheap "did anything change?");
        # _tables: the generation at which each table last changed ("*": a change of unknown
        # tables, such as a textual statement), so a listing waits only for its own tables
        self.generation = 0
        self._tables: dict[str, int] = {}
        # the counters in a file every process of the daemon maps (share_generations)
        self._shared: SharedGenerations | None = None
        self._watch_changes()

    def share_generations(self, path: Path) -> None:
        """Count changes in ``path``, shared with the other processes that open it (the
        daemon and S3's worker processes), so each sees the others' commits."""
        self._shared = SharedGenerations(path)

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (the newest by default).

        On SQLite, foreign keys are off while migrations run: Alembic's batch mode alters a
        table by copying it and dropping the old one, and with foreign keys on, that drop
        deleted every row pointing at it (``ON DELETE CASCADE``: all grants and group
        memberships when 0004 altered ``users``). The references are checked afterwards."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:  # outside a transaction, or SQLite ignores it
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    cfg.attributes["connection"] = connection
                    command.upgrade(cfg, revision)
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise RuntimeError(f"the migration broke references: {broken[:5]}")
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            with session.begin():
                yield session
            if session.info.get("changed") and not session.info.get("quiet"):
                tables = session.info.get("tables", ("*",))
                if self._shared is not None:
                    self.generation = self._shared.bump(tables)
                    return
                self.generation += 1
                for table in tables:
                    self._tables[table] = self.generation

    def generation_of(self, tables: frozenset[str]) -> int:
        """The generation at which any of ``tables`` last changed (0: never since start)."""
        if self._shared is not None:
            return self._shared.of(tables)
        found = self._tables.get("*", 0)
        for table in tables:
            found = max(found, self._tables.get(table, 0))
        return found

    @contextmanager
    def quiet_session(self) -> Iterator[Session]:
        """A session whose changes do not count as news for cached listings (a job's progress
        figure, written several times a second)."""
        with self.session() as session:
            session.info["quiet"] = True
            yield session

    def _watch_changes(self) -> None:
        """Count committed changes (``generation``), so readers can cache what they built from
        the database until it changes."""

        def changed(session: Session, table: str) -> None:
            session.info["changed"] = True
            session.info.setdefault("tables", set()).add(table)

        @event.listens_for(self._sessions, "after_flush")
        def _flushed(session: Session, _context: Any) -> None:
            for obj in (*session.new, *session.dirty, *session.deleted):
                table = getattr(obj, "__table__", None)
                changed(session, table.name if table is not None else "*")
            session.info["changed"] = True

        @event.listens_for(self._sessions, "do_orm_execute")
        def _executed(state: Any) -> None:
            if not state.is_select:
                table = getattr(state.statement, "table", None)
                changed(state.session, getattr(table, "name", "*"))

    def close(self) -> None:
        self.engine.dispose()
        if self._shared is not None:
            self._shared.close()
            self._shared = None
