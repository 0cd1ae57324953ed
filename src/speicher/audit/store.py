"""The audit log on disk: one SQLite file per month, written by one thread, searched by many.

A year of a 50-person office is tens of millions of rows. One file per month
(``<state>/audit/2026-11.db``) keeps each file's indexes small enough to stay in the page
cache, makes retention the deletion of a file (no ``DELETE`` of millions of rows, no
vacuum), and lets a search stop at the first months that give it enough rows (newest
first). bench/audit_search.py measures searches over 10 million rows.

Each file has one table, ``events``, and three indexes, chosen for the searches the API
offers (every search has a time range, and answers newest first):

- ``(time)``: a time range alone, or with filters no other index serves;
- ``(user, time)``: one user's actions, in time order, so a search stops after ``limit``;
- ``(share, time)`` and ``(share, path)``: a share's actions; a path prefix is a range of
  the second. :meth:`AuditStore.search` picks between the two by counting (at most
  ``NARROW`` rows) how many rows the prefix has: few, and they are read and sorted; many,
  and the share's rows are read newest first until ``limit`` of them match.

Nothing in Speicher changes or deletes rows: the files are root's (0600, in a 0700 folder),
and only whole months past the retention are removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from speicher.audit.records import Record

log = logging.getLogger(__name__)

_MONTH = re.compile(r"^(\d{4})-(\d{2})\.db$")
NARROW = 20_000  # a path prefix with fewer rows than this is read whole and sorted

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    time INTEGER NOT NULL,      -- microseconds since the epoch
    category TEXT NOT NULL,
    protocol TEXT NOT NULL,
    user TEXT NOT NULL,
    address TEXT NOT NULL,
    share TEXT NOT NULL,
    operation TEXT NOT NULL,
    path TEXT NOT NULL,
    target TEXT NOT NULL,
    size INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
CREATE INDEX IF NOT EXISTS events_user ON events (user, time);
CREATE INDEX IF NOT EXISTS events_share ON events (share, time);
CREATE INDEX IF NOT EXISTS events_path ON events (share, path);
"""
_COLUMNS = (
    "time, category, protocol, user, address, share, operation, path, target, size, outcome, detail"
)


@dataclass(frozen=True)
class Query:
    """A search: every field narrows it; ``path`` is a prefix (``/finance`` matches
    ``/finance`` and everything beneath it, not ``/finance2``)."""

    since: float | None = None  # seconds since the epoch
    until: float | None = None
    user: str | None = None
    share: str | None = None
    path: str | None = None
    protocol: str | None = None
    operation: str | None = None
    category: str | None = None
    limit: int = 100


