"""AlertService on a real (SQLite) database with a local SMTP server and webhook receiver,
without a daemon: settings, sending, dedupe through the database, capacity checks, failures.
Needs no root."""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alert_receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    SmtpReceiver,
    WebhookReceiver,
    self_signed,
    server_tls,
    wait_until,
)

from speicher.db import Database
from speicher.errors import Conflict, InvalidInput, OperationFailed, SpeicherError
from speicher.events import EventService
from speicher.events import channels as channels_module
from speicher.events.alerts import AlertService
from speicher.events.models import AlertSettingsUpdate
from speicher.jobs import JobService


@dataclass
class World:
    db: Database
    events: EventService
    alerts: AlertService


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    db.migrate()
    events = EventService(db)
    alerts = AlertService(db, events, server="nas-test")
    try:
        yield World(db, events, alerts)
    finally:
        assert alerts.flush(30)
        db.close()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def configure(w: World, smtp: SmtpReceiver, webhook: WebhookReceiver, **more: object) -> None:
    w.alerts.update_settings(
        AlertSettingsUpdate.model_validate(
            {
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "smtp_starttls": False,
                "smtp_username": SMTP_USER,
                "smtp_password": SMTP_PASSWORD,
                "mail_from": "nas@example.com",
                "mail_to": ["admin@example.com", "ops@example.com"],
                "webhook_url": webhook.url,
                **more,
            }
        )
    )


def kinds(webhook: WebhookReceiver) -> list[tuple[str, str]]:
    return [(p["kind"], p["state"]) for p in webhook.posts]


def test_settings_keep_the_password_to_themselves(world: World) -> None:
    empty = world.alerts.get_settings()
    assert empty.channels == [] and empty.min_level == "warning" and not empty.smtp_password_set
    info = world.alerts.update_settings(
        AlertSettingsUpdate(
            smtp_host="mail.example.com",
            smtp_username="nas",
            smtp_password="pw-1",
            mail_from="nas@example.com",
            mail_to=["a@example.com"],
        )
    )
    assert info.smtp_password_set and "smtp_password" not in info.model_dump()
    assert info.channels == ["email"] and info.smtp_port == 587 and info.smtp_starttls
    # left out stays; an empty password removes it
    info = world.alerts.update_settings(AlertSettingsUpdate(min_level="error"))
    assert info.smtp_password_set and info.smtp_host == "mail.example.com"
    info = world.alerts.update_settings(AlertSettingsUpdate(smtp_password=""))
    assert not info.smtp_password_set
    assert [e.kind for e in world.events.list(kind="alert.")] == ["alert.settings"] * 3


def test_settings_are_checked_all_at_once(world: World) -> None:
    with pytest.raises(InvalidInput) as caught:
        world.alerts.update_settings(
            AlertSettingsUpdate(
                smtp_host="bad host",
                mail_from="nobody",
                mail_to=["ok@example.com", "not-an-address"],
                webhook_url="ftp://example.com/hook",
            )
        )
    assert {p.field for p in caught.value.problems} == {
        "smtp_host",
        "mail_from",
        "mail_to.1",
        "webhook_url",
    }
    # e-mail needs a sender and a recipient; nothing is stored when it is refused
    with pytest.raises(InvalidInput) as caught:
        world.alerts.update_settings(AlertSettingsUpdate(smtp_host="mail.example.com"))
    assert {p.field for p in caught.value.problems} == {"mail_from", "mail_to"}
    assert world.alerts.get_settings().smtp_host == ""


