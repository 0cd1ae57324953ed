"""Alerts from a real daemon to a local SMTP server and a local webhook receiver: settings
through the CLI and the API, `speicher alert test`, and a degraded pool that is alerted once,
not again while it lasts (monitor rounds, a restart), and resolved when its disk is replaced."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from alert_receivers import SMTP_PASSWORD, SMTP_USER, SmtpReceiver, WebhookReceiver, wait_until

from scenario_data import pull_disk
from speicher_testing import Daemon

pytestmark = pytest.mark.system


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def configure(
    daemon: Daemon, smtp: SmtpReceiver, webhook: WebhookReceiver, min_level: str = "warning"
) -> dict[str, Any]:
    """Alert settings through the CLI, the password on standard input."""
    result = daemon.cli(
        "alert",
        "update",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        str(smtp.port),
        "--no-starttls",
        "--smtp-user",
        SMTP_USER,
        "--smtp-password-stdin",
        "--from",
        "nas@example.com",
        "--to",
        "admin@example.com",
        "--to",
        "ops@example.com",
        "--webhook",
        webhook.url,
        "--min-level",
        min_level,
        "--json",
        input=SMTP_PASSWORD + "\n",
    )
    settings: dict[str, Any] = json.loads(result.stdout)
    return settings


def test_settings_and_test_message(
    daemon: Daemon, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    empty = json.loads(daemon.cli("alert", "settings", "--json").stdout)
    assert empty["channels"] == [] and not empty["smtp_password_set"]
    nothing = daemon.cli("alert", "test", check=False)
    assert nothing.returncode == 2 and "no alert channel is configured" in nothing.stderr

    settings = configure(daemon, smtp, webhook)
    assert settings["channels"] == ["email", "webhook"]
    assert settings["smtp_password_set"] and "smtp_password" not in settings
    assert settings["mail_to"] == ["admin@example.com", "ops@example.com"]
    shown = daemon.cli("alert", "settings").stdout
    assert "email, webhook" in shown and f"127.0.0.1:{smtp.port}" in shown
    assert SMTP_PASSWORD not in shown
    assert SMTP_PASSWORD not in daemon.api.get("/alerts/settings").text

    # every problem of a request at once, each with its field
    bad = daemon.api.patch("/alerts/settings", json={"smtp_port": 0, "min_level": "loud"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"smtp_port", "min_level"}
    bad = daemon.api.patch(
        "/alerts/settings",
        json={"smtp_host": "no such host!", "mail_to": ["x"], "webhook_url": "ftp://h/x"},
    )
    assert bad.status_code == 422, bad.text
    assert {e["field"] for e in bad.json()["errors"]} == {"smtp_host", "mail_to.0", "webhook_url"}
    refused = daemon.cli("alert", "update", "--webhook", "gopher://x", check=False)
    assert refused.returncode == 2 and "webhook_url" in refused.stderr

    sent = daemon.cli("alert", "test")
    assert "test mail sent to admin@example.com, ops@example.com" in sent.stdout
    assert f"test message posted to {webhook.url}" in sent.stdout
    [mail] = smtp.mails
    assert mail.login == SMTP_USER and mail.sender == "nas@example.com"
    assert mail.recipients == ["admin@example.com", "ops@example.com"]
    assert "] Test message from Speicher on " in mail.subject
    assert "Alerts of level warning and above will arrive here." in mail.body
    [post] = webhook.posts
    assert (post["kind"], post["state"], post["level"]) == ("alert.test", "test", "info")
    assert post["server"] and post["server"] in mail.subject

    # a wrong password: the test fails with the mail server's answer, exit code 1
    daemon.cli("alert", "update", "--smtp-password-stdin", input="wrong\n")
    failed = daemon.cli("alert", "test", check=False)
    assert failed.returncode == 1
    assert "e-mail through 127.0.0.1" in failed.stderr and "535" in failed.stderr
    api = daemon.api.post("/alerts/test")
    assert api.status_code == 500 and "535" in api.json()["detail"]
    assert len(smtp.mails) == 1

    assert json.loads(daemon.cli("alert", "active", "--json").stdout) == []
    assert "no active alerts" in daemon.cli("alert", "active").stdout


def posts(webhook: WebhookReceiver, kind: str, state: str = "firing") -> list[dict[str, Any]]:
    return [p for p in webhook.posts if p["kind"] == kind and p["state"] == state]


def test_a_degraded_pool_is_alerted_once_and_resolved(
    fresh_daemon: Daemon, smtp: SmtpReceiver, webhook: WebhookReceiver
) -> None:
    daemon = fresh_daemon
    api = daemon.api
    configure(daemon, smtp, webhook, min_level="info")
    for name in ("d1", "d2"):
        assert api.post("/disks/virtual", json={"name": name, "size": "2G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": ["d1", "d2"]})
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"

    # daemon.start is sent at min_level info. (daemon.stop is not asserted: serve() is cut
    # short by a second SIGTERM while it stops smbd and never records it, a daemon issue.)
    pull_disk(daemon, "d2")
    daemon.start()
    wait_until("the daemon.start alert", lambda: len(posts(webhook, "daemon.start")) == 1)

    wait_until("the pool.degraded alert", lambda: len(posts(webhook, "pool.degraded")) == 1)
    [degraded] = posts(webhook, "pool.degraded")
    assert (degraded["level"], degraded["subject"]) == ("warning", "tank")
    assert degraded["condition"] == "pool.degraded:tank"
    wait_until("the disk.missing alert", lambda: len(posts(webhook, "disk.missing")) == 1)
    assert any("WARNING: pool tank is degraded" in s for s in smtp.subjects())

    # the monitor (every 2 s) sees it still degraded, and a restart records it again: no repeat
    time.sleep(5)
    daemon.stop()
    daemon.start()
    time.sleep(3)
    events = api.get("/events", params={"kind": "pool.degraded"}).json()
    assert len(events) == 2
    assert len(posts(webhook, "pool.degraded")) == 1
    assert len(posts(webhook, "disk.missing")) == 1
    assert sum("pool tank is degraded" in s for s in smtp.subjects()) == 1
    active = json.loads(daemon.cli("alert", "active", "--json").stdout)
    assert {a["key"] for a in active} == {"pool.degraded:tank", "disk.missing:d2"}
    assert "pool.degraded" in daemon.cli("alert", "active").stdout

    # replacing the missing disk ends it: one resolved message
    assert api.post("/disks/virtual", json={"name": "d3", "size": "2G"}).status_code == 201
    job = api.post("/pools/tank/replace", json={"old": "d2", "new": "d3"})
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    wait_until("the resolved alert", lambda: len(posts(webhook, "pool.ok", "resolved")) == 1)
    [resolved] = posts(webhook, "pool.ok", "resolved")
    assert resolved["condition"] == "pool.degraded:tank"
    assert resolved["message"] == "pool tank is healthy again"
    wait_until(
        "the resolved mail",
        lambda: any("RESOLVED: pool tank is healthy again" in s for s in smtp.subjects()),
    )
    active = json.loads(daemon.cli("alert", "active", "--json").stdout)
    assert {a["key"] for a in active} == {"disk.missing:d2"}  # until d2 is deleted
    time.sleep(3)
    assert len(posts(webhook, "pool.ok", "resolved")) == 1
    assert not any(p["kind"].startswith("alert.") for p in webhook.posts[1:])
