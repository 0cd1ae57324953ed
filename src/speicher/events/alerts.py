"""Alerts: important events go out by e-mail and webhook, once per condition.

Every recorded event passes :meth:`AlertService.notify`. Some events start a lasting
*condition* (a degraded pool, a missing disk, a nearly full pool), ``<kind>:<subject>`` such as
``pool.degraded:tank``; a later event ends it (``pool.ok`` ends ``pool.degraded`` and
``pool.unavailable`` of the same pool). A condition is sent when it begins; while it lasts, a
repeat of its event (a restart records ``pool.degraded`` again) is sent at most once a day;
when it ends, a "resolved" message follows if its alert was sent. Other events at or above the
minimum level are sent every time, except that the very same event is not sent twice within an
hour (a crash loop is one alert, not sixty).

The decisions are pure (:class:`AlertRules`, :func:`capacity_band`, the message builders), so
they are tested without a clock or a mail server. :class:`AlertService` keeps the conditions in
``alert_states`` and sends from one background thread with 10-second timeouts, so a slow or
unreachable mail server never delays, let alone fails, the operation that recorded the event.
"""

from __future__ import annotations

import atexit
import datetime as dt
import email.policy
import ipaddress
import logging
import queue
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from speicher.db import Database
from speicher.db.models import AlertSettings, AlertState, utcnow
from speicher.errors import Conflict, OperationFailed, Validator
from speicher.events.models import (
    AlertConditionInfo,
    AlertSettingsInfo,
    AlertSettingsUpdate,
    AlertTestResult,
    EventInfo,
)
from speicher.events.service import EventService

log = logging.getLogger("speicher.alerts")

LEVELS = {"info": 0, "warning": 1, "error": 2}
REPEAT = dt.timedelta(hours=24)  # a lasting condition is sent again at most this often
ONCE_WINDOW = dt.timedelta(hours=1)  # the very same one-off event is not sent twice in this
TIMEOUT = 10.0  # seconds, for the mail server and the webhook
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


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    payload: dict[str, Any]


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _payload(
    event: EventInfo, state: str, server: str, condition: Condition | None
) -> dict[str, Any]:
    return {
        "id": event.id,
        "time": event.time.isoformat(),
        "level": event.level,
        "kind": event.kind,
        "subject": event.subject,
        "message": event.message,
        "state": state,
        "condition": condition.key if condition else None,
        "since": condition.since.isoformat() if condition else None,
        "server": server,
    }


def _facts(event: EventInfo, server: str) -> str:
    return (
        f"Level:    {event.level}\n"
        f"Event:    {event.kind}\n"
        f"Subject:  {event.subject}\n"
        f"Time:     {_time(event.time)}\n"
        f"Server:   {server}\n"
    )


_FOOTER = "\n-- \nSpeicher on {server}. 'speicher event list' shows the event log.\n"


def firing_message(
    event: EventInfo, server: str, condition: Condition | None = None, reminder: bool = False
) -> Message:
    """The alert for ``event`` (the start of ``condition``, or a one-off event)."""
    prefix = "REMINDER " if reminder else ""
    subject = f"[Speicher {server}] {prefix}{event.level.upper()}: {event.message}"
    body = f"{event.message}\n\n{_facts(event, server)}"
    if condition is not None:
        body += f"\nThis condition ({condition.key}) began {_time(condition.since)}. "
        if reminder:
            body += "It still lasts; Speicher repeats its alert at most once a day. "
        body += "A message follows when it ends.\n"
    body += _FOOTER.format(server=server)
    return Message(subject, body, _payload(event, "firing", server, condition))


def resolved_message(condition: Condition, event: EventInfo, server: str) -> Message:
    """The all-clear for ``condition``, ended by ``event``."""
    subject = f"[Speicher {server}] RESOLVED: {event.message} ({condition.key})"
    body = (
        f"Resolved: {condition.key}, which began {_time(condition.since)}.\n"
        f"{event.message}\n\n{_facts(event, server)}" + _FOOTER.format(server=server)
    )
    return Message(subject, body, _payload(event, "resolved", server, condition))


def trial_message(server: str, min_level: str, now: dt.datetime) -> Message:
    text = f"Test message from Speicher on {server}"
    body = f"{text}. Alerts of level {min_level} and above will arrive here.\n" + _FOOTER.format(
        server=server
    )
    payload = {
        "id": 0,
        "time": now.isoformat(),
        "level": "info",
        "kind": "alert.test",
        "subject": server,
        "message": text,
        "state": "test",
        "condition": None,
        "since": None,
        "server": server,
    }
    return Message(f"[Speicher {server}] {text}", body, payload)


