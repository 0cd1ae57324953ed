"""The alert dedupe rules, without a clock or a mail server: which events start and end
conditions, when an alert is sent, repeated and resolved, and the capacity thresholds."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from speicher.events import EventInfo
from speicher.events.channels import (
    firing_message,
    resolved_message,
    valid_email,
    valid_host,
    valid_webhook,
)
from speicher.events.rules import AlertRules, Condition, Decision, capacity_band, condition_keys

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
_ids = itertools.count(1)


def event(kind: str, subject: str = "tank", level: str = "warning", message: str = "") -> EventInfo:
    return EventInfo(
        id=next(_ids),
        time=T0,
        level=level,
        kind=kind,
        subject=subject,
        message=message or f"{kind} {subject}",
    )


class Book:
    """The caller's side of AlertRules: keeps what it says to store, like the service does."""

    def __init__(self, min_level: str | None = "warning") -> None:
        self.rules = AlertRules()
        self.conditions: dict[str, Condition] = {}
        self.min_level = min_level

    def feed(self, e: EventInfo, at: dt.datetime = T0) -> Decision:
        known = {k: self.conditions[k] for k in condition_keys(e) if k in self.conditions}
        decision = self.rules.decide(e, known, now=at, min_level=self.min_level)
        for c in decision.store:
            self.conditions[c.key] = c
        return decision

    def active(self) -> set[str]:
        return {k for k, c in self.conditions.items() if c.active}


def test_a_condition_is_sent_once_while_it_lasts() -> None:
    book = Book()
    first = book.feed(event("pool.degraded"))
    assert first.send and not first.reminder
    assert first.condition is not None and first.condition.key == "pool.degraded:tank"
    for minutes in (1, 2, 60, 23 * 60):
        again = book.feed(event("pool.degraded"), T0 + dt.timedelta(minutes=minutes))
        assert not again.send
    assert book.active() == {"pool.degraded:tank"}


def test_a_lasting_condition_is_repeated_at_most_once_a_day() -> None:
    book = Book()
    book.feed(event("pool.degraded"))
    later = book.feed(event("pool.degraded"), T0 + dt.timedelta(hours=24))
    assert later.send and later.reminder
    assert later.condition is not None and later.condition.since == T0
    assert not book.feed(event("pool.degraded"), T0 + dt.timedelta(hours=30)).send
    assert book.feed(event("pool.degraded"), T0 + dt.timedelta(hours=48)).send


def test_pool_ok_resolves_degraded_and_unavailable_of_that_pool_only() -> None:
    book = Book()
    book.feed(event("pool.degraded"))
    book.feed(event("pool.unavailable", level="error"))
    book.feed(event("pool.degraded", subject="other"))
    ok = book.feed(event("pool.ok", level="info"), T0 + dt.timedelta(hours=1))
    assert not ok.send  # info is below the minimum level; the resolved messages are not
    assert {c.key for c in ok.resolved} == {"pool.degraded:tank", "pool.unavailable:tank"}
    assert book.active() == {"pool.degraded:other"}
    # it may begin again, and is sent again
    assert book.feed(event("pool.degraded"), T0 + dt.timedelta(hours=2)).send


def test_a_condition_that_was_not_sent_is_not_resolved_by_message() -> None:
    book = Book(min_level="error")
    assert not book.feed(event("pool.degraded")).send  # warning < error
    ok = book.feed(event("pool.ok", level="info"))
    assert ok.resolved == ()
    assert book.active() == set()


def test_without_a_channel_conditions_are_kept_but_nothing_is_sent() -> None:
    book = Book(min_level=None)
    assert not book.feed(event("pool.degraded")).send
    assert book.conditions["pool.degraded:tank"].last_sent_at is None
    # a channel is configured later: the next repeat is sent, as a first alert
    book.min_level = "warning"
    later = book.feed(event("pool.degraded"), T0 + dt.timedelta(minutes=5))
    assert later.send and not later.reminder


def test_a_degraded_mount_ends_unavailable() -> None:
    book = Book()
    book.feed(event("pool.unavailable", level="error"))
    back = book.feed(event("pool.degraded"))
    assert [c.key for c in back.resolved] == ["pool.unavailable:tank"]
    assert back.send
    assert book.active() == {"pool.degraded:tank"}


def test_one_off_events_are_sent_each_time_but_not_the_same_one_twice_an_hour() -> None:
    book = Book()
    assert book.feed(event("job.failed", level="error", message="job 1 failed")).send
    assert book.feed(event("job.failed", level="error", message="job 2 failed")).send
    crash = event("smb.restarted", subject="smbd", message="smbd exited (code 1)")
    assert book.feed(crash).send
    for seconds in (30, 60, 3000):
        assert not book.feed(crash, T0 + dt.timedelta(seconds=seconds)).send
    assert book.feed(crash, T0 + dt.timedelta(hours=1, seconds=1)).send
    assert book.active() == set()  # one-off events are no conditions


@pytest.mark.parametrize(
    ("min_level", "sent"),
    [
        ("info", {"info", "warning", "error"}),
        ("warning", {"warning", "error"}),
        ("error", {"error"}),
    ],
)
def test_minimum_level(min_level: str, sent: set[str]) -> None:
    book = Book(min_level)
    got = {
        level
        for level in ("info", "warning", "error")
        if book.feed(event("daemon.start", "speicher", level, f"start {level}")).send
    }
    assert got == sent


