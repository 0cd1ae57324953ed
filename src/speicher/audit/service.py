"""The audit log: records come in from every source, one thread writes them, anyone searches.

Sources, each of which only appends to a queue (nothing a protocol does waits for the disk):

- ShareFS's file events in the daemon (WebDAV, SFTP, the file manager, S3 requests the
  daemon serves) through :meth:`AuditLog.file_event`;
- the S3 worker processes' file events, as datagrams on a root-only socket
  (``<state>/audit/intake.sock``, :class:`Intake` here, :class:`WorkerSender` there);
- smbd's ``vfs_full_audit`` lines on smbd's stdout (:class:`~speicher.audit.smb.SmbAuditParser`);
- admin actions and logins of the API, the CLI (through the API) and the console
  (:meth:`AuditLog.admin`, :meth:`AuditLog.login`).

Subscribers (the ransomware detector) get every file record as it is taken in. A queue that
grows past ``BACKLOG`` records (the disk cannot keep up) drops what comes and says so in an
error event: an audit log that silently loses records would be worse.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from speicher.audit.records import Record, without_controls
from speicher.audit.store import AuditStore, Query
from speicher.config import Settings
from speicher.events import EventService
from speicher.files.events import FileEvent, FileEvents

log = logging.getLogger(__name__)

BACKLOG = 1_000_000  # records waiting for the disk before new ones are dropped
BATCH = 5000
FLUSH_SECONDS = 0.5
INTAKE = "intake.sock"
DATAGRAM = 60_000  # bytes of one datagram from a worker (below the default socket buffer)

# ShareFS's event kinds as audit operations
_OPERATIONS = {
    "create": "create",
    "write": "open_write",
    "rename": "rename",
    "copy": "copy",
    "delete": "delete",
    "mkdir": "mkdir",
    "rmdir": "rmdir",
    "meta": "set_permission",
    "read": "read",
}

Subscriber = Callable[[Record], None]


def record_of(event: FileEvent) -> Record:
    return Record(
        time=event.time,
        category="file",
        protocol=event.protocol,
        user=event.user,
        address=event.address or "",
        share=event.share,
        operation=_OPERATIONS.get(event.kind, event.kind),
        path=without_controls(event.path),
        target=without_controls(event.target),
        size=event.size,
    )


class AuditLog:
    def __init__(
        self,
        settings: Settings,
        events: EventService,
    ) -> None:
        self.settings = settings
        self.events = events
        self.store = AuditStore(settings.audit_dir)
        self._queue: queue.SimpleQueue[Record | None] = queue.SimpleQueue()
        self._waiting = 0  # records taken in and not yet written (under _count)
        self._full = False  # the last batch was BATCH long
        self._count = threading.Lock()
        self._dropped = 0
        self._subscribers: tuple[Subscriber, ...] = ()
        self._thread: threading.Thread | None = None
        self._intake: Intake | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- life ---------------------------------------------------------------------------------

    def start(self, files: FileEvents | None = None, intake: bool = True) -> None:
        self.store.prepare()
        self.retain()
        if files is not None and self.settings.audit_files:
            self._unsubscribe = files.subscribe(self.file_event)
        if intake:
            self._intake = Intake(self.settings.audit_dir / INTAKE, self.add)
            self._intake.start()
        self._thread = threading.Thread(target=self._write, name="audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._intake is not None:
            self._intake.stop()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(30)
            self._thread = None
        self.store.close()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every file record as it comes in (in the thread that
        brings it: keep it short, hand work to a thread of your own)."""
        self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    # -- taking in ----------------------------------------------------------------------------

    def add(self, record: Record) -> None:
        """Queue one record (any thread; never blocks)."""
        if record.category == "file":
            if not self.settings.audit_files:
                return
            for subscriber in self._subscribers:
                try:
                    subscriber(record)
                except Exception:
                    log.exception("an audit subscriber failed; it is dropped")
                    self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)
        with self._count:
            if self._waiting >= BACKLOG:
                self._dropped += 1
                return
            self._waiting += 1
        self._queue.put(record)

    def file_event(self, event: FileEvent) -> None:
        self.add(record_of(event))

    def admin(
        self,
        who: str,
        protocol: str,
        operation: str,
        subject: str,
        outcome: str,
        address: str | None = None,
        detail: str = "",
    ) -> None:
        """An admin action: ``who`` (``user:alice``, ``token:ci``, ``root``) did
        ``operation`` (``POST /shares``) on ``subject`` (``finance``)."""
        self._account("admin", who, protocol, operation, subject, outcome, address, detail)

    def login(
        self, user: str, protocol: str, address: str | None, ok: bool, detail: str = ""
    ) -> None:
        outcome = "ok" if ok else "failed"
        self._account("login", user, protocol, "login", "", outcome, address, detail)

    def _account(
        self,
        category: Literal["admin", "login"],
        who: str,
        protocol: str,
        operation: str,
        subject: str,
        outcome: str,
        address: str | None,
        detail: str,
    ) -> None:
        self.add(
            Record(
                time=time.time(),
                category=category,
                protocol=protocol,
                user=without_controls(who, 200),
                address=address or "",
                share="",
                operation=without_controls(operation, 200),
                path=without_controls(subject, 1024),
                outcome=outcome,
                detail=without_controls(detail, 1024),
            )
        )

    # -- writing ------------------------------------------------------------------------------

    def _write(self) -> None:
        last_retain = time.monotonic()
        while True:
            batch, stopping = self._take()
            if batch:
                self._store(batch)
            with self._count:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                self.events.record(
                    "error",
                    "audit.dropped",
                    "audit",
                    f"the audit log could not keep up and lost {dropped} records",
                )
            if stopping:
                return
            if time.monotonic() - last_retain > 3600:
                last_retain = time.monotonic()
                self.retain()

    def _take(self) -> tuple[list[Record], bool]:
        """The next batch: what came within FLUSH_SECONDS of its first record, at most
        BATCH; and whether the log is stopping. The thread sleeps through those seconds and
        then takes what waits at once: waiting for each record would wake it for every file
        operation, a thread switch each, which SMB's small-file writes felt
        (bench/audit_overhead.py). After a full batch it does not sleep: more is waiting."""
        batch: list[Record] = []
        try:
            item = self._queue.get(timeout=FLUSH_SECONDS)
        except queue.Empty:
            return batch, False
        if item is not None and not self._full:
            time.sleep(FLUSH_SECONDS)
        self._full = False
        while item is not None:
            batch.append(item)
            if len(batch) >= BATCH:
                self._full = True
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _store(self, batch: list[Record]) -> None:
        try:
            self.store.add(batch)
        except Exception:
            log.exception("writing %d audit records failed", len(batch))
            self.events.record(
                "error", "audit.failed", "audit", f"{len(batch)} audit records could not be written"
            )
        finally:
            with self._count:
                self._waiting -= len(batch)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written (tests, the CLI's search after a
        change); False if that took longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._waiting > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._waiting <= 0

    def retain(self) -> list[str]:
        """Remove the months past the retention (``audit_retention_months``)."""
        now = dt.datetime.now(dt.UTC)
        months = now.year * 12 + now.month - 1 - (self.settings.audit_retention_months - 1)
        first = f"{months // 12:04d}-{months % 12 + 1:02d}"
        gone = self.store.remove_before(first)
        if gone:
            self.events.record(
                "info",
                "audit.retained",
                "audit",
                f"audit log of {', '.join(gone)} removed (kept: "
                f"{self.settings.audit_retention_months} months)",
            )
        return gone

    # -- reading ------------------------------------------------------------------------------

    def search(self, q: Query) -> list[Record]:
        return self.store.search(q)

    def export(self, q: Query) -> Iterator[Record]:
        return self.store.export(q)


