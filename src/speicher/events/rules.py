"""Which events start and end alert conditions, and whether to send: pure functions and
classes, tested without a clock or a mail server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace

from speicher.events.models import (
    EventInfo,
)

LEVELS = {"info": 0, "warning": 1, "error": 2, "critical": 3}
REPEAT = dt.timedelta(hours=24)  # a lasting condition is sent again at most this often
ONCE_WINDOW = dt.timedelta(hours=1)  # the very same one-off event is not sent twice in this
QUEUE_SIZE = 1000

# -- which events start and end conditions -------------------------------------------------------

CAPACITY_WARNING = 80.0  # percent used: warning above, error above CAPACITY_ERROR
CAPACITY_ERROR = 95.0
CAPACITY_HYSTERESIS = 2.0  # cleared only this far below a threshold, so it does not flap
CAPACITY_80 = "pool.capacity.80"
CAPACITY_95 = "pool.capacity.95"

# an event of one of these kinds starts the condition `<kind>:<subject>`
CONDITIONS = frozenset(
    {
        "pool.degraded",
        "pool.unavailable",
        "disk.missing",
        "disk.errors",
        "disk.failing",
        "policy.failed",
        "scrub.failed",  # a scheduled scrub could not start; it is tried again
        "ransomware.detected",  # subject: the user; until the incident is resolved
    }
)

# an event of the kind on the left ends these conditions of the same subject
ENDS: dict[str, tuple[str, ...]] = {
    "pool.ok": ("pool.degraded", "pool.unavailable"),
    "pool.degraded": ("pool.unavailable",),  # mounted again, if with a disk missing
    "pool.destroyed": (
        "pool.degraded",
        "pool.unavailable",
        CAPACITY_80,
        CAPACITY_95,
        "scrub.failed",
    ),
    "disk.deleted": ("disk.missing", "disk.errors", "disk.failing"),
    "disk.ok": ("disk.errors", "disk.failing"),  # not recorded yet: no event says a disk is well
    "snapshot.created": ("policy.failed",),  # snapshots of the share work again
    "scrub.started": ("scrub.failed",),
    "ransomware.released": ("ransomware.detected",),
}


def condition_kind(event: EventInfo) -> str | None:
    """The kind of condition ``event`` starts, if any."""
    if event.kind == "pool.capacity":
        return {"warning": CAPACITY_80, "error": CAPACITY_95}.get(event.level)
    return event.kind if event.kind in CONDITIONS else None


def ended_kinds(event: EventInfo) -> tuple[str, ...]:
    """The kinds of condition (of the same subject) that ``event`` ends."""
    if event.kind == "pool.capacity":
        return {"info": (CAPACITY_80, CAPACITY_95), "warning": (CAPACITY_95,)}.get(event.level, ())
    return ENDS.get(event.kind, ())


def condition_keys(event: EventInfo) -> list[str]:
    """Every condition ``event`` may start or end."""
    kinds = [*ended_kinds(event)]
    started = condition_kind(event)
    if started:
        kinds.append(started)
    return [f"{kind}:{event.subject}" for kind in kinds]


def split_key(key: str) -> tuple[str, str]:
    kind, _, subject = key.partition(":")
    return kind, subject


def capacity_band(percent: float, before: str | None) -> str | None:
    """The level a pool's fill level calls for: ``warning`` above 80 %, ``error`` above 95 %,
    ``None`` below; a level once reached holds until usage is 2 points below its threshold."""
    if percent > CAPACITY_ERROR or (
        before == "error" and percent > CAPACITY_ERROR - CAPACITY_HYSTERESIS
    ):
        return "error"
    if percent > CAPACITY_WARNING or (
        before in ("warning", "error") and percent > CAPACITY_WARNING - CAPACITY_HYSTERESIS
    ):
        return "warning"
    return None


@dataclass(frozen=True)
class Condition:
    key: str
    active: bool
    since: dt.datetime
    last_sent_at: dt.datetime | None = None


@dataclass(frozen=True)
class Decision:
    """What to do about one event."""

    send: bool = False  # send the event itself
    condition: Condition | None = None  # the condition it started or repeated, as now
    reminder: bool = False  # it is a lasting condition's daily repeat
    resolved: tuple[Condition, ...] = ()  # conditions it ended whose alert was sent
    store: tuple[Condition, ...] = ()  # new states of conditions


class AlertRules:
    """The dedupe logic, without a clock or a database: the caller hands in the conditions the
    event concerns (:func:`condition_keys`), the time, and the minimum level (``None`` when no
    channel is configured, so nothing is sent), and stores what :meth:`decide` says."""

    def __init__(self, repeat: dt.timedelta = REPEAT, once: dt.timedelta = ONCE_WINDOW) -> None:
        self.repeat = repeat
        self.once = once
        self._recent: dict[tuple[str, str, str], dt.datetime] = {}  # one-off events sent

    def decide(
        self,
        event: EventInfo,
        conditions: Mapping[str, Condition],
        *,
        now: dt.datetime,
        min_level: str | None,
    ) -> Decision:
        wanted = min_level is not None and LEVELS.get(event.level, 0) >= LEVELS[min_level]
        store: list[Condition] = []
        resolved: list[Condition] = []
        for ended in ended_kinds(event):
            current = conditions.get(f"{ended}:{event.subject}")
            if current is not None and current.active:
                store.append(replace(current, active=False))
                if min_level is not None and current.last_sent_at is not None:
                    resolved.append(current)
        kind = condition_kind(event)
        if kind is None:
            send = wanted and self._fresh(event, now)
            return Decision(send=send, resolved=tuple(resolved), store=tuple(store))
        key = f"{kind}:{event.subject}"
        current = conditions.get(key)
        if current is None or not current.active:
            started = Condition(key, True, now, now if wanted else None)
            store.append(started)
            return Decision(wanted, started, False, tuple(resolved), tuple(store))
        due = current.last_sent_at is None or now - current.last_sent_at >= self.repeat
        if wanted and due:
            repeated = replace(current, last_sent_at=now)
            store.append(repeated)
            reminder = current.last_sent_at is not None
            return Decision(True, repeated, reminder, tuple(resolved), tuple(store))
        return Decision(False, current, False, tuple(resolved), tuple(store))

    def _fresh(self, event: EventInfo, now: dt.datetime) -> bool:
        """Whether this one-off event was not just sent (same kind, subject and message)."""
        self._recent = {k: t for k, t in self._recent.items() if now - t < self.once}
        key = (event.kind, event.subject, event.message)
        if key in self._recent:
            return False
        self._recent[key] = now
        return True


# -- messages ------------------------------------------------------------------------------------