def test_test_message_reaches_both_channels(
    world: World, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    with pytest.raises(Conflict, match="no alert channel"):
        world.alerts.test()
    configure(world, smtp, webhook)
    result = world.alerts.test()
    assert result.email_to == ["admin@example.com", "ops@example.com"]
    assert result.webhook_url == webhook.url
    [mail] = smtp.mails
    assert mail.login == SMTP_USER and not mail.tls
    assert mail.recipients == ["admin@example.com", "ops@example.com"]
    assert mail.subject == "[Speicher nas-test] Test message from Speicher on nas-test"
    assert "warning and above" in mail.body
    [post] = webhook.posts
    assert (post["kind"], post["state"], post["server"]) == ("alert.test", "test", "nas-test")


def test_test_message_failures_name_the_server_answer(
    world: World, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    configure(world, smtp, webhook, smtp_password="wrong")
    webhook.status = 503
    with pytest.raises(OperationFailed) as caught:
        world.alerts.test()
    assert "535" in caught.value.message  # SMTP: authentication credentials invalid
    assert "answered 503" in caught.value.message
    # one channel working, one not: still an error, which says what did arrive
    configure(world, smtp, webhook)
    with pytest.raises(OperationFailed) as caught:
        world.alerts.test()
    assert "answered 503" in caught.value.message
    assert "test mail went to admin@example.com" in caught.value.message


def test_a_condition_is_sent_once_and_resolved(
    world: World, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    configure(world, smtp, webhook)
    record = world.events.record
    record("warning", "pool.degraded", "tank", "pool tank is degraded: a disk is missing")
    record("info", "pool.disk-added", "tank", "disk d3 added to tank")  # below warning
    record("warning", "pool.degraded", "tank", "pool tank is degraded: a disk is missing")
    assert world.alerts.flush(30)
    assert kinds(webhook) == [("pool.degraded", "firing")]
    assert [c.key for c in world.alerts.active()] == ["pool.degraded:tank"]
    # a new service (the daemon restarted) remembers it through the database
    again = AlertService(world.db, world.events, server="nas-test")
    try:
        record("warning", "pool.degraded", "tank", "pool tank is degraded: a disk is missing")
        record("info", "pool.ok", "tank", "pool tank is healthy again")
        assert again.flush(30) and world.alerts.flush(30)
    finally:
        world.events._listeners.remove(again.notify)
    assert kinds(webhook) == [("pool.degraded", "firing"), ("pool.ok", "resolved")]
    resolved = webhook.posts[1]
    assert resolved["condition"] == "pool.degraded:tank"
    assert resolved["message"] == "pool tank is healthy again"
    assert world.alerts.active() == []
    assert smtp.subjects() == [
        "[Speicher nas-test] WARNING: pool tank is degraded: a disk is missing",
        "[Speicher nas-test] RESOLVED: pool tank is healthy again (pool.degraded:tank)",
    ]
    assert smtp.mails[0].message["From"] == "nas@example.com"


@dataclass
class FakePool:
    name: str
    used: int
    size: int = 1000
    state: str = "ready"
    health: str = "ok"


def test_capacity_thresholds(world: World, smtp: SmtpReceiver, webhook: WebhookReceiver) -> None:
    configure(world, smtp, webhook)
    check = world.alerts.check_capacity
    for used in (500, 810, 820, 790):  # 79 % is within 2 points of 80 %: still warning
        check([FakePool("tank", used), FakePool("creating", 999, state="creating")])
    check([FakePool("tank", 960), FakePool("gone", 0, size=0, health="unavailable")])
    check([FakePool("tank", 940)])
    check([FakePool("tank", 100)])
    check([FakePool("tank", 100)])
    assert world.alerts.flush(30)
    events = [(e.level, e.message) for e in reversed(world.events.list(kind="pool.capacity"))]
    assert events == [
        ("warning", "pool tank is 81 % full (more than 80 %)"),
        ("error", "pool tank is 96 % full (more than 95 %)"),
        ("info", "pool tank is 10 % full, below 80 % again"),
    ]
    # 94 % stays "error" (2 points of hysteresis); the drop to 10 % resolves both levels
    assert [(p["level"], p["state"], p["condition"]) for p in webhook.posts] == [
        ("warning", "firing", "pool.capacity.80:tank"),
        ("error", "firing", "pool.capacity.95:tank"),
        ("info", "resolved", "pool.capacity.80:tank"),
        ("info", "resolved", "pool.capacity.95:tank"),
    ]


def test_a_pool_healthy_after_a_restart_ends_its_condition(
    world: World, webhook: WebhookReceiver
) -> None:
    world.alerts.update_settings(AlertSettingsUpdate(webhook_url=webhook.url))
    world.events.record("warning", "pool.degraded", "tank", "pool tank is degraded")
    world.alerts.check_capacity([FakePool("tank", 10, health="degraded")])
    assert [c.key for c in world.alerts.active()] == ["pool.degraded:tank"]
    world.alerts.check_capacity([FakePool("tank", 10)])
    assert world.alerts.active() == []
    assert world.alerts.flush(30)
    assert kinds(webhook) == [("pool.degraded", "firing"), ("pool.ok", "resolved")]


def test_sending_never_blocks_or_breaks_the_recording(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channels_module, "TIMEOUT", 1.0)
    with SmtpReceiver() as smtp:  # the address of a mail server that is gone
        port = smtp.port
    # a server that accepts connections and never says a word
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        world.alerts.update_settings(
            AlertSettingsUpdate(
                smtp_host="127.0.0.1",
                smtp_port=silent.getsockname()[1],
                smtp_starttls=False,
                mail_from="nas@example.com",
                mail_to=["admin@example.com"],
                webhook_url=f"http://127.0.0.1:{port}/nothing-listens",
            )
        )
        started = time.monotonic()
        world.events.record("error", "job.failed", "tank", "job 1 (pool.replace tank) failed")
        world.events.record("error", "job.failed", "tank", "job 2 (pool.replace tank) failed")
        assert time.monotonic() - started < 0.5
        assert world.alerts.flush(30)
    failures = [e.message for e in reversed(world.events.list(kind="alert.failed"))]
    assert len(failures) == 4, failures
    assert "alert mail through 127.0.0.1 failed:" in failures[0]
    assert "timed out" in failures[0]
    assert "(message: [Speicher nas-test] ERROR: job 1" in failures[0]
    assert "/nothing-listens failed: [Errno 111] Connection refused" in failures[1]
    assert world.alerts.active() == []  # alert.failed itself is never sent, no loop


def test_starttls_verifies_the_server_certificate(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    with SmtpReceiver(tls=server_tls(cert, key)) as smtp:
        world.alerts.update_settings(
            AlertSettingsUpdate(
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_starttls=True,
                smtp_username=SMTP_USER,
                smtp_password=SMTP_PASSWORD,
                mail_from="nas@example.com",
                mail_to=["admin@example.com"],
            )
        )
        with pytest.raises(OperationFailed, match="CERTIFICATE_VERIFY_FAILED"):
            world.alerts.test()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust it, as an admin's CA would be
        world.alerts.test()
        [mail] = smtp.mails
        assert mail.tls and mail.login == SMTP_USER
        # without STARTTLS this server refuses the login
        world.alerts.update_settings(AlertSettingsUpdate(smtp_starttls=False))
        with pytest.raises(OperationFailed, match="AUTH extension not supported"):
            world.alerts.test()


def test_failed_jobs_are_events_and_alerts(world: World, webhook: WebhookReceiver) -> None:
    world.alerts.update_settings(AlertSettingsUpdate(webhook_url=webhook.url))
    jobs = JobService(world.db, world.events)

    def broken(_progress: object) -> str:
        raise SpeicherError("the disk went away")

    job = jobs.start("pool.replace", "tank", broken)
    assert jobs.wait(job.id, 30).state == "failed"
    assert world.alerts.flush(30)
    wait_until("the webhook", lambda: len(webhook.posts) == 1)
    [post] = webhook.posts
    assert (post["kind"], post["level"], post["subject"]) == ("job.failed", "error", "tank")
    assert post["message"] == f"job {job.id} (pool.replace tank) failed: the disk went away"


def test_interrupted_jobs_are_failed_jobs(world: World) -> None:
    from speicher.db import Job

    with world.db.session() as s:
        s.add(Job(kind="pool.create", target="tank", state="running", message="creating"))
    assert JobService(world.db, world.events).fail_interrupted() == 1
    [e] = world.events.list(kind="job.failed")
    assert e.subject == "tank" and "interrupted" in e.message


def test_conditions_track_time(world: World) -> None:
    world.events.record("error", "disk.missing", "d2", "virtual disk d2: file is missing")
    [c] = world.alerts.active()
    assert (c.kind, c.subject, c.last_sent_at) == ("disk.missing", "d2", None)  # no channel
    assert dt.datetime.now(dt.UTC) - c.since < dt.timedelta(minutes=1)
