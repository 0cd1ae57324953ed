"""Cron schedules (UTC) and when a scheduled task is due. Pure functions; the clock is passed
in, so tests can run a simulated year without sleeping."""

from __future__ import annotations

import datetime as dt

from croniter import croniter


def check(schedule: str) -> str | None:
    """Why ``schedule`` is not a cron expression we accept, or None."""
    if len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        return "must be a cron expression of five fields, e.g. '0 * * * *' (hourly)"
    return None


def previous(schedule: str, now: dt.datetime) -> dt.datetime:
    """The latest scheduled time at or before ``now``."""
    it = croniter(schedule, now + dt.timedelta(seconds=1))
    when: dt.datetime = it.get_prev(dt.datetime)
    return when


def following(schedule: str, now: dt.datetime) -> dt.datetime:
    """The first scheduled time after ``now``."""
    when: dt.datetime = croniter(schedule, now).get_next(dt.datetime)
    return when


def due(schedule: str, last_run: dt.datetime | None, since: dt.datetime, now: dt.datetime) -> bool:
    """Whether a task should run now: a scheduled time has passed since it last ran (or since
    ``since``, when it never ran). However many times were missed while the daemon was down,
    this says "run" once; after that run, ``last_run`` is now and it waits for the next time.
    """
    return previous(schedule, now) > (last_run or since)
