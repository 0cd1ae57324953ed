"""File events: every change made through ShareFS, on a bounded in-memory stream.

Later features (audit log, ransomware detection, metrics) subscribe; nothing waits for them.
Recording an event is an append to a ring buffer and a call of each subscriber, so it costs
no measurable throughput; a subscriber that raises is logged and dropped, never the change.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

Kind = Literal["create", "write", "rename", "delete", "mkdir", "rmdir", "copy", "meta", "read"]


@dataclass(frozen=True, slots=True)
class FileEvent:
    kind: Kind
    user: str
    protocol: str
    address: str | None
    share: str
    path: str  # "/a/b" inside the share
    size: int  # bytes written (write, create, copy), the file's size (read), else 0
    time: float  # seconds since the epoch
    target: str = ""  # the new path of a rename or copy


Subscriber = Callable[[FileEvent], None]


class FileEvents:
    """The last ``size`` events, and subscribers called with each new one."""

    def __init__(self, size: int = 10_000) -> None:
        self._recent: collections.deque[FileEvent] = collections.deque(maxlen=size)
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()
        self.count = 0  # events since start

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every event from now on; returns the unsubscribe."""
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def emit(
        self,
        kind: Kind,
        user: str,
        protocol: str,
        address: str | None,
        share: str,
        path: str,
        size: int = 0,
        target: str = "",
    ) -> None:
        event = FileEvent(kind, user, protocol, address, share, path, size, time.time(), target)
        self._recent.append(event)
        self.count += 1
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("a file event subscriber failed; it is dropped")
                with self._lock:
                    self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

    def recent(self, limit: int = 100) -> list[FileEvent]:
        """The newest ``limit`` events, oldest first."""
        items = list(self._recent)
        return items[-limit:] if limit else []
