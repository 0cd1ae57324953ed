"""Disk health: btrfs error counters and SMART, collected on a schedule.

Every pool disk's ``btrfs device stats`` counters are read at each ``collect()`` (the daemon's
monitor calls it every ``monitor_interval`` seconds); a counter that grew is an event. A disk
counts as *failing*, which makes its pool ``degraded``, when SMART says it fails or when its
I/O error counters (write, read, flush) grew within the last day. Checksum and generation
errors alone do not make a disk failing: a scrub repairs them from the good copy, and one
flipped bit must not leave a pool degraded for good. The counters seen last are kept in
memory; after a restart the first reading is the new baseline."""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from speicher.config import Settings
from speicher.db import Database
from speicher.db.models import utcnow
from speicher.events import EventService
from speicher.protection.models import DiskCounters, DiskHealthInfo
from speicher.storage import DiskService, PoolService
from speicher.storage.models import PoolInfo
from speicher.system import btrfs, smart
from speicher.system.run import CommandError

log = logging.getLogger(__name__)

IO_COUNTERS = ("write_io_errs", "read_io_errs", "flush_io_errs")
COUNTERS = (*IO_COUNTERS, "corruption_errs", "generation_errs")


def grown(before: Mapping[str, int] | None, after: Mapping[str, int]) -> dict[str, int]:
    """How much each counter grew since ``before``; nothing on the first reading, and a
    counter that went down (someone reset them) is a new start, not growth."""
    if before is None:
        return {}
    return {k: v - before[k] for k, v in after.items() if k in before and v > before[k]}


def failing_reason(
    smart_status: str | None,
    smart_message: str,
    io_errors_at: dt.datetime | None,
    now: dt.datetime,
    hold: dt.timedelta,
) -> str | None:
    """Why a disk counts as failing, or None."""
    if smart_status == "failed":
        return f"SMART health check failed: {smart_message}"
    if io_errors_at is not None and now - io_errors_at < hold:
        return f"I/O errors, the last at {io_errors_at:%Y-%m-%d %H:%M} UTC"
    return None


def describe(grew: Mapping[str, int], now: Mapping[str, int]) -> str:
    return ", ".join(f"{k} +{v} (now {now[k]})" for k, v in grew.items())


@dataclass
class _Disk:
    pool: str
    disk: str
    device: str = ""
    missing: bool = False
    counters: dict[str, int] | None = None
    io_errors_at: dt.datetime | None = None
    verdict: smart.SmartHealth | None = None
    smart_at: dt.datetime | None = None
    problem: str | None = None
    checked_at: dt.datetime | None = None


