"""Alert messages and the channels that carry them: e-mail over SMTP and a JSON webhook."""

from __future__ import annotations

import datetime as dt
import email.policy
import ipaddress
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlsplit

import httpx

from speicher.db.models import AlertSettings
from speicher.errors import Validator
from speicher.events.models import (
    AlertSettingsUpdate,
    EventInfo,
)
from speicher.events.rules import (
    LEVELS,
    Condition,
)

log = logging.getLogger("speicher.alerts")

TIMEOUT = 10.0  # seconds, for the mail server and the webhook


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
