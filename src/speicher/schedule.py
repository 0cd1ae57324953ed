"""Cron schedules (UTC) and when a scheduled task is due. Pure functions; the clock is passed
in, so tests can run a simulated year without sleeping.

A schedule must come within ``HORIZON_YEARS``: cron happily parses ``0 0 30 2 *`` (30
February), which never comes, and croniter then fails every time it is asked for a time. Such
an expression is refused when it is saved; one that is in the database anyway (saved before
this rule, or edited by hand) raises ``Unschedulable``, which the schedulers turn into an event
for that one item while the others run on."""

from __future__ import annotations

import datetime as dt

from croniter import CroniterError, croniter

HORIZON_YEARS = 8  # a schedule must fire within this long: 29 February can be 8 years apart


class Unschedulable(ValueError):
    """A stored schedule that cannot be evaluated; its text says why, for people."""


def check(schedule: str, now: dt.datetime | None = None) -> str | None:
    """Why ``schedule`` is not a cron expression we accept, or None."""
    if len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        return "must be a cron expression of five fields, e.g. '0 * * * *' (hourly)"
    try:
        following(schedule, now or dt.datetime.now(dt.UTC))
    except Unschedulable as exc:
        return str(exc)
    return None


def _iterator(schedule: str, start: dt.datetime) -> croniter:
    try:
        return croniter(schedule, start, max_years_between_matches=HORIZON_YEARS)
    except (CroniterError, ValueError, KeyError, TypeError) as exc:
        raise Unschedulable(f"is not a valid cron expression ({exc})") from None


def _never() -> Unschedulable:
    return Unschedulable(
        f"never comes: no time within {HORIZON_YEARS} years matches it (a day that does not "
        "exist in that month, like 30 February?)"
    )


def previous(schedule: str, now: dt.datetime) -> dt.datetime:
    """The latest scheduled time at or before ``now``."""
    it = _iterator(schedule, now + dt.timedelta(seconds=1))
    try:
        when: dt.datetime = it.get_prev(dt.datetime)
    except (CroniterError, ValueError, KeyError, TypeError):
        raise _never() from None
    return when


def following(schedule: str, now: dt.datetime) -> dt.datetime:
    """The first scheduled time after ``now``."""
    it = _iterator(schedule, now)
    try:
        when: dt.datetime = it.get_next(dt.datetime)
    except (CroniterError, ValueError, KeyError, TypeError):
        raise _never() from None
    return when


def due(schedule: str, last_run: dt.datetime | None, since: dt.datetime, now: dt.datetime) -> bool:
    """Whether a task should run now: a scheduled time has passed since it last ran (or since
    ``since``, when it never ran). However many times were missed while the daemon was down,
    this says "run" once; after that run, ``last_run`` is now and it waits for the next time.
    Raises ``Unschedulable`` for a schedule that cannot be evaluated.
    """
    return previous(schedule, now) > (last_run or since)


MAX_BACKOFF = dt.timedelta(hours=1)


def backoff(failures: int) -> dt.timedelta:
    """How long after the n-th failure in a row a task tries again: 1, 2, 4 ... minutes, at
    most an hour (before its next scheduled time, if that comes first)."""
    return min(MAX_BACKOFF, dt.timedelta(minutes=2 ** min(failures - 1, 10)))


def next_try(
    schedule: str, now: dt.datetime, failures: int, last_run: dt.datetime | None
) -> dt.datetime | None:
    """When a task with retries runs next: its schedule's next time, or sooner its retry
    after ``failures`` failures in a row (None: it has no next time)."""
    try:
        upcoming: dt.datetime | None = following(schedule, now)
    except Unschedulable:
        upcoming = None
    if failures and last_run is not None:
        retry = last_run + backoff(failures)
        upcoming = min(upcoming, retry) if upcoming else retry
    return upcoming


def due_or_retry(
    schedule: str,
    last_run: dt.datetime | None,
    since: dt.datetime,
    failures: int,
    now: dt.datetime,
) -> bool:
    """Whether a task with retries should run now: :func:`due`, or its back-off after
    ``failures`` failures in a row has passed; never for a schedule that cannot run."""
    try:
        scheduled = due(schedule, last_run, since, now)
    except Unschedulable:
        return False
    return scheduled or bool(
        failures and last_run is not None and now >= last_run + backoff(failures)
    )
