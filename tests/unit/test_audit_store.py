"""The audit log's month files: search by user, share, path prefix and time, newest first;
export in order; retention removes whole months."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from speicher.audit.records import Record, without_controls
from speicher.audit.store import AuditStore, Query


def at(year: int, month: int, day: int, hour: int = 12) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp()


def rec(
    t: float, user: str = "alice", share: str = "finance", path: str = "/a", op: str = "create"
) -> Record:
    return Record(t, "file", "smb", user, "10.0.0.5", share, op, path)


def test_search_spans_months_newest_first_and_filters(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit")
    store.prepare()
    rows = [
        rec(at(2026, 10, 30), path="/q3/report.xlsx"),
        rec(at(2026, 11, 2), user="bob", path="/q3/report.xlsx", op="delete"),
        rec(at(2026, 11, 3), path="/q4/plan.docx"),
        rec(at(2026, 11, 4), share="hr", path="/q3/x"),
        rec(at(2026, 12, 1), path="/q3"),
        rec(at(2026, 12, 1, 13), path="/q30/other"),
    ]
    assert store.add(rows) == 6
    assert store.months() == ["2026-10", "2026-11", "2026-12"]
    (tmp_path / "audit" / "notes.txt").write_text("not a month")
    assert store.months() == ["2026-10", "2026-11", "2026-12"]

    everything = store.search(Query(limit=100))
    assert [r.time for r in everything] == sorted((r.time for r in rows), reverse=True)

    q3 = store.search(Query(share="finance", path="/q3"))
    assert [r.path for r in q3] == ["/q3", "/q3/report.xlsx", "/q3/report.xlsx"]  # not /q30
    assert [r.path for r in store.search(Query(share="finance", path="/q3/"))] == [
        r.path for r in q3
    ]

    bob = store.search(Query(user="bob"))
    assert [(r.user, r.operation) for r in bob] == [("bob", "delete")]

    november = store.search(Query(since=at(2026, 11, 1), until=at(2026, 11, 30)))
    assert [r.path for r in november] == ["/q3/x", "/q4/plan.docx", "/q3/report.xlsx"]
    assert len(store.search(Query(limit=2))) == 2
    # an export is every match, oldest first
    assert [r.time for r in store.export(Query(share="finance"))] == sorted(
        r.time for r in rows if r.share == "finance"
    )


def test_a_batch_that_goes_back_and_forth_over_a_month_end_lands_in_each_month(
    tmp_path: Path,
) -> None:
    """add() keeps the last record's month as a span of times: a record just before, at and
    after the first second of a month, in one batch and out of order, each in its month."""
    store = AuditStore(tmp_path / "audit")
    store.prepare()
    december = at(2026, 12, 1, 0)
    times = [december - 0.000001, december, december - 1, december + 1, at(2027, 1, 1, 0)]
    assert store.add([rec(t, path=f"/{i}") for i, t in enumerate(times)]) == 5
    assert store.months() == ["2026-11", "2026-12", "2027-01"]
    november = store.search(Query(until=december - 0.000001))
    assert sorted(r.path for r in november) == ["/0", "/2"]
    assert sorted(r.path for r in store.search(Query(since=december))) == ["/1", "/3", "/4"]
    for month, paths in (("2026-11", {"/0", "/2"}), ("2026-12", {"/1", "/3"})):
        db = sqlite3.connect(tmp_path / "audit" / f"{month}.db")
        try:
            assert {p for (p,) in db.execute("SELECT path FROM events")} == paths
        finally:
            db.close()


def test_retention_removes_whole_months(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit")
    store.prepare()
    store.add([rec(at(2025, 1, 5)), rec(at(2025, 2, 5)), rec(at(2026, 11, 5))])
    assert store.remove_before("2025-02") == ["2025-01"]
    assert store.months() == ["2025-02", "2026-11"]
    assert not list((tmp_path / "audit").glob("2025-01*"))
    # the files are root's alone
    assert (tmp_path / "audit").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "audit" / "2026-11.db").stat().st_mode & 0o777 == 0o600


def test_control_characters_never_reach_a_reader() -> None:
    assert without_controls("/a\nb\x1b[31m") == "/a\ufffdb\ufffd[31m"
    assert without_controls("Bericht für März.docx") == "Bericht für März.docx"
    assert without_controls("x" * 5000) == "x" * 4096
