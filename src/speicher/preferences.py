"""Box-wide preferences that are not a protocol's: the time zone the console shows times in.

One row (``preferences``), read once and kept in memory by the process that serves the
console; a change goes to the database and to that copy together. Schedules (cron) stay in
UTC, as the API has always documented them: a time zone change never moves a schedule.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import zoneinfo

from pydantic import BaseModel, Field

from speicher.db import Database, Preferences
from speicher.errors import InvalidInput
from speicher.events import EventService
from speicher.validation import Request

DEFAULT_TIME_ZONE = "UTC"


class PreferencesInfo(BaseModel):
    time_zone: str = Field(
        description="IANA time zone the web console shows times in, e.g. `Europe/Berlin`."
    )


class PreferencesUpdate(Request):
    time_zone: str | None = Field(
        None, max_length=64, description="New IANA time zone, e.g. `Europe/Berlin`."
    )


@functools.cache
def time_zones() -> tuple[str, ...]:
    """Every IANA zone this machine knows, sorted (the console's choice)."""
    return tuple(sorted(zoneinfo.available_timezones() | {DEFAULT_TIME_ZONE}))


def zone(name: str) -> dt.tzinfo:
    if name == DEFAULT_TIME_ZONE:
        return dt.UTC
    return zoneinfo.ZoneInfo(name)


class PreferencesService:
    def __init__(self, db: Database, events: EventService) -> None:
        self.db = db
        self.events = events
        self._lock = threading.Lock()
        self._known: PreferencesInfo | None = None

    def get(self) -> PreferencesInfo:
        with self._lock:
            if self._known is not None:
                return self._known
        with self.db.session() as s:
            row = s.get(Preferences, 1)
            known = PreferencesInfo(time_zone=row.time_zone if row else DEFAULT_TIME_ZONE)
        with self._lock:
            self._known = known
        return known

    def tz(self) -> dt.tzinfo:
        return zone(self.get().time_zone)

    def update(self, req: PreferencesUpdate) -> PreferencesInfo:
        if req.time_zone is not None and req.time_zone not in time_zones():
            raise InvalidInput(
                field="time_zone",
                reason=f"{req.time_zone!r} is not a time zone (IANA names such as Europe/Berlin)",
            )
        with self.db.session() as s:
            row = s.get(Preferences, 1)
            if row is None:
                row = Preferences(id=1, time_zone=DEFAULT_TIME_ZONE)
                s.add(row)
            if req.time_zone is not None:
                row.time_zone = req.time_zone
            known = PreferencesInfo(time_zone=row.time_zone)
        with self._lock:
            self._known = known
        self.events.record(
            "info", "system.preferences", "time_zone", f"time zone set to {known.time_zone}"
        )
        return known
