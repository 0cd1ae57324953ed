"""When a scheduled task is due, with the clock passed in."""

from __future__ import annotations

import datetime as dt

import pytest

from speicher import schedule

T = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def test_due_once_a_scheduled_time_has_passed() -> None:
    hourly = "0 * * * *"
    assert schedule.due(hourly, last_run=T - dt.timedelta(minutes=30), since=T, now=T)
    assert not schedule.due(hourly, last_run=T, since=T, now=T + dt.timedelta(minutes=59))
    assert schedule.due(hourly, last_run=T, since=T, now=T + dt.timedelta(minutes=60))


def test_after_downtime_one_catch_up_not_a_burst() -> None:
    hourly = "0 * * * *"
    down_since = T - dt.timedelta(days=3)  # 72 runs missed
    now = T + dt.timedelta(minutes=5)
    assert schedule.due(hourly, last_run=down_since, since=down_since, now=now)
    # having run once now, nothing more is due until the next hour
    for minutes in range(6, 60):
        later = T + dt.timedelta(minutes=minutes)
        assert not schedule.due(hourly, last_run=now, since=down_since, now=later)


def test_never_ran_counts_from_creation() -> None:
    monthly = "0 3 1 * *"
    created = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    assert not schedule.due(monthly, None, created, dt.datetime(2026, 11, 30, tzinfo=dt.UTC))
    assert schedule.due(monthly, None, created, dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC))
    assert schedule.following(monthly, created) == dt.datetime(2026, 12, 1, 3, tzinfo=dt.UTC)


@pytest.mark.parametrize("bad", ["", "* * *", "61 * * * *", "every hour", "0 * * * * *"])
def test_bad_schedules_are_named(bad: str) -> None:
    assert schedule.check(bad) is not None


def test_good_schedule() -> None:
    assert schedule.check("*/15 2-5 * * 1-5") is None
