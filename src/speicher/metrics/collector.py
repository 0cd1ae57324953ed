"""What ``/metrics`` says, read at scrape time (docs/metrics.md lists every metric).

Each source is read on its own: one that fails (a pool that cannot be read, smbstatus
missing) is logged and named in ``speicher_scrape_error{source}``, and the others are still
answered; a source of one series per pool or share (device stats, snapshot folders) skips
only the pool or share it could not read. Rows are read in short sessions and closed before
any command runs (rule 4). Pool and share figures come from the facts the monitor refreshes
(as the API's listings), SMART from the disk-health service's last reading (smartctl is
asked at most every 30 minutes there); what is cheap to read is read now: ``btrfs device
stats``, the snapshot folders, ``smbstatus``. One scrape runs at a time; a second waits.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from speicher import __version__
from speicher.db import Job, Pool, ScrubRun
from speicher.db.models import utcnow
from speicher.metrics import counters
from speicher.protection.snapshots import parse_name
from speicher.services import Services
from speicher.storage.models import PoolInfo
from speicher.storage.shares import snapshots_dir
from speicher.system import btrfs, samba

log = logging.getLogger(__name__)

Metric = GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily
HEALTH_STATES = ("ok", "degraded", "unavailable")
DISK_STATES = ("ok", "errors", "failing", "missing")
DEVICE_COUNTERS = {
    "write_io_errs": "write_io",
    "read_io_errs": "read_io",
    "flush_io_errs": "flush_io",
    "corruption_errs": "corruption",
    "generation_errs": "generation",
}


def _seconds(when: dt.datetime) -> float:
    return when.timestamp()


class SpeicherCollector(Collector):
    """A prometheus-client collector over the daemon's services."""

    def __init__(self, services: Services, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.services = services
        self.clock = clock
        self._lock = threading.Lock()
        self._failed: set[str] = set()  # the sources that failed at this scrape

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            start = time.monotonic()
            self._failed = set()
            pools: list[PoolInfo] = []
            smb: list[samba.Profile] = []  # smbd's counts, for the protocols' families
            sources: list[tuple[str, Callable[[], list[Metric]]]] = [
                ("pools", lambda: self._pools(pools)),
                ("devices", lambda: self._devices(pools)),
                ("disks", self._disks),
                ("shares", self._shares),
                ("scrubs", self._scrubs),
                ("jobs", self._jobs),
                ("smb", self._smb),
                ("smb_profile", lambda: self._smb_profile(smb)),
                ("protocols", lambda: self._protocols(smb)),
                ("alerts", self._alerts),
                ("ransomware", self._ransomware),
                ("replication", self._replication),
                ("backup", self._backup),
            ]
            info = InfoMetricFamily("speicher", "The Speicher daemon's version.")
            info.add_metric([], {"version": __version__})
            yield info
            for name, source in sources:
                try:
                    found = source()
                except Exception:
                    log.exception("metrics: reading %s failed", name)
                    self._failed.add(name)
                    continue
                yield from found
            errors = GaugeMetricFamily(
                "speicher_scrape_error",
                "1 if a source of metrics could not be read at this scrape (see the daemon's "
                "log), else 0.",
                labels=["source"],
            )
            for name, _ in sources:
                errors.add_metric([name], 1.0 if name in self._failed else 0.0)
            yield errors
            yield GaugeMetricFamily(
                "speicher_scrape_duration_seconds",
                "How long reading every source took.",
                value=time.monotonic() - start,
            )

    def _skip(self, source: str, what: str, exc: Exception) -> None:
        """One pool's or share's part of ``source`` could not be read: logged, the source
        counts as failed, the rest of it is still answered."""
        log.warning("metrics: reading %s of %s failed: %s", source, what, exc)
        self._failed.add(source)

    # -- pools and disks ---------------------------------------------------------------------

    def _pools(self, pools: list[PoolInfo]) -> list[Metric]:
        pools.extend(p for p in self.services.pools.list() if p.state == "ready")
        size = GaugeMetricFamily(
            "speicher_pool_size_bytes", "Bytes files can take (after redundancy).", labels=["pool"]
        )
        used = GaugeMetricFamily("speicher_pool_used_bytes", "Bytes in use.", labels=["pool"])
        free = GaugeMetricFamily(
            "speicher_pool_free_bytes", "Bytes free for new data.", labels=["pool"]
        )
        healthy = GaugeMetricFamily(
            "speicher_pool_healthy", "1 if the pool's health is ok, else 0.", labels=["pool"]
        )
        health = GaugeMetricFamily(
            "speicher_pool_health",
            "1 for the pool's health (ok, degraded, unavailable), 0 for the others.",
            labels=["pool", "health"],
        )
        disks = GaugeMetricFamily(
            "speicher_pool_disks", "The pool's disks, by state.", labels=["pool", "state"]
        )
        info = InfoMetricFamily(
            "speicher_pool", "The pool's redundancy profile.", labels=["pool", "profile"]
        )
        for p in pools:
            info.add_metric([p.name, p.profile], {})
            if p.health != "unavailable":  # not mounted: its sizes are unknown, not 0
                size.add_metric([p.name], p.size)
                used.add_metric([p.name], p.used)
                free.add_metric([p.name], p.free)
            healthy.add_metric([p.name], 1.0 if p.health == "ok" else 0.0)
            for state in HEALTH_STATES:
                health.add_metric([p.name, state], 1.0 if p.health == state else 0.0)
            for state in ("online", "missing"):
                disks.add_metric([p.name, state], sum(d.state == state for d in p.disks))
        return [size, used, free, healthy, health, disks, info]

    def _devices(self, pools: list[PoolInfo]) -> list[Metric]:
        errors = CounterMetricFamily(
            "speicher_pool_device_errors",
            "btrfs's error counters of each disk (btrfs device stats), by type: write_io, "
            "read_io, flush_io, corruption, generation.",
            labels=["pool", "disk", "type"],
        )
        for p in pools:
            if p.health == "unavailable":
                continue
            try:
                stats = btrfs.device_stats(self.services.pools.mountpoint(p.name))
            except Exception as exc:
                self._skip("devices", f"pool {p.name}", exc)
                continue
            for d in p.disks:
                if d.state == "missing" or d.device not in stats:
                    continue
                for key, kind in DEVICE_COUNTERS.items():
                    if key in stats[d.device]:
                        errors.add_metric([p.name, d.disk, kind], stats[d.device][key])
        return [errors]

    def _disks(self) -> list[Metric]:
        state = GaugeMetricFamily(
            "speicher_disk_state",
            "1 for a pool disk's state (ok, errors, failing, missing), 0 for the others.",
            labels=["pool", "disk", "state"],
        )
        passed = GaugeMetricFamily(
            "speicher_disk_smart_passed",
            "1 if the disk's SMART self-assessment passed, 0 if it failed; absent where "
            "unknown (virtual disks, no smartmontools, not read yet).",
            labels=["pool", "disk"],
        )
        temperature = GaugeMetricFamily(
            "speicher_disk_temperature_celsius",
            "The disk's temperature at the last SMART reading, where the disk tells.",
            labels=["pool", "disk"],
        )
        for d in self.services.health.report():
            for s in DISK_STATES:
                state.add_metric([d.pool, d.disk, s], 1.0 if d.state == s else 0.0)
            if d.smart in ("passed", "failed"):
                passed.add_metric([d.pool, d.disk], 1.0 if d.smart == "passed" else 0.0)
            if d.temperature_celsius is not None:
                temperature.add_metric([d.pool, d.disk], d.temperature_celsius)
        return [state, passed, temperature]

    # -- shares and snapshots ----------------------------------------------------------------

    def _shares(self) -> list[Metric]:
        used = GaugeMetricFamily(
            "speicher_share_used_bytes",
            "Bytes the share's files take (its subvolume's referenced bytes).",
            labels=["share", "pool"],
        )
        quota = GaugeMetricFamily(
            "speicher_share_quota_bytes",
            "The share's size limit; absent for a share without one.",
            labels=["share", "pool"],
        )
        count = GaugeMetricFamily(
            "speicher_share_snapshots", "Snapshots the share has.", labels=["share", "pool"]
        )
        newest = GaugeMetricFamily(
            "speicher_share_newest_snapshot_age_seconds",
            "How old the share's newest snapshot is; absent without snapshots.",
            labels=["share", "pool"],
        )
        newest_at = GaugeMetricFamily(
            "speicher_share_newest_snapshot_timestamp_seconds",
            "When the share's newest snapshot was taken (Unix time).",
            labels=["share", "pool"],
        )
        now = self.clock()
        for s in self.services.shares.list():
            if s.state != "ready":
                continue
            labels = [s.name, s.pool]
            used.add_metric(labels, s.used)
            if s.quota is not None:
                quota.add_metric(labels, s.quota)
            try:
                times = self._snapshot_times(snapshots_dir(self.services.settings, s.pool, s.name))
            except OSError as exc:
                self._skip("shares", f"the snapshots of share {s.name}", exc)
                continue
            count.add_metric(labels, len(times))
            if times:
                latest = max(times)
                newest.add_metric(labels, max(0.0, (now - latest).total_seconds()))
                newest_at.add_metric(labels, _seconds(latest))
        return [used, quota, count, newest, newest_at]

    @staticmethod
    def _snapshot_times(folder: Path) -> list[dt.datetime]:
        """The times of the snapshots in ``folder`` (what SnapshotService.list counts); none
        if it is missing (no snapshot taken yet). Another failure to read it raises."""
        try:
            entries = list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        times = []
        for entry in entries:
            when = parse_name(entry.name)
            if when is not None and entry.is_dir():
                times.append(when)
        return times

    def _scrubs(self) -> list[Metric]:
        last = GaugeMetricFamily(
            "speicher_pool_scrub_last_finished_timestamp_seconds",
            "When the pool's last scrub that ran to the end finished (Unix time).",
            labels=["pool"],
        )
        found = GaugeMetricFamily(
            "speicher_pool_scrub_last_errors",
            "Blocks the pool's last finished scrub found bad (checksum or read errors).",
            labels=["pool"],
        )
        lost = GaugeMetricFamily(
            "speicher_pool_scrub_last_uncorrectable_errors",
            "Of those, blocks without a good copy (data lost).",
            labels=["pool"],
        )
        running = GaugeMetricFamily(
            "speicher_pool_scrub_running", "1 while a scrub of the pool runs.", labels=["pool"]
        )
        with self.services.db.session() as s:
            newest = (
                select(ScrubRun.pool_id, func.max(ScrubRun.id).label("id"))
                .where(ScrubRun.state == "finished")
                .group_by(ScrubRun.pool_id)
                .subquery()
            )
            rows = s.execute(
                select(
                    Pool.name,
                    ScrubRun.finished_at,
                    ScrubRun.errors_found,
                    ScrubRun.errors_uncorrectable,
                )
                .join(newest, newest.c.pool_id == Pool.id)
                .join(ScrubRun, ScrubRun.id == newest.c.id)
            ).all()
            active = set(
                s.scalars(
                    select(Pool.name)
                    .join(ScrubRun, ScrubRun.pool_id == Pool.id)
                    .join(Job, Job.id == ScrubRun.job_id)
                    .where(ScrubRun.state == "running", Job.state == "running")
                )
            )
            names = list(s.scalars(select(Pool.name).where(Pool.state == "ready")))
        for name, finished_at, errors, uncorrectable in rows:
            if finished_at is not None:
                last.add_metric([name], _seconds(finished_at))
            found.add_metric([name], errors)
            lost.add_metric([name], uncorrectable)
        for name in names:
            running.add_metric([name], 1.0 if name in active else 0.0)
        return [last, found, lost, running]

    # -- jobs, alerts, tasks -----------------------------------------------------------------

    def _jobs(self) -> list[Metric]:
        running = GaugeMetricFamily(
            "speicher_jobs_running", "Jobs running now, by kind.", labels=["kind"]
        )
        failed = CounterMetricFamily(
            "speicher_jobs_failed",
            "Jobs that failed, by kind (as the job list keeps them).",
            labels=["kind"],
        )
        with self.services.db.session() as s:
            rows = s.execute(
                select(Job.kind, Job.state, func.count())
                .where(Job.state.in_(("running", "failed")))
                .group_by(Job.kind, Job.state)
            ).all()
        for kind, state, n in rows:
            (running if state == "running" else failed).add_metric([kind], n)
        return [running, failed]

    def _alerts(self) -> list[Metric]:
        active = GaugeMetricFamily(
            "speicher_alert_active",
            "1 for each alert condition that began and has not ended (e.g. kind "
            "pool.degraded, subject tank).",
            labels=["kind", "subject"],
        )
        since = GaugeMetricFamily(
            "speicher_alert_active_since_timestamp_seconds",
            "When the condition began (Unix time).",
            labels=["kind", "subject"],
        )
        conditions = self.services.alerts.active()
        for c in conditions:
            active.add_metric([c.kind, c.subject], 1.0)
            since.add_metric([c.kind, c.subject], _seconds(c.since))
        total = GaugeMetricFamily(
            "speicher_alert_conditions_active",
            "Alert conditions active now.",
            value=len(conditions),
        )
        return [active, since, total]

    def _ransomware(self) -> list[Metric]:
        return [
            GaugeMetricFamily(
                "speicher_ransomware_incidents_open",
                "Ransomware incidents not yet resolved (docs/ransomware.md).",
                value=len(self.services.ransomware.incidents("open")),
            )
        ]

    def _replication(self) -> list[Metric]:
        age = GaugeMetricFamily(
            "speicher_replication_last_success_age_seconds",
            "Seconds since the task's newest replica was made; absent before its first.",
            labels=["task", "share", "target"],
        )
        last_ok = GaugeMetricFamily(
            "speicher_replication_last_success_timestamp_seconds",
            "When the task's newest replica was made (Unix time); absent before its first.",
            labels=["task", "share", "target"],
        )
        last_run = GaugeMetricFamily(
            "speicher_replication_last_run_timestamp_seconds",
            "When the task last ran, successfully or not (Unix time); absent before its first.",
            labels=["task", "share", "target"],
        )
        failures = GaugeMetricFamily(
            "speicher_replication_failures",
            "Failed runs of the task in a row.",
            labels=["task", "share", "target"],
        )
        for t in self.services.replication_tasks.list():
            labels = [str(t.id), t.share, t.target]
            if t.replica_age_seconds is not None:
                age.add_metric(labels, t.replica_age_seconds)
            if t.last_ok_at is not None:
                last_ok.add_metric(labels, _seconds(t.last_ok_at))
            if t.last_run_at is not None:
                last_run.add_metric(labels, _seconds(t.last_run_at))
            failures.add_metric(labels, t.failures)
        return [age, last_ok, last_run, failures]

    def _backup(self) -> list[Metric]:
        age = GaugeMetricFamily(
            "speicher_backup_last_success_age_seconds",
            "Seconds since the task's newest backup was made; absent before its first.",
            labels=["task", "share", "target"],
        )
        last_ok = GaugeMetricFamily(
            "speicher_backup_last_success_timestamp_seconds",
            "When the task's newest backup was made (Unix time); absent before its first.",
            labels=["task", "share", "target"],
        )
        last_run = GaugeMetricFamily(
            "speicher_backup_last_run_timestamp_seconds",
            "When the task last ran, successfully or not (Unix time); absent before its first.",
            labels=["task", "share", "target"],
        )
        failures = GaugeMetricFamily(
            "speicher_backup_failures",
            "Failed runs of the task in a row.",
            labels=["task", "share", "target"],
        )
        for t in self.services.backup_tasks.list():
            labels = [str(t.id), t.share, t.target]
            if t.backup_age_seconds is not None:
                age.add_metric(labels, t.backup_age_seconds)
            if t.last_ok_at is not None:
                last_ok.add_metric(labels, _seconds(t.last_ok_at))
            if t.last_run_at is not None:
                last_run.add_metric(labels, _seconds(t.last_run_at))
            failures.add_metric(labels, t.failures)
        return [age, last_ok, last_run, failures]

    # -- protocols ---------------------------------------------------------------------------

    def _protocols(self, smb: list[samba.Profile]) -> list[Metric]:
        totals = counters.totals(
            self.services.counters, counters.metrics_dir(self.services.settings)
        )
        requests, received, sent, errors = self._protocol_families()
        for profile in smb:
            requests.add_metric(["smb"], profile.requests)
            received.add_metric(["smb"], profile.received_bytes)
            sent.add_metric(["smb"], profile.sent_bytes)
        for protocol, c in totals.items():
            requests.add_metric([protocol], c.requests)
            received.add_metric([protocol], c.received_bytes)
            sent.add_metric([protocol], c.sent_bytes)
            errors.add_metric([protocol, "client"], c.client_errors)
            errors.add_metric([protocol, "server"], c.server_errors)
        return [requests, received, sent, errors]

    def _smb(self) -> list[Metric]:
        smb = self.services.smb
        running = smb.supervisor.running
        up = GaugeMetricFamily(
            "speicher_smb_up", "1 if Speicher's smbd is running.", value=1.0 if running else 0.0
        )
        if not running:
            return [up]
        try:
            status = samba.status(smb.conf)
        except Exception as exc:  # smbd's state is still told
            self._skip("smb", "smbstatus", exc)
            return [up]
        sessions = GaugeMetricFamily(
            "speicher_smb_sessions", "SMB sessions open now.", value=len(status.sessions)
        )
        files = GaugeMetricFamily(
            "speicher_smb_open_files",
            "Files SMB clients hold open now.",
            value=len(status.open_files),
        )
        return [up, sessions, files]

    def _smb_profile(self, profiles: list[samba.Profile]) -> list[Metric]:
        """smbd's own counts of its calls, for the protocols' families (none while smbd is
        not running; smbstatus failing while it runs is this source's failure)."""
        smb = self.services.smb
        if not smb.supervisor.running:
            return []
        profile = samba.profile(smb.conf)
        if profile is None:
            raise RuntimeError("smbstatus --profile gave no counts")
        profiles.append(profile)
        return []

    @staticmethod
    def _protocol_families() -> tuple[
        CounterMetricFamily, CounterMetricFamily, CounterMetricFamily, CounterMetricFamily
    ]:
        return (
            CounterMetricFamily(
                "speicher_protocol_requests",
                "Requests served, by protocol (smb, webdav, sftp, s3, web).",
                labels=["protocol"],
            ),
            CounterMetricFamily(
                "speicher_protocol_received_bytes",
                "Bytes received from clients (request bodies; SMB: whole requests).",
                labels=["protocol"],
            ),
            CounterMetricFamily(
                "speicher_protocol_sent_bytes",
                "Bytes sent to clients (response bodies; SMB: whole answers).",
                labels=["protocol"],
            ),
            CounterMetricFamily(
                "speicher_protocol_errors",
                "Requests answered with an error, by whose it is: client (HTTP 4xx, SFTP "
                "statuses such as no such file) or server (HTTP 5xx, SFTP failure). Not "
                "counted for SMB (smbd does not count failed calls).",
                labels=["protocol", "kind"],
            ),
        )
