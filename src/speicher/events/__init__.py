"""The event log: what an admin should know about."""

from speicher.events.models import EventInfo
from speicher.events.service import EventService

__all__ = ["EventInfo", "EventService"]
