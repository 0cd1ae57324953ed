"""Grandfather-father-son retention over a simulated year: the clock is a loop variable."""

from __future__ import annotations

import datetime as dt

from speicher import schedule
from speicher.protection.retention import Rules, keep

START = dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC)


def simulate(rules: Rules, cron: str, days: int) -> list[dt.datetime]:
    """Run a policy every time its schedule says for ``days`` days, pruning after each run
    as PolicyService.run does. Returns the snapshots left, oldest first."""
    snapshots: list[dt.datetime] = []
    now = START
    last_run = None
    end = START + dt.timedelta(days=days)
    while now < end:
        if schedule.due(cron, last_run, START - dt.timedelta(seconds=1), now):
            snapshots.append(now)
            last_run = now
            kept = keep(snapshots, rules)
            snapshots = sorted(kept)
        now += dt.timedelta(minutes=30)
    return snapshots


def test_a_year_of_hourly_snapshots() -> None:
    rules = Rules(last=24, daily=7, weekly=4, monthly=12)
    left = simulate(rules, "0 * * * *", 365)
    newest = left[-1]
    assert newest == dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC)
    # the last 24 hours, one an hour
    assert left[-24:] == [newest - dt.timedelta(hours=h) for h in reversed(range(24))]
    # the newest of each of the last 7 days (today's is the newest of all)
    days = {t.date() for t in left}
    assert {newest.date() - dt.timedelta(days=d) for d in range(7)} <= days
    # a snapshot in each of the last 4 ISO weeks and each of the 12 months
    assert len({tuple(t.isocalendar()[:2]) for t in left}) >= 4
    assert {t.month for t in left} == set(range(1, 13))
    # the monthly ones are each month's last snapshot
    january = [t for t in left if t.month == 1]
    assert january == [dt.datetime(2026, 1, 31, 23, 0, tzinfo=dt.UTC)]
    # nothing more than the rules ask for
    assert len(left) <= 24 + 7 + 4 + 12


def test_keep_last_only_and_nothing_older() -> None:
    times = [START + dt.timedelta(hours=h) for h in range(100)]
    assert keep(times, Rules(last=3)) == set(times[-3:])
    assert keep(times, Rules()) == set()


def test_each_rule_keeps_the_newest_of_its_period() -> None:
    times = [
        dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 20, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 2, 23, tzinfo=dt.UTC),
    ]
    assert keep(times, Rules(daily=2)) == {times[1], times[3]}
    assert keep(times, Rules(daily=1)) == {times[3]}
    assert keep(times, Rules(monthly=5)) == {times[3]}
    # the rules add up: a snapshot any rule keeps is kept
    assert keep(times, Rules(last=1, daily=2)) == {times[1], times[3]}