def test_policy_failure_lasts_until_the_share_gets_a_snapshot() -> None:
    book = Book()
    assert book.feed(event("policy.failed", "projects", "error")).send
    assert not book.feed(event("policy.failed", "projects", "error")).send
    done = book.feed(event("snapshot.created", "projects", "info"))
    assert [c.key for c in done.resolved] == ["policy.failed:projects"]


def test_a_scheduled_scrub_that_cannot_start_is_a_condition_until_one_starts() -> None:
    book = Book()
    assert book.feed(event("scrub.failed", level="error")).send
    assert not book.feed(event("scrub.failed", level="error"), T0 + dt.timedelta(hours=2)).send
    started = book.feed(event("scrub.started", level="info"))
    assert [c.key for c in started.resolved] == ["scrub.failed:tank"]


def test_scrub_findings_are_sent_for_every_scrub() -> None:
    book = Book()
    assert not book.feed(event("scrub.finished", level="info")).send
    assert book.feed(event("scrub.errors", message="scrub found 3 errors")).send
    later = T0 + dt.timedelta(days=30)
    assert book.feed(event("scrub.errors", message="scrub found 3 errors"), later).send
    assert book.active() == set()


def test_disk_conditions_end_when_the_disk_is_deleted() -> None:
    book = Book()
    book.feed(event("disk.missing", "d2", "error"))
    book.feed(event("disk.errors", "d2", "warning"))
    gone = book.feed(event("disk.deleted", "d2", "info"))
    assert {c.key for c in gone.resolved} == {"disk.missing:d2", "disk.errors:d2"}


def test_capacity_levels_are_conditions_of_their_own() -> None:
    book = Book()
    warn = book.feed(event("pool.capacity", level="warning"))
    assert warn.send and book.active() == {"pool.capacity.80:tank"}
    full = book.feed(event("pool.capacity", level="error"))
    assert full.send  # a new, higher threshold is a new alert
    assert book.active() == {"pool.capacity.80:tank", "pool.capacity.95:tank"}
    down = book.feed(event("pool.capacity", level="warning"))
    assert not down.send  # still above 80 %: that alert was sent already
    assert [c.key for c in down.resolved] == ["pool.capacity.95:tank"]
    clear = book.feed(event("pool.capacity", level="info"))
    assert [c.key for c in clear.resolved] == ["pool.capacity.80:tank"]
    assert book.active() == set()


def test_destroying_a_pool_ends_its_conditions() -> None:
    book = Book()
    book.feed(event("pool.degraded"))
    book.feed(event("pool.capacity", level="error"))
    gone = book.feed(event("pool.destroyed", level="info"))
    assert {c.key for c in gone.resolved} == {"pool.degraded:tank", "pool.capacity.95:tank"}
    assert book.active() == set()


@pytest.mark.parametrize(
    ("percent", "before", "band"),
    [
        (50, None, None),
        (80, None, None),
        (80.5, None, "warning"),
        (79, "warning", "warning"),  # not cleared until 2 points below
        (77.9, "warning", None),
        (95.1, "warning", "error"),
        (94, "error", "error"),
        (92.9, "error", "warning"),
        (50, "error", None),
        (99, None, "error"),
    ],
)
def test_capacity_band(percent: float, before: str | None, band: str | None) -> None:
    assert capacity_band(percent, before) == band


def test_messages_name_the_state_condition_and_server() -> None:
    e = event("pool.degraded", message="pool tank is degraded: a disk is missing or failing")
    c = Condition("pool.degraded:tank", True, T0, T0)
    firing = firing_message(e, "nas1", c)
    assert firing.subject == (
        "[Speicher nas1] WARNING: pool tank is degraded: a disk is missing or failing"
    )
    assert "pool.degraded:tank" in firing.body and "2026-03-01 12:00:00 UTC" in firing.body
    assert firing.payload["state"] == "firing"
    assert firing.payload["condition"] == "pool.degraded:tank"
    assert firing.payload["server"] == "nas1"
    assert {"id", "time", "level", "kind", "subject", "message"} <= firing.payload.keys()
    reminder = firing_message(e, "nas1", c, reminder=True)
    assert "REMINDER WARNING" in reminder.subject and "once a day" in reminder.body
    ok = event("pool.ok", level="info", message="pool tank is healthy again")
    resolved = resolved_message(c, ok, "nas1")
    assert resolved.subject.startswith("[Speicher nas1] RESOLVED: pool tank is healthy again")
    assert resolved.payload["state"] == "resolved"
    assert resolved.payload["kind"] == "pool.ok"
    assert resolved.payload["condition"] == "pool.degraded:tank"


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("mail.example.com", True),
        ("localhost", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("bad host", False),
        ("-x.example", False),
        ("a..b", False),
    ],
)
def test_valid_host(host: str, ok: bool) -> None:
    assert valid_host(host) is ok


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("admin@example.com", True),
        ("root@localhost", True),
        ("first.last+nas@mail.example.org", True),
        ("no-at-sign", False),
        ("a@b@c", False),
        ("Name <a@example.com>", False),
        ("a@example.com, b@example.com", False),
    ],
)
def test_valid_email(address: str, ok: bool) -> None:
    assert valid_email(address) is ok


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.example.com/T000/abc", True),
        ("http://127.0.0.1:9000/hook", True),
        ("ftp://example.com/x", False),
        ("https://", False),
        ("example.com/hook", False),
        ("http://example.com:99999/", False),
    ],
)
def test_valid_webhook(url: str, ok: bool) -> None:
    assert valid_webhook(url) is ok