class DiskHealthService:
    # a disk with new I/O errors counts as failing this long
    failing_hold = dt.timedelta(hours=24)
    # SMART is asked this often (smartctl may take a second per disk)
    smart_interval = dt.timedelta(minutes=30)

    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        pools: PoolService,
        disks: DiskService,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.pools = pools
        self.disks = disks
        self._lock = threading.Lock()
        self._disks: dict[tuple[str, str], _Disk] = {}
        self._collected = False
        self._smartctl: bool | None = None

    def collect(self, now: dt.datetime | None = None) -> None:
        """Read every pool disk's counters (and SMART on real disks); record changes."""
        now = now or utcnow()
        with self._lock:
            changed: set[str] = set()
            seen: set[tuple[str, str]] = set()
            for pool in self.pools.list():
                if pool.state != "ready" or pool.health == "unavailable":
                    continue
                try:
                    stats = btrfs.device_stats(self.pools.mountpoint(pool.name))
                except CommandError as exc:
                    log.warning("reading the error counters of pool %s: %s", pool.name, exc)
                    continue
                for d in pool.disks:
                    key = (pool.name, d.disk)
                    seen.add(key)
                    entry = self._disks.setdefault(key, _Disk(pool.name, d.disk))
                    if self._check(entry, pool, d.device, d.state == "missing", stats, now):
                        changed.add(pool.name)
            for key in set(self._disks) - seen:  # replaced, removed, or the pool is gone
                gone = self._disks.pop(key)
                if gone.problem:
                    self.pools.set_disk_problem(gone.pool, gone.disk, None)
                    changed.add(gone.pool)
            self._collected = True
        for name in sorted(changed):
            try:
                self.pools.check_health(name)
            except Exception:
                log.exception("checking the health of pool %s", name)

    def _check(
        self,
        entry: _Disk,
        pool: PoolInfo,
        device: str,
        missing: bool,
        stats: Mapping[str, Mapping[str, int]],
        now: dt.datetime,
    ) -> bool:
        """Update one disk's entry; return whether its failing state changed."""
        entry.device = device
        entry.missing = missing
        entry.checked_at = now
        counters = {k: v for k, v in stats.get(device, {}).items() if k in COUNTERS}
        if device and counters:
            grew = grown(entry.counters, counters)
            if grew:
                io = [k for k in grew if k in IO_COUNTERS]
                if io:
                    entry.io_errors_at = now
                self.events.record(
                    "warning",
                    "disk.errors",
                    entry.disk,
                    f"disk {entry.disk} of pool {pool.name}: {describe(grew, counters)}"
                    + (
                        "; the disk failed to read or write"
                        if io
                        else "; data that did not match its checksum (a scrub repairs it "
                        "from the good copy)"
                    ),
                )
            entry.counters = counters
        self._check_smart(entry, now)
        reason = failing_reason(
            entry.verdict.status if entry.verdict else None,
            entry.verdict.message if entry.verdict else "",
            entry.io_errors_at,
            now,
            self.failing_hold,
        )
        if reason == entry.problem:
            return False
        if reason and not entry.problem:
            self.events.record(
                "error",
                "disk.failing",
                entry.disk,
                f"disk {entry.disk} of pool {pool.name} is failing: {reason}. Replace it.",
            )
        entry.problem = reason
        self.pools.set_disk_problem(pool.name, entry.disk, reason)
        return True

    def _check_smart(self, entry: _Disk, now: dt.datetime) -> None:
        if not smart.has_smart(entry.device):
            return
        if self._smartctl is None:
            self._smartctl = smart.available()
        if not self._smartctl:
            return
        if entry.smart_at is not None and now - entry.smart_at < self.smart_interval:
            return
        verdict = smart.health(entry.device)
        entry.smart_at = now
        if entry.verdict and entry.verdict.status == "failed" and verdict.status != "failed":
            return  # a failed disk does not heal; it may only be asleep or unreachable now
        entry.verdict = verdict

    def report(self, refresh: bool = False) -> builtins.list[DiskHealthInfo]:
        """Each pool disk's health, as last collected (``refresh`` collects now)."""
        if refresh or not self._collected:
            self.collect()
        with self._lock:
            entries = sorted(self._disks.values(), key=lambda e: (e.pool, e.disk))
            return [self._info(e) for e in entries]

    def _info(self, e: _Disk) -> DiskHealthInfo:
        if e.missing:
            state = "missing"
        elif e.problem:
            state = "failing"
        elif e.counters and any(e.counters.values()):
            state = "errors"
        else:
            state = "ok"
        if e.verdict is not None:
            verdict, message = e.verdict.status, e.verdict.message
        elif e.missing:
            verdict, message = "unknown", "the disk is missing"
        elif smart.has_smart(e.device) and self._smartctl is not False:
            verdict, message = "unknown", "not checked yet"
        else:
            verdict = "unsupported"
            message = (
                "smartmontools is not installed"
                if smart.has_smart(e.device)
                else "a virtual disk has no SMART"
            )
        return DiskHealthInfo(
            pool=e.pool,
            disk=e.disk,
            device=e.device,
            state=state,
            counters=DiskCounters(**e.counters) if e.counters else None,
            smart=verdict,
            smart_message=message,
            temperature_celsius=e.verdict.temperature if e.verdict else None,
            problem=e.problem,
            checked_at=e.checked_at,
        )
