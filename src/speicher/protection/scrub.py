"""Scrubs: btrfs reads every block of a pool and checks it against its checksum, repairing
from a good copy where the profile keeps one."""

from __future__ import annotations

import datetime as dt

from speicher.config import Settings
from speicher.db import Database
from speicher.events import EventService
from speicher.jobs import JobInfo, JobService
from speicher.storage import PoolService


class ScrubService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventService,
        jobs: JobService,
        pools: PoolService,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.jobs = jobs
        self.pools = pools

    def start(self, pool: str) -> JobInfo:
        """Start a scrub of ``pool`` as a job."""
        raise NotImplementedError

    def run_due(self, now: dt.datetime | None = None) -> None:
        """Start the scrubs whose schedule says so (called by the daemon's scheduler)."""
