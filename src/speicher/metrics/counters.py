"""Request counters of the Python protocols, in memory every process of the daemon can read.

Each process counts into a small file of its own under ``<state>/metrics/`` (mapped into
memory, so a count is a write to memory, not a system call): the daemon into ``daemon``, S3
worker *i* into ``s3-<i>``. The daemon sums them at a scrape. A worker that is started again
maps the same file and counts on, so the sums never go down while the daemon runs; the
daemon empties the folder at its start (a new start is a counter reset, which Prometheus
expects).

Chosen over prometheus-client's multiprocess mode because that mode is picked by an
environment variable read when ``prometheus_client`` is first imported (the workers get a
minimal environment and import it through the services), writes one file per pid (a worker
restarted a thousand times leaves a thousand files to read at every scrape) and would still
need merging with the daemon's own counts of the same protocol. Here the layout is fixed:
for each protocol, five 64-bit counters.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from speicher.config import Settings

PROTOCOLS = ("webdav", "sftp", "s3", "web")
FIELDS = ("requests", "received_bytes", "sent_bytes", "client_errors", "server_errors")
_MAGIC = 0x5350_4D45_5452_0001  # "SPMETR", layout 1
_WORDS = 1 + len(PROTOCOLS) * len(FIELDS)
SIZE = _WORDS * 8


def metrics_dir(settings: Settings) -> Path:
    return settings.state_dir / "metrics"


def reset(settings: Settings) -> None:
    """At the daemon's start: no counts of an earlier run (root-only folder)."""
    folder = metrics_dir(settings)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


@dataclass(frozen=True)
class Counts:
    requests: int = 0
    received_bytes: int = 0
    sent_bytes: int = 0
    client_errors: int = 0
    server_errors: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.requests + other.requests,
            self.received_bytes + other.received_bytes,
            self.sent_bytes + other.sent_bytes,
            self.client_errors + other.client_errors,
            self.server_errors + other.server_errors,
        )


def _index(protocol: str, field: int) -> int:
    return 1 + PROTOCOLS.index(protocol) * len(FIELDS) + field


REQUESTS, RECEIVED, SENT, CLIENT_ERRORS, SERVER_ERRORS = range(len(FIELDS))


class ProtocolCounters:
    """One process's counters: in anonymous memory until :meth:`share` maps them to a file."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, SIZE)
        self._words = memoryview(self._map).cast("Q")
        self._words[0] = _MAGIC
        self._lock = threading.Lock()  # the daemon counts from threads too (SFTP's, a2wsgi's)

    def share(self, path: Path) -> None:
        """Count into ``path`` from now on (made if missing; kept counts go on)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size != SIZE:
                os.ftruncate(fd, 0)
                os.ftruncate(fd, SIZE)
            mapped = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        words = memoryview(mapped).cast("Q")
        with self._lock:
            if words[0] != _MAGIC:
                for i in range(1, _WORDS):
                    words[i] = self._words[i]
                words[0] = _MAGIC
            old = self._words
            self._words, self._map = words, mapped
            old.release()

    def add(self, protocol: str, field: int, amount: int = 1) -> None:
        i = _index(protocol, field)
        with self._lock:
            self._words[i] += amount

    def request(
        self, protocol: str, received: int, sent: int, client_error: bool, server_error: bool
    ) -> None:
        """One finished request: its bytes in and out and whether it failed, and whose fault."""
        base = _index(protocol, 0)
        with self._lock:
            words = self._words
            words[base + REQUESTS] += 1
            words[base + RECEIVED] += received
            words[base + SENT] += sent
            words[base + CLIENT_ERRORS] += client_error
            words[base + SERVER_ERRORS] += server_error

    def counts(self, protocol: str) -> Counts:
        base = _index(protocol, 0)
        with self._lock:
            return Counts(*(int(self._words[base + f]) for f in range(len(FIELDS))))


def read(path: Path) -> dict[str, Counts]:
    """Another process's counters as last written; nothing if the file is not ours."""
    with contextlib.suppress(OSError), path.open("rb") as fh:
        data = fh.read(SIZE)
        if len(data) == SIZE:
            words = memoryview(data).cast("Q")
            if words[0] == _MAGIC:
                return {
                    p: Counts(*(int(words[_index(p, f)]) for f in range(len(FIELDS))))
                    for p in PROTOCOLS
                }
    return {}


def totals(own: ProtocolCounters, folder: Path) -> dict[str, Counts]:
    """This process's counts plus those of every worker's file in ``folder``."""
    result = {p: own.counts(p) for p in PROTOCOLS}
    with contextlib.suppress(OSError):
        for path in sorted(folder.iterdir()):
            if path.name.startswith("s3-"):
                for protocol, counts in read(path).items():
                    result[protocol] = result[protocol] + counts
    return result