# -- the S3 workers' records -----------------------------------------------------------------


class Intake:
    """The daemon's datagram socket for the workers' records (root only)."""

    def __init__(self, path: Path, add: Callable[[Record], None]) -> None:
        self.path = path
        self.add = add
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._sock = sock
        self._thread = threading.Thread(target=self._receive, name="audit-intake", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._sock is not None:
            # wake the receiving thread: a datagram of nothing
            with (
                contextlib.suppress(OSError),
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as poke,
            ):
                poke.sendto(b"", str(self.path))
            if self._thread is not None:
                self._thread.join(5)
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _receive(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(DATAGRAM * 2)
            except OSError:
                return
            if not data:
                return
            try:
                for item in json.loads(data):
                    if (record := _from_wire(item)) is not None:
                        self.add(record)
            except (ValueError, TypeError, KeyError):
                log.warning("a malformed audit datagram was dropped")


def _from_wire(item: dict[str, object]) -> Record | None:
    """A worker's record; None for anything but a file record."""
    fields = {k: item[k] for k in Record.__dataclass_fields__ if k in item}
    record = Record(**fields)  # type: ignore[arg-type]
    return record if record.category == "file" and isinstance(record.time, float | int) else None


class WorkerSender:
    """A worker's side: its file events, sent in batches to the daemon's intake from a
    thread of their own (the request that made an event never waits for it)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._queue: queue.SimpleQueue[FileEvent] = queue.SimpleQueue()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._thread = threading.Thread(target=self._send, name="audit-sender", daemon=True)

    def attach(self, files: FileEvents) -> None:
        files.subscribe(self._queue.put)
        self._thread.start()

    def _send(self) -> None:
        while True:
            events = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(events) < 500:
                    events.append(self._queue.get(timeout=0.05))
            chunk: list[str] = []
            size = 2
            for event in events:
                item = json.dumps(record_of(event).as_dict())
                if chunk and size + len(item) + 1 > DATAGRAM:
                    self._datagram(chunk)
                    chunk, size = [], 2
                chunk.append(item)
                size += len(item) + 1
            if chunk:
                self._datagram(chunk)

    def _datagram(self, items: list[str]) -> None:
        data = ("[" + ",".join(items) + "]").encode()
        for _ in range(100):  # the daemon busy: wait for room in its buffer, a while
            try:
                self._sock.sendto(data, self.path)
                return
            except BlockingIOError:
                time.sleep(0.1)
            except OSError as exc:
                log.warning("the daemon's audit intake took no records (%s); %d lost", exc,
                            len(items))  # fmt: skip
                return
        log.warning("the daemon's audit intake is full; %d records lost", len(items))


__all__ = ["AuditLog", "Intake", "Query", "WorkerSender", "record_of"]
