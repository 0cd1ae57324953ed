"""``metrics/collector.py`` without a daemon: a source that fails (smbstatus, a pool's device
stats, a share's snapshot folder, the database) is skipped, logged and named in
``speicher_scrape_error``; everything else is still answered."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metrics_helpers import NOW, answering, failing, scrape, services
from speicher.protection.models import DiskHealthInfo
from speicher.storage.models import PoolDiskInfo, PoolInfo
from speicher.system import btrfs, samba
from speicher.system.run import CommandError

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def pool(name: str, health: str = "ok") -> PoolInfo:
    disk = PoolDiskInfo(
        disk=f"{name}-d1", device=f"/dev/{name}", devid=1, size=1, used=1, state="online"
    )
    return PoolInfo(
        name=name,
        uuid="u",
        profile="single",
        state="ready",
        health=health,
        mountpoint=f"/srv/{name}",
        size=1000,
        used=400,
        free=600,
        disks=[disk],
        shares=[],
        created_at=NOW,
    )


def share(name: str, pool: str, quota: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(name=name, pool=pool, state="ready", used=123, quota=quota)


def task(number: int, ran: dt.datetime | None) -> SimpleNamespace:
    """A replication task that last ran at ``ran`` and last succeeded 10 minutes before, or
    never ran and failed twice."""
    ok = ran - dt.timedelta(minutes=10) if ran else None
    return SimpleNamespace(
        id=number,
        share="docs",
        target="site-b",
        last_run_at=ran,
        last_ok_at=ok,
        replica_age_seconds=600.0 if ran else None,
        failures=0 if ran else 2,
    )


def errors_of(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["source"]: v
        for (name, labels), v in samples.items()
        if name == "speicher_scrape_error"
    }


@pytest.fixture
def smb_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samba, "status", answering(samba.Status()))
    monkeypatch.setattr(samba, "profile", answering(samba.Profile(7, 70, 700)))


def test_everything_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smb_ok: None) -> None:
    monkeypatch.setattr(btrfs, "device_stats", answering({"/dev/tank": {"write_io_errs": 2}}))
    snaps = tmp_path / "mnt" / "tank" / ".snapshots" / "docs"
    for name in ("@GMT-2026.12.03-10.00.00", "@GMT-2026.12.03-11.00.00", "not-a-snapshot"):
        (snaps / name).mkdir(parents=True)
    fake = services(
        tmp_path,
        pools=SimpleNamespace(list=answering([pool("tank")]), mountpoint=lambda n: tmp_path / n),
        shares=SimpleNamespace(list=answering([share("docs", "tank", 5000), share("web", "tank")])),
        replication_tasks=SimpleNamespace(list=answering([task(3, NOW), task(4, None)])),
    )
    samples = parse(scrape(fake))
    assert errors_of(samples) and set(errors_of(samples).values()) == {0.0}
    assert samples[("speicher_pool_used_bytes", (("pool", "tank"),))] == 400
    key = (("disk", "tank-d1"), ("pool", "tank"), ("type", "write_io"))
    assert samples[("speicher_pool_device_errors_total", key)] == 2
    docs = (("pool", "tank"), ("share", "docs"))
    assert samples[("speicher_share_quota_bytes", docs)] == 5000
    assert ("speicher_share_quota_bytes", (("pool", "tank"), ("share", "web"))) not in samples
    assert samples[("speicher_share_snapshots", docs)] == 2
    assert samples[("speicher_share_newest_snapshot_age_seconds", docs)] == 3600
    assert samples[("speicher_protocol_requests_total", (("protocol", "smb"),))] == 7
    assert samples[("speicher_smb_sessions", ())] == 0
    three = (("share", "docs"), ("target", "site-b"), ("task", "3"))
    assert samples[("speicher_replication_last_success_timestamp_seconds", three)] == (
        NOW.timestamp() - 600
    )
    assert samples[("speicher_replication_last_success_age_seconds", three)] == 600
    assert samples[("speicher_replication_last_run_timestamp_seconds", three)] == NOW.timestamp()
    four = (("share", "docs"), ("target", "site-b"), ("task", "4"))
    assert samples[("speicher_replication_failures", four)] == 2
    assert ("speicher_replication_last_success_age_seconds", four) not in samples


def test_a_failing_source_is_skipped_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """smbstatus fails, the database is gone, the backup tasks cannot be read, one of two
    pools' device stats fail: the rest is answered, each failure is logged."""
    monkeypatch.setattr(samba, "status", failing("smbstatus: not found"))
    monkeypatch.setattr(samba, "profile", answering(None))

    def stats(mountpoint: Path) -> dict[str, dict[str, int]]:
        if mountpoint.name == "broken":
            raise CommandError(["btrfs"], 1, "", "no such device")
        return {"/dev/tank": {"write_io_errs": 0}}

    monkeypatch.setattr(btrfs, "device_stats", stats)
    pools = [pool("broken", "degraded"), pool("tank")]
    fake = services(
        tmp_path,
        pools=SimpleNamespace(list=answering(pools), mountpoint=lambda n: tmp_path / n),
        db=SimpleNamespace(session=failing("database is locked")),
        backup_tasks=SimpleNamespace(list=failing("no such table")),
        health=SimpleNamespace(
            report=answering(
                [
                    DiskHealthInfo(
                        pool="tank",
                        disk="tank-d1",
                        device="/dev/sda",
                        state="ok",
                        counters=None,
                        smart="passed",
                        temperature_celsius=41,
                        problem=None,
                        checked_at=NOW,
                    )
                ]
            )
        ),
    )
    with caplog.at_level(logging.WARNING, logger="speicher.metrics.collector"):
        text = scrape(fake)
    samples = parse(text)
    failed = {source for source, v in errors_of(samples).items() if v == 1}
    assert failed == {"devices", "scrubs", "jobs", "smb", "smb_profile", "backup"}
    assert errors_of(samples)["pools"] == 0
    for name in ("devices", "scrubs", "jobs", "smb", "smb_profile", "backup"):
        assert f"reading {name}" in caplog.text, name
    assert "Traceback" not in text
    # what could be read is there
    assert samples[("speicher_pool_used_bytes", (("pool", "tank"),))] == 400
    assert samples[("speicher_pool_health", (("health", "degraded"), ("pool", "broken")))] == 1
    tank = (("disk", "tank-d1"), ("pool", "tank"), ("type", "write_io"))
    assert samples[("speicher_pool_device_errors_total", tank)] == 0
    assert not any(
        n == "speicher_pool_device_errors_total" and ("pool", "broken") in labels
        for n, labels in samples
    )
    assert (
        samples[("speicher_disk_temperature_celsius", (("disk", "tank-d1"), ("pool", "tank")))]
        == 41
    )
    assert samples[("speicher_disk_smart_passed", (("disk", "tank-d1"), ("pool", "tank")))] == 1
    assert samples[("speicher_smb_up", ())] == 1
    assert ("speicher_smb_sessions", ()) not in samples
    assert ("speicher_protocol_requests_total", (("protocol", "webdav"),)) in samples


