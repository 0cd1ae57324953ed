"""Recording and reading events."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from speicher.db import Database, Event
from speicher.events.models import EventInfo

log = logging.getLogger("speicher.events")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}  # fmt: skip


Listener = Callable[[EventInfo], None]


class EventService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with every event recorded from now on (the alerts do)."""
        self._listeners.append(listener)

    def record(self, level: str, kind: str, subject: str, message: str) -> EventInfo:
        """Store an event and write it to the daemon's log."""
        log.log(_LEVELS.get(level, logging.INFO), "%s %s: %s", kind, subject, message)
        with self.db.quiet_session() as s:  # an event changes no listing of pools or shares
            event = Event(level=level, kind=kind, subject=subject, message=message)
            s.add(event)
            s.flush()
            info = EventInfo.model_validate(event)
        for listener in self._listeners:
            try:
                listener(info)
            except Exception:
                log.exception("event listener failed for %s", kind)
        return info

    def list(self, limit: int = 100, kind: str | None = None) -> list[EventInfo]:
        """The newest ``limit`` events, newest first."""
        with self.db.session() as s:
            query = select(Event).order_by(Event.id.desc()).limit(limit)
            if kind:
                query = query.where(Event.kind.startswith(kind))
            return [EventInfo.model_validate(e) for e in s.scalars(query)]
