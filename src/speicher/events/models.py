from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from speicher.validation import Request


class EventInfo(BaseModel):
    """One entry of the event log."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Sequence number; higher is newer.")
    time: dt.datetime = Field(description="When it happened (UTC).")
    level: str = Field(description="`info`, `warning` or `error`.")
    kind: str = Field(description="What happened, e.g. `pool.degraded`, `daemon.start`.")
    subject: str = Field(description="What it happened to, e.g. a pool's name.")
    message: str = Field(description="A sentence for people.")


AlertLevel = Literal["info", "warning", "error", "critical"]


class AlertSettingsInfo(BaseModel):
    """Where alerts go. The SMTP password is never shown, only whether one is set."""

    smtp_host: str = Field(description="Mail server to send through; empty: no e-mail.")
    smtp_port: int = Field(description="Its port (587 for submission with STARTTLS, 25).")
    smtp_starttls: bool = Field(
        description="Upgrade the connection with STARTTLS (the server's certificate is verified)."
    )
    smtp_username: str = Field(description="User name to log in with; empty: no login.")
    smtp_password_set: bool = Field(description="Whether an SMTP password is stored.")
    mail_from: str = Field(description="Sender address of alert mails.")
    mail_to: list[str] = Field(description="Recipients of alert mails.")
    webhook_url: str = Field(
        description="URL that gets every alert as a JSON POST; empty: no webhook."
    )
    min_level: AlertLevel = Field(description="Events of this level and above are sent.")
    channels: list[Literal["email", "webhook"]] = Field(
        description="The channels that are fully configured and send alerts."
    )


class AlertSettingsUpdate(Request):
    """Changes to the alert settings; fields left out (or null) stay as they are."""

    smtp_host: str | None = Field(None, description="Mail server; empty to turn e-mail off.")
    smtp_port: int | None = Field(None, ge=1, le=65535, description="Mail server port.")
    smtp_starttls: bool | None = Field(None, description="Use STARTTLS.")
    smtp_username: str | None = Field(None, description="SMTP user name; empty for no login.")
    smtp_password: str | None = Field(
        None, description="SMTP password (write-only: never shown again); empty to remove it."
    )
    mail_from: str | None = Field(None, description="Sender address.")
    mail_to: list[str] | None = Field(None, description="Recipients (replaces the list).")
    webhook_url: str | None = Field(
        None, description="http(s) URL for JSON POSTs; empty to turn the webhook off."
    )
    min_level: AlertLevel | None = Field(
        None, description="Lowest level sent: `info`, `warning` or `error`."
    )


class AlertConditionInfo(BaseModel):
    """A lasting condition that raised an alert and has not ended yet."""

    key: str = Field(description="The condition, `<kind>:<subject>`, e.g. `pool.degraded:tank`.")
    kind: str = Field(description="Its kind, e.g. `pool.degraded` or `pool.capacity.95`.")
    subject: str = Field(description="What it concerns, e.g. a pool's name.")
    since: dt.datetime = Field(description="When it began (UTC).")
    last_sent_at: dt.datetime | None = Field(
        description="When it was last sent; null if it was not (below the minimum level, or no "
        "channel configured)."
    )


class AlertTestResult(BaseModel):
    """What a test message reached."""

    email_to: list[str] = Field(description="Recipients the test mail was handed to; empty: none.")
    webhook_url: str = Field(description="The webhook that accepted the test; empty: none.")
    subject: str = Field(description="The test message's subject line.")