def test_an_unavailable_pool_has_no_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smb_ok: None
) -> None:
    """Not mounted, its size is unknown: no 0 that a 'pool full' alert would divide by."""
    fake = services(
        tmp_path,
        pools=SimpleNamespace(
            list=answering([pool("gone", "unavailable")]), mountpoint=lambda n: tmp_path / n
        ),
    )
    samples = parse(scrape(fake))
    assert samples[("speicher_pool_health", (("health", "unavailable"), ("pool", "gone")))] == 1
    assert samples[("speicher_pool_healthy", (("pool", "gone"),))] == 0
    assert not any(n == "speicher_pool_size_bytes" for n, _ in samples)
    assert set(errors_of(samples).values()) == {0.0}


def test_an_unreadable_snapshot_folder_skips_only_that_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smb_ok: None
) -> None:
    (tmp_path / "mnt" / "tank" / ".snapshots").mkdir(parents=True)
    (tmp_path / "mnt" / "tank" / ".snapshots" / "odd").write_text("a file, not a folder")
    (tmp_path / "mnt" / "tank" / ".snapshots" / "docs").symlink_to("loop")
    (tmp_path / "mnt" / "tank" / ".snapshots" / "loop").symlink_to("docs")
    fake = services(
        tmp_path,
        shares=SimpleNamespace(
            list=answering([share("docs", "tank"), share("odd", "tank"), share("new", "tank")])
        ),
    )
    samples = parse(scrape(fake))
    assert errors_of(samples)["shares"] == 1
    assert ("speicher_share_snapshots", (("pool", "tank"), ("share", "docs"))) not in samples
    assert samples[("speicher_share_snapshots", (("pool", "tank"), ("share", "odd")))] == 0
    assert samples[("speicher_share_snapshots", (("pool", "tank"), ("share", "new")))] == 0
