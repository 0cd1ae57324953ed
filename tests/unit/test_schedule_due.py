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


@pytest.mark.parametrize("never", ["0 0 30 2 *", "0 0 31 2 *", "0 0 31 4 *", "15 3 31 11 *"])
def test_schedules_that_never_come_are_refused(never: str) -> None:
    reason = schedule.check(never, now=T)
    assert reason is not None and "never comes" in reason


def test_a_leap_day_is_a_schedule_even_across_2100() -> None:
    # 2100 is no leap year: from March 2097 the next 29 February is 2104
    assert schedule.check("0 0 29 2 *", now=dt.datetime(2097, 3, 1, tzinfo=dt.UTC)) is None
    assert schedule.check("0 0 30 2 1", now=T) is None  # cron: day 30 *or* a Monday


@pytest.mark.parametrize("stored", ["0 0 30 2 *", "every hour", ""])
def test_a_stored_schedule_that_cannot_be_evaluated_raises_one_error(stored: str) -> None:
    """What the schedulers catch per item, so one bad row stops nothing else."""
    with pytest.raises(schedule.Unschedulable):
        schedule.due(stored, None, T, T)
    with pytest.raises(schedule.Unschedulable):
        schedule.following(stored, T)


def test_a_failed_task_is_retried_with_back_off_before_its_next_time() -> None:
    hourly, ran = "0 * * * *", dt.datetime(2026, 5, 1, 10, 0, 30, tzinfo=dt.UTC)
    created = ran - dt.timedelta(days=1)
    assert not schedule.due_or_retry(hourly, ran, created, 0, ran + dt.timedelta(minutes=5))
    # the third failure in a row waits 4 minutes, then tries again, long before 11:00
    assert not schedule.due_or_retry(hourly, ran, created, 3, ran + dt.timedelta(minutes=3))
    assert schedule.due_or_retry(hourly, ran, created, 3, ran + dt.timedelta(minutes=4))
    assert schedule.next_try(hourly, ran, 3, ran) == ran + dt.timedelta(minutes=4)
    assert schedule.next_try(hourly, ran, 0, ran) == dt.datetime(2026, 5, 1, 11, 0, tzinfo=dt.UTC)
    # however many failures: at most an hour, and never later than the schedule's time
    assert schedule.next_try(hourly, ran, 30, ran) == dt.datetime(2026, 5, 1, 11, 0, tzinfo=dt.UTC)
    assert schedule.next_try("0 0 1 1 *", ran, 30, ran) == ran + dt.timedelta(hours=1)
    assert schedule.due_or_retry("0 0 31 2 *", None, created, 0, ran) is False  # never runs