def month_of(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m")


def _month_start(month: str) -> float:
    year, number = (int(x) for x in month.split("-"))
    return dt.datetime(year, number, 1, tzinfo=dt.UTC).timestamp()


def _next_month(month: str) -> str:
    year, number = (int(x) for x in month.split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


class AuditStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writers: dict[str, sqlite3.Connection] = {}  # the writer thread's, by month
        self._lock = threading.Lock()

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)

    # -- writing (one thread) ---------------------------------------------------------------

    def add(self, records: Iterable[Record]) -> int:
        """Append ``records`` (one transaction per month they fall in); returns how many."""
        by_month: dict[str, list[tuple[object, ...]]] = {}
        rows: list[tuple[object, ...]] = []
        start = end = 0.0  # the month of the last record, as times: a batch is mostly one
        for r in records:
            if not start <= r.time < end:
                month = month_of(r.time)
                start, end = _month_start(month), _month_start(_next_month(month))
                rows = by_month.setdefault(month, [])
            rows.append(_row(r))
        count = 0
        with self._lock:
            for month, month_rows in by_month.items():
                db = self._writer(month)
                with db:
                    db.executemany(_INSERT, month_rows)
                count += len(month_rows)
        return count

    def _writer(self, month: str) -> sqlite3.Connection:
        db = self._writers.get(month)
        if db is None:
            path = self.folder / f"{month}.db"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.isolation_level = "DEFERRED"
            self._writers[month] = db
            if len(self._writers) > 2:  # months that ended are written no more
                self._writers.pop(min(self._writers)).close()
        return db

    def close(self) -> None:
        with self._lock:
            for db in self._writers.values():
                db.close()
            self._writers.clear()

    def remove_before(self, month: str) -> list[str]:
        """Delete the files of every month before ``month``; returns those months."""
        gone = []
        with self._lock:
            for m in self.months():
                if m < month:
                    if (db := self._writers.pop(m, None)) is not None:
                        db.close()
                    for suffix in ("", "-wal", "-shm"):
                        with contextlib.suppress(FileNotFoundError):
                            (self.folder / f"{m}.db{suffix}").unlink()
                    gone.append(m)
        return gone

    # -- reading ------------------------------------------------------------------------------

    def months(self) -> list[str]:
        """The months that have a file, oldest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for entry in os.listdir(self.folder):
            if m := _MONTH.match(entry):
                found.append(f"{m.group(1)}-{m.group(2)}")
        return sorted(found)

    def search(self, q: Query) -> list[Record]:
        """The newest ``q.limit`` records that match, newest first."""
        out: list[Record] = []
        for month in reversed(self._months_of(q)):
            need = q.limit - len(out)
            if need <= 0:
                break
            out.extend(self._search_month(month, q, need))
        return out

    def export(self, q: Query, batch: int = 5000) -> Iterator[Record]:
        """Every record that matches (``q.limit`` ignored), oldest first, in batches that
        each use their own connection, so a slow reader holds no transaction open."""
        for month in self._months_of(q):
            after = -1
            while True:
                rows = self._rows_after(month, q, after, batch)
                if not rows:
                    break
                for rowid, record in rows:
                    after = rowid
                    yield record
                if len(rows) < batch:
                    break

    def _months_of(self, q: Query) -> list[str]:
        months = self.months()
        if q.since is not None:
            first = month_of(q.since)
            months = [m for m in months if m >= first]
        if q.until is not None:
            last = month_of(q.until)
            months = [m for m in months if m <= last]
        return months

    def _reader(self, month: str) -> sqlite3.Connection:
        path = self.folder / f"{month}.db"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        db.execute("PRAGMA query_only=1")
        return db

    def _where(self, q: Query, month: str) -> tuple[list[str], list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        start, end = _month_start(month), _month_start(_next_month(month))
        since = max(q.since, start) if q.since is not None else None
        until = min(q.until, end) if q.until is not None else None
        if since is not None and since > start:
            clauses.append("time >= ?")
            args.append(int(since * 1_000_000))
        if until is not None and until < end:
            clauses.append("time <= ?")
            args.append(int(until * 1_000_000))
        for column in ("user", "share", "protocol", "operation", "category"):
            value = getattr(q, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if q.path is not None and q.path not in ("", "/"):
            prefix = q.path.rstrip("/")
            # the path itself, or beneath it: "/a" and "/a/..." but not "/ab"
            clauses.append("(path = ? OR (path >= ? AND path < ?))")
            args += [prefix, prefix + "/", prefix + "0"]  # "0" follows "/" in code points
        return clauses, args

    def _search_month(self, month: str, q: Query, limit: int) -> list[Record]:
        clauses, args = self._where(q, month)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        db = self._reader(month)
        try:
            index = self._index(db, q, where, args)
            sql = (
                f"SELECT {_COLUMNS} FROM events {index} {where} "  # noqa: S608 - see _INSERT
                "ORDER BY time DESC, rowid DESC LIMIT ?"
            )
            rows = db.execute(sql, [*args, limit]).fetchall()
        except sqlite3.OperationalError as exc:  # a month file a crash left unfinished
            log.warning("audit month %s cannot be searched: %s", month, exc)
            return []
        finally:
            db.close()
        return [_record(row) for row in rows]

    @staticmethod
    def _index(db: sqlite3.Connection, q: Query, where: str, args: list[object]) -> str:
        """Which index a search of a share's path prefix uses (see the module's docstring);
        SQLite's own choice without statistics is the time index, which reads the whole
        month for a rare path."""
        if q.path is None or q.path in ("", "/") or q.share is None:
            return ""
        (count,) = db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events INDEXED BY events_path "  # noqa: S608
            f"{where} LIMIT ?)",
            [*args, NARROW],
        ).fetchone()
        return "INDEXED BY events_path" if count < NARROW else "INDEXED BY events_share"

    def _rows_after(self, month: str, q: Query, after: int, limit: int) -> list[tuple[int, Record]]:
        clauses, args = self._where(q, month)
        clauses.append("rowid > ?")
        sql = (
            f"SELECT rowid, {_COLUMNS} FROM events "  # noqa: S608 - see _INSERT
            f"WHERE {' AND '.join(clauses)} ORDER BY rowid LIMIT ?"
        )
        db = self._reader(month)
        try:
            rows = db.execute(sql, [*args, after, limit]).fetchall()
        except sqlite3.OperationalError as exc:
            log.warning("audit month %s cannot be read: %s", month, exc)
            return []
        finally:
            db.close()
        return [(row[0], _record(row[1:])) for row in rows]


# the SQL here is put together from our own column names and clauses; every value a user
# gives is a parameter
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"  # noqa: S608


def _row(r: Record) -> tuple[object, ...]:
    return (
        int(r.time * 1_000_000),
        r.category,
        r.protocol,
        r.user,
        r.address,
        r.share,
        r.operation,
        r.path,
        r.target,
        r.size,
        r.outcome,
        r.detail,
    )


def _record(row: tuple[object, ...]) -> Record:
    (time, category, protocol, user, address, share, operation, path, target, size, outcome,
     detail) = row  # fmt: skip
    assert isinstance(time, int) and isinstance(size, int)
    return Record(
        time=time / 1_000_000,
        category=category,  # type: ignore[arg-type]
        protocol=str(protocol),
        user=str(user),
        address=str(address),
        share=str(share),
        operation=str(operation),
        path=str(path),
        target=str(target),
        size=size,
        outcome=str(outcome),
        detail=str(detail),
    )
