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
import logging
import queue
import smtplib
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from sqlalchemy import select

from speicher.db import Database
from speicher.db.models import AlertSettings, AlertState, utcnow
from speicher.errors import Conflict, OperationFailed, Validator
from speicher.events.channels import (
    Channels,
    Message,
    check_settings,
    describe,
    firing_message,
    post_webhook,
    resolved_message,
    send_email,
    trial_message,
)
from speicher.events.models import (
    AlertConditionInfo,
    AlertSettingsInfo,
    AlertSettingsUpdate,
    AlertTestResult,
    EventInfo,
)
from speicher.events.rules import (
    CAPACITY_80,
    CAPACITY_95,
    CAPACITY_ERROR,
    CAPACITY_WARNING,
    ENDS,
    QUEUE_SIZE,
    AlertRules,
    Condition,
    Decision,
    capacity_band,
    condition_keys,
    split_key,
)
from speicher.events.service import EventService

log = logging.getLogger("speicher.alerts")


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
