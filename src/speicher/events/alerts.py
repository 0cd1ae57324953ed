"""Alerts: important events go out by e-mail and webhook, once per condition."""

from __future__ import annotations

from speicher.db import Database
from speicher.events.models import EventInfo
from speicher.events.service import EventService


class AlertService:
    def __init__(self, db: Database, events: EventService) -> None:
        self.db = db
        self.events = events
        events.listen(self.notify)

    def notify(self, event: EventInfo) -> None:
        """Send ``event`` where the alert settings say, unless its condition already was."""
