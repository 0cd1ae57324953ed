"""Disk health: btrfs error counters and SMART, collected on a schedule."""

from __future__ import annotations

from speicher.config import Settings
from speicher.db import Database
from speicher.events import EventService
from speicher.storage import DiskService, PoolService


class DiskHealthService:
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

    def collect(self) -> None:
        """Read every pool disk's counters (and SMART on real disks); record changes."""