# -- settings ------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def valid_email(address: str) -> bool:
    return len(address) <= 254 and _EMAIL.fullmatch(address) is not None


def valid_webhook(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in url


def check_settings(req: AlertSettingsUpdate, v: Validator) -> None:
    """Add every problem of ``req`` on its own to ``v``."""
    if req.smtp_host and not valid_host(req.smtp_host):
        v.add("smtp_host", f"'{req.smtp_host}' is not a host name or address")
    if req.smtp_port is not None and not 1 <= req.smtp_port <= 65535:
        v.add("smtp_port", "must be 1-65535")
    for name in ("smtp_username", "smtp_password"):
        value = getattr(req, name)
        if value is not None and len(value) > 255:
            v.add(name, "must be at most 255 characters")
    if req.mail_from and not valid_email(req.mail_from):
        v.add("mail_from", f"'{req.mail_from}' does not look like an e-mail address")
    for i, address in enumerate(req.mail_to or []):
        if not valid_email(address.strip()):
            v.add(f"mail_to.{i}", f"'{address}' does not look like an e-mail address")
    if req.webhook_url and not valid_webhook(req.webhook_url):
        v.add("webhook_url", "must be an http:// or https:// URL with a host")
    if req.min_level is not None and req.min_level not in LEVELS:
        v.add("min_level", "must be info, warning or error")


@dataclass(frozen=True)
class Channels:
    """A snapshot of the alert settings, handed to the sending thread."""

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    mail_from: str = ""
    mail_to: tuple[str, ...] = ()
    webhook_url: str = ""
    min_level: str = "warning"

    @property
    def email(self) -> bool:
        return bool(self.smtp_host and self.mail_from and self.mail_to)

    @property
    def webhook(self) -> bool:
        return bool(self.webhook_url)

    @property
    def any(self) -> bool:
        return self.email or self.webhook

    @classmethod
    def of(cls, row: AlertSettings | None) -> Channels:
        if row is None:
            return cls()
        return cls(
            smtp_host=row.smtp_host,
            smtp_port=row.smtp_port,
            smtp_starttls=row.smtp_starttls,
            smtp_username=row.smtp_username,
            smtp_password=row.smtp_password,
            mail_from=row.mail_from,
            mail_to=tuple(a.strip() for a in row.mail_to.split(",") if a.strip()),
            webhook_url=row.webhook_url,
            min_level=row.min_level,
        )


def send_email(channels: Channels, message: Message, server: str) -> None:
    """Hand ``message`` to the mail server; raises ``smtplib.SMTPException`` or ``OSError``."""
    # subjects unfolded: Python folds a long one onto its own line, which some clients show
    mail = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    mail["From"] = channels.mail_from
    mail["To"] = ", ".join(channels.mail_to)
    subject = " ".join(message.subject.split())
    mail["Subject"] = subject if len(subject) <= 200 else subject[:199] + "…"
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=server)
    mail["X-Speicher-Kind"] = str(message.payload["kind"])
    mail["X-Speicher-State"] = str(message.payload["state"])
    mail.set_content(message.body)
    with smtplib.SMTP(channels.smtp_host, channels.smtp_port, timeout=TIMEOUT) as smtp:
        if channels.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if channels.smtp_username:
            smtp.login(channels.smtp_username, channels.smtp_password)
        smtp.send_message(mail, channels.mail_from, list(channels.mail_to))


def post_webhook(channels: Channels, message: Message) -> None:
    """POST ``message`` as JSON; raises ``httpx.HTTPError`` (also for a 4xx/5xx answer)."""
    response = httpx.post(
        channels.webhook_url,
        json=message.payload,
        timeout=TIMEOUT,
        headers={"user-agent": "speicher-alerts"},
    )
    response.raise_for_status()


