"""Which snapshots a policy keeps: the grandfather-father-son rules. A pure function of the
snapshots' times, so a simulated year can be checked without a clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    last: int = 0  # the newest N, whatever their age
    hourly: int = 0  # the newest in each of the last N hours that have one
    daily: int = 0
    weekly: int = 0  # ISO weeks
    monthly: int = 0

    def keeps_anything(self) -> bool:
        return any((self.last, self.hourly, self.daily, self.weekly, self.monthly))


_PERIODS: list[tuple[str, Callable[[dt.datetime], tuple[int, ...]]]] = [
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar()[:2])),
    ("monthly", lambda t: (t.year, t.month)),
]


def keep(times: Iterable[dt.datetime], rules: Rules) -> set[dt.datetime]:
    """The times to keep. Each rule keeps the newest snapshot of each of its last N periods
    (as borg and restic prune do); a snapshot kept by any rule is kept."""
    newest_first = sorted(set(times), reverse=True)
    kept = set(newest_first[: rules.last])
    for name, period in _PERIODS:
        wanted = getattr(rules, name)
        seen: set[tuple[int, ...]] = set()
        for t in newest_first:
            if len(seen) >= wanted:
                break
            key = period(t)
            if key not in seen:
                seen.add(key)
                kept.add(t)
    return kept
