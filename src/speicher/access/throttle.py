"""Throttling of password logins: failures per client address and per user name.

Pure bookkeeping with an injected clock, so the rules are unit-tested without waiting. The API
asks :meth:`Throttle.locked` before it checks a password (a locked key is answered 429 without
spending an Argon2 check), and reports the outcome with :meth:`Throttle.failed` or
:meth:`Throttle.succeeded`.

Policy: ``limit`` failures of one key within ``window`` seconds lock it for ``base_lockout``
seconds; each further lockout of a key that has not been quiet for ``forget`` seconds doubles
the time, up to ``max_lockout``. A success clears the key. The table holds at most
``max_keys`` keys (least recently failed go first), so random user names cannot fill memory.
IPv6 addresses are keyed by their /64, which one attacker usually owns whole.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass(frozen=True)
class Policy:
    limit: int = 10
    window: float = 600.0
    base_lockout: float = 60.0
    max_lockout: float = 3600.0
    forget: float = 3600.0
    max_keys: int = 10_000


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    level: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


@dataclass(frozen=True)
class Lockout:
    """A key that has just been locked (reported once per lockout)."""

    key: str
    seconds: float
    failures: int


def address_key(host: str | None) -> str:
    """The key of a client address: the address itself, or its /64 for IPv6."""
    if not host:
        return "address:unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"address:{host}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return f"address:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return f"address:{mapped or address}"


def user_key(name: str) -> str:
    return f"user:{name.lower()}"


class Throttle:
    """Thread-safe: the API calls it from the event loop and from worker threads."""

    def __init__(self, policy: Policy | None = None, clock: Clock = time.monotonic) -> None:
        self.policy = policy or Policy()
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def locked(self, *keys: str) -> float:
        """Seconds until every one of ``keys`` is unlocked; 0 when none is locked."""
        now = self.clock()
        with self._lock:
            waits = [r.locked_until - now for k in keys if (r := self._records.get(k))]
        return max([0.0, *waits])

    def failed(self, *keys: str) -> list[Lockout]:
        """Count a wrong password against ``keys``; return the keys this failure locked."""
        now = self.clock()
        lockouts = []
        with self._lock:
            for key in keys:
                lockout = self._fail(key, now)
                if lockout:
                    lockouts.append(lockout)
            self._trim()
        return lockouts

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)

    def _fail(self, key: str, now: float) -> Lockout | None:
        p = self.policy
        record = self._records.pop(key, None) or _Record()
        self._records[key] = record  # most recently failed last
        if now - record.last_failure > p.forget and record.locked_until <= now:
            record.level = 0
        record.last_failure = now
        record.failures = [t for t in record.failures if now - t < p.window]
        record.failures.append(now)
        if len(record.failures) < p.limit:
            return None
        seconds = min(p.base_lockout * 2**record.level, p.max_lockout)
        record.level += 1
        record.locked_until = now + seconds
        count = len(record.failures)
        record.failures = []
        return Lockout(key, seconds, count)

    def _trim(self) -> None:
        while len(self._records) > self.policy.max_keys:
            self._records.popitem(last=False)