def describe(exc: Exception) -> str:
    """An SMTP or HTTP error as one readable line."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        return f"{exc.smtp_code} {text}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{who}: {code} {text.decode(errors='replace')}"
            for who, (code, text) in exc.recipients.items()
        )
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the webhook answered {exc.response.status_code} {exc.response.reason_phrase}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timed out ({text})"
    return text


class PoolUsage(Protocol):
    """What :meth:`AlertService.check_capacity` needs of a pool (``PoolInfo`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def health(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def used(self) -> int: ...


@dataclass(frozen=True)
class _Delivery:
    channels: Channels
    message: Message


class AlertService:
    def __init__(self, db: Database, events: EventService, server: str | None = None) -> None:
        self.db = db
        self.events = events
        self.server = server or socket.gethostname()
        self.rules = AlertRules()
        self._lock = threading.Lock()  # one event's decide-and-store at a time
        self._queue: queue.Queue[_Delivery] = queue.Queue(QUEUE_SIZE)
        self._worker: threading.Thread | None = None
        events.listen(self.notify)

    # -- settings ------------------------------------------------------------------------------

    def _channels(self) -> Channels:
        with self.db.session() as s:
            return Channels.of(s.get(AlertSettings, 1))

    def get_settings(self) -> AlertSettingsInfo:
        c = self._channels()
        channels: list[Any] = [name for name in ("email", "webhook") if getattr(c, name)]
        return AlertSettingsInfo(
            smtp_host=c.smtp_host,
            smtp_port=c.smtp_port,
            smtp_starttls=c.smtp_starttls,
            smtp_username=c.smtp_username,
            smtp_password_set=bool(c.smtp_password),
            mail_from=c.mail_from,
            mail_to=list(c.mail_to),
            webhook_url=c.webhook_url,
            min_level=c.min_level,
            channels=channels,
        )

    def update_settings(self, req: AlertSettingsUpdate) -> AlertSettingsInfo:
        v = Validator()
        check_settings(req, v)
        v.check()
        with self.db.session() as s:
            row = s.get(AlertSettings, 1)
            if row is None:
                row = AlertSettings(id=1)
                s.add(row)
                s.flush()  # the column defaults
            for name, value in req.model_dump(exclude={"mail_to"}).items():
                if value is not None:
                    setattr(row, name, value)
            if req.mail_to is not None:
                row.mail_to = ",".join(a.strip() for a in req.mail_to)
            merged = Channels.of(row)
            if merged.smtp_host and not merged.mail_from:
                v.add("mail_from", "needed to send e-mail")
            if merged.smtp_host and not merged.mail_to:
                v.add("mail_to", "needed to send e-mail")
            v.check()  # rolls the change back
        self.events.record("info", "alert.settings", "alerts", "alert settings changed")
        return self.get_settings()

    # -- conditions ----------------------------------------------------------------------------

    def active(self) -> list[AlertConditionInfo]:
        """The conditions that began and have not ended, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(AlertState).where(AlertState.active.is_(True)).order_by(AlertState.since)
            )
            result = []
            for row in rows:
                kind, subject = split_key(row.key)
                result.append(
                    AlertConditionInfo(
                        key=row.key,
                        kind=kind,
                        subject=subject,
                        since=row.since,
                        last_sent_at=row.last_sent_at,
                    )
                )
            return result

    def notify(self, event: EventInfo) -> None:
        """Send ``event`` where the alert settings say, unless its condition already was.

        Called for every event, in the thread that recorded it: it only decides and queues.
        """
        if event.kind.startswith("alert."):
            return  # our own events (settings changed, a message failed) are never sent
        try:
            channels = self._channels()
            min_level = channels.min_level if channels.any else None
            with self._lock:
                decision = self._decide(event, min_level)
        except Exception:
            log.exception("alerts: cannot decide about %s %s", event.kind, event.subject)
            return
        messages = [resolved_message(c, event, self.server) for c in decision.resolved]
        if decision.send:
            messages.append(
                firing_message(event, self.server, decision.condition, decision.reminder)
            )
        for message in messages:
            self._enqueue(_Delivery(channels, message))

    def _decide(self, event: EventInfo, min_level: str | None) -> Decision:
        keys = condition_keys(event)
        with self.db.session() as s:
            rows = {
                row.key: row
                for row in s.scalars(select(AlertState).where(AlertState.key.in_(keys)))
            }
            known = {
                key: Condition(key, row.active, row.since, row.last_sent_at)
                for key, row in rows.items()
            }
            decision = self.rules.decide(event, known, now=utcnow(), min_level=min_level)
            for c in decision.store:
                row = rows.get(c.key)
                if row is None:
                    row = AlertState(key=c.key)
                    s.add(row)
                row.active, row.since, row.last_sent_at = c.active, c.since, c.last_sent_at
        return decision

    def check_capacity(self, pools: Iterable[PoolUsage]) -> None:
        """The monitor's look at the pools: record ``pool.capacity`` when a pool's fill level
        crosses 80 % or 95 % (up: warning or error; down, 2 points below: info). The level
        reached is kept as a condition, so a restart does not record it again.

        Also ends a pool's health condition whose end went unrecorded (a pool that came back
        whole while the daemon was stopped is ``ok`` from the start, with no ``pool.ok``)."""
        active = self._active_keys()
        for pool in pools:
            if pool.state != "ready":
                continue
            if pool.health == "ok" and any(
                f"{kind}:{pool.name}" in active for kind in ENDS["pool.ok"]
            ):
                self.events.record("info", "pool.ok", pool.name, f"pool {pool.name} is healthy")
            if pool.size <= 0:
                continue
            before = (
                "error"
                if f"{CAPACITY_95}:{pool.name}" in active
                else "warning"
                if f"{CAPACITY_80}:{pool.name}" in active
                else None
            )
            percent = pool.used * 100 / pool.size
            band = capacity_band(percent, before)
            if band == before:
                continue
            if band is None:
                text = f"pool {pool.name} is {percent:.0f} % full, below {CAPACITY_WARNING:.0f} %"
                self.events.record("info", "pool.capacity", pool.name, text + " again")
                continue
            threshold = CAPACITY_ERROR if band == "error" else CAPACITY_WARNING
            text = f"pool {pool.name} is {percent:.0f} % full (more than {threshold:.0f} %)"
            self.events.record(band, "pool.capacity", pool.name, text)

    def _active_keys(self) -> set[str]:
        with self.db.session() as s:
            return set(s.scalars(select(AlertState.key).where(AlertState.active.is_(True))))

    # -- sending -------------------------------------------------------------------------------

    def test(self) -> AlertTestResult:
        """Send a test message through every configured channel, now; raise
        :class:`OperationFailed` with the server's answer if one fails."""
        channels = self._channels()
        if not channels.any:
            raise Conflict(
                "no alert channel is configured: set an SMTP host, sender and recipient, "
                "or a webhook URL"
            )
        message = trial_message(self.server, channels.min_level, utcnow())
        result = AlertTestResult(email_to=[], webhook_url="", subject=message.subject)
        failures = []
        if channels.email:
            try:
                send_email(channels, message, self.server)
                result.email_to = list(channels.mail_to)
            except (smtplib.SMTPException, OSError) as exc:
                where = f"{channels.smtp_host}:{channels.smtp_port}"
                failures.append(f"e-mail through {where} failed: {describe(exc)}")
        if channels.webhook:
            try:
                post_webhook(channels, message)
                result.webhook_url = channels.webhook_url
            except httpx.HTTPError as exc:
                failures.append(f"webhook {channels.webhook_url} failed: {describe(exc)}")
        if failures:
            sent = []
            if result.email_to:
                sent.append(f"the test mail went to {', '.join(result.email_to)}")
            if result.webhook_url:
                sent.append("the webhook took the test")
            raise OperationFailed("; ".join(failures + sent), detail="; ".join(failures))
        return result

    def _enqueue(self, delivery: _Delivery) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="alerts", daemon=True)
                self._worker.start()
                atexit.register(self.flush, 15.0)  # e.g. the daemon.stop alert
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            log.error("alerts: %d messages wait already; dropped: %s", QUEUE_SIZE, delivery)

    def _work(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                self._deliver(delivery)
            except Exception:
                log.exception("alerts: sending failed")
            finally:
                self._queue.task_done()

    def _deliver(self, delivery: _Delivery) -> None:
        channels, message = delivery.channels, delivery.message
        if channels.email:
            try:
                send_email(channels, message, self.server)
            except (smtplib.SMTPException, OSError) as exc:
                self._failed(f"alert mail through {channels.smtp_host}", message, exc)
        if channels.webhook:
            try:
                post_webhook(channels, message)
            except httpx.HTTPError as exc:
                self._failed(f"alert webhook {channels.webhook_url}", message, exc)

    def _failed(self, what: str, message: Message, exc: Exception) -> None:
        text = f"{what} failed: {describe(exc)} (message: {message.subject})"
        self.events.record("warning", "alert.failed", str(message.payload["kind"]), text)

    def flush(self, timeout: float = 25.0) -> bool:
        """Wait until the queued messages are sent (or failed); False if time ran out."""
        with self._queue.all_tasks_done:
            return self._queue.all_tasks_done.wait_for(
                lambda: self._queue.unfinished_tasks == 0, timeout
            )
