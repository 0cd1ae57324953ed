"""The rules around scrubs and disk health, without a machine: which files a scrub names (the
damaged-file reads faked, except for the symlink rules, on real files), how
its result reads, when counters mean a failing disk, and when the scheduler starts a scrub
(on a real SQLite database, with the clock passed in)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from speicher.config import Settings
from speicher.db import Database, Job, Pool, ScrubRun
from speicher.errors import Conflict, InvalidInput, OperationFailed
from speicher.events import EventService
from speicher.hooks import Hooks
from speicher.jobs import JobInfo, JobService
from speicher.protection.health import failing_reason, grown
from speicher.protection.scrub import (
    Outcome,
    ScrubService,
    damaged_files,
    lost_stripes,
    read_fails,
    summary,
    suspects_of,
    unreadable_blocks,
    unreadable_files,
)
from speicher.storage import DiskService, PoolService
from speicher.system import btrfs

T = dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


# -- which files a scrub names -------------------------------------------------------------------


# six files of 300 KiB, one after the other from logical 13631488 (as on a one-disk pool of
# kernel 6.18): the third (inode 259) and fourth (260) damaged, one block each; the kernel
# logged the stripe starts 14352384 and 14548992, and named inode 259 for both
SECTOR = 4096
FILE = 300 * 1024
FIRST = 13631488
INODES = {257 + i: FIRST + i * FILE for i in range(6)}
BAD = {259: {163840}, 260: {40960}}  # file offsets whose block fails to read
KERNEL = [
    btrfs.ScrubErrorPath(14352384, "/dev/loop0", 256, 259, "f2", 106496),
    btrfs.ScrubErrorPath(14548992, "/dev/loop0", 256, 259, "f2", 303104),
]


def refs_of(start: int) -> dict[int, list[btrfs.InodeRef]]:
    """What ``logical-resolve -P`` says of each sector of the stripe at ``start``."""
    out: dict[int, list[btrfs.InodeRef]] = {}
    for address in range(start, start + btrfs.STRIPE_LEN, SECTOR):
        out[address] = [
            btrfs.InodeRef(inode, address - begin, 256)
            for inode, begin in INODES.items()
            if begin <= address < begin + FILE
        ]
    return out


def paths(root: int, inode: int) -> list[Path]:
    return [Path(f"/srv/six/docs/f{inode - 257}")] if root == 256 else []


def fake_read(path: Path, inode: int, offsets: set[int]) -> bool:
    return any(o - o % SECTOR in BAD.get(inode, set()) for o in offsets)


def test_the_stripe_is_searched_and_only_files_that_fail_to_read_are_named() -> None:
    errors = [
        btrfs.ScrubError(14352384, "/dev/loop0", corrected=False),
        btrfs.ScrubError(14548992, "/dev/loop0", corrected=False),
        btrfs.ScrubError(14548992, "/dev/loop0", corrected=False),  # another sector of it
        btrfs.ScrubError(300, "/dev/loop1", corrected=True),  # repaired: not lost
    ]
    starts = lost_stripes(errors)
    assert starts == [14352384, 14548992]
    stripes = {s: suspects_of(s, refs_of(s), KERNEL) for s in starts}
    # the second stripe holds the end of f2 and the start of f3: both are suspects
    assert stripes[14548992] == {
        (256, 259): {303104},
        (256, 260): set(range(0, 61440, SECTOR)),  # its first 15 blocks
    }
    assert damaged_files(stripes, paths, fake_read) == ["/srv/six/docs/f2", "/srv/six/docs/f3"]
    # what the kernel alone says, and the old code named: f2, twice
    assert {d.path for d in KERNEL} == {"f2"}


def test_a_stripe_no_file_fails_to_read_is_named_by_its_address() -> None:
    stripes = {1048576: suspects_of(1048576, {1048576: []}, []), 14352384: {}}
    stripes[14352384] = suspects_of(14352384, refs_of(14352384), [])
    assert damaged_files(stripes, paths, lambda *_: False) == [
        "logical address 1048576 (metadata, or data no file uses any more)",
        "logical address 14352384 (metadata, or data no file uses any more)",
    ]


def test_a_file_in_a_snapshot_too_each_name_once() -> None:
    refs = {8192: [btrfs.InodeRef(257, 0, 256), btrfs.InodeRef(257, 0, 258)]}
    stripes = {0: suspects_of(0, refs, []), 65536: suspects_of(65536, {65536: refs[8192]}, [])}

    def names(root: int, inode: int) -> list[Path]:
        return [Path({256: "/p/docs/a.pdf", 258: "/p/.snapshots/docs/x/a.pdf"}[root])]

    assert damaged_files(stripes, names, lambda *_: True) == [
        "/p/docs/a.pdf",
        "/p/.snapshots/docs/x/a.pdf",
    ]


def test_no_uncorrectable_errors_no_stripes() -> None:
    assert lost_stripes([btrfs.ScrubError(1, "/dev/loop1", corrected=True)]) == []
    assert damaged_files({}, paths, fake_read) == []


def test_reading_follows_no_symlink_and_checks_the_inode(tmp_path: Path) -> None:
    (tmp_path / "share").mkdir()
    real = tmp_path / "share" / "real.bin"
    real.write_bytes(b"x" * 10000)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "real.bin").write_bytes(b"y" * 10000)
    (tmp_path / "share" / "link").symlink_to(outside)
    (tmp_path / "share" / "file link").symlink_to(real)
    unreadable = unreadable_blocks(tmp_path, SECTOR)
    ino = real.stat().st_ino
    assert unreadable(real, ino, {0, 8192}) is False  # readable: not damaged
    # a symlink anywhere on the way is not followed, whatever it points at
    assert unreadable(tmp_path / "share" / "link" / "real.bin", ino, {0}) is False
    assert unreadable(tmp_path / "share" / "file link", ino, {0}) is False
    assert unreadable(tmp_path / "share" / "real.bin", ino + 1, {0}) is False  # another file
    assert unreadable(Path("/etc/passwd"), ino, {0}) is False  # not beneath the pool
    assert unreadable_files(tmp_path) == []  # everything reads
    fd = os.open(real, os.O_RDONLY)
    try:
        assert read_fails(fd, [(0, 10000), (20000, 4096)]) is False  # past the end: no error
    finally:
        os.close(fd)


def test_summary_says_what_was_checked_and_found() -> None:
    clean = btrfs.ScrubStats("finished", data_bytes=3 * 1024**3)
    assert summary(Outcome(clean, [], {}, [])) == "3.0G checked, no errors"
    fixed = btrfs.ScrubStats("finished", data_bytes=1024**2, csum_errors=2, corrected=2)
    assert summary(Outcome(fixed, [], {}, ["d2"])) == (
        "1.0M checked, 2 errors found, 2 corrected (missing, not checked: d2)"
    )
    lost = btrfs.ScrubStats("finished", csum_errors=1, uncorrectable=1)
    text = summary(Outcome(lost, [], {}, []))
    assert text.endswith("1 error found, 0 corrected, 1 uncorrectable")


# -- when a disk is failing --------------------------------------------------------------------


def test_counters_grow_only_after_a_first_reading() -> None:
    first = {"write_io_errs": 3, "corruption_errs": 0}
    assert grown(None, first) == {}  # old errors of a past life are the baseline
    assert grown(first, first) == {}
    assert grown(first, {"write_io_errs": 3, "corruption_errs": 2}) == {"corruption_errs": 2}
    assert grown(first, {"write_io_errs": 0, "corruption_errs": 0}) == {}  # reset


def test_failing_when_smart_fails_or_io_errors_are_recent() -> None:
    hold = dt.timedelta(hours=24)
    assert failing_reason(None, "", None, T, hold) is None
    assert failing_reason("passed", "ok", None, T, hold) is None
    assert failing_reason("unknown", "asleep", None, T, hold) is None
    reason = failing_reason("failed", "FAILED!", None, T, hold)
    assert reason is not None and "SMART" in reason
    assert failing_reason(None, "", T - dt.timedelta(hours=23), T, hold) is not None
    assert failing_reason(None, "", T - dt.timedelta(hours=24), T, hold) is None


# -- the schedule ----------------------------------------------------------------------------


@dataclass
class World:
    db: Database
    events: EventService
    scrubs: ScrubService
    started: list[tuple[str, dt.datetime]]
    busy: set[str]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    db.migrate()
    settings = Settings(state_dir=tmp_path, mount_root=tmp_path / "mnt")
    events = EventService(db)
    jobs = JobService(db)
    disks = DiskService(settings, db, events)
    pools = PoolService(settings, db, events, jobs, disks, Hooks())
    scrubs = ScrubService(settings, db, events, jobs, pools)
    w = World(db, events, scrubs, [], set())

    def start(pool: str, scheduled: bool = False, now: dt.datetime | None = None) -> JobInfo:
        # what the real start does to the schedule: the start time is the last scrub
        if pool in w.busy:
            raise Conflict(f"pool '{pool}' is busy")
        if pool == "broken":
            raise OperationFailed("btrfs is broken")
        assert scheduled and now is not None
        with db.session() as s:
            s.scalars(select(Pool).where(Pool.name == pool)).one().last_scrub_at = now
        w.started.append((pool, now))
        return JobInfo(
            id=len(w.started),
            kind="pool.scrub",
            target=pool,
            state="running",
            progress=0,
            message="",
            error="",
            created_at=now,
            finished_at=None,
        )

    monkeypatch.setattr(scrubs, "start", start)
    with db.session() as s:
        s.add(Pool(name="tank", profile="raid1", state="ready", created_at=T))  # monthly
        s.add(Pool(name="new", profile="single", state="creating", created_at=T))
        s.add(Pool(name="off", profile="single", state="ready", created_at=T, scrub_schedule=""))
    try:
        yield w
    finally:
        db.close()


def test_monthly_by_default_and_once_after_downtime(world: World) -> None:
    first = dt.datetime(2026, 2, 1, 3, 0, tzinfo=dt.UTC)
    assert world.scrubs.get_schedule("tank").schedule == "0 3 1 * *"
    assert world.scrubs.get_schedule("tank").next_scrub_at is not None
    world.scrubs.run_due(first - dt.timedelta(minutes=1))
    assert world.started == []
    world.scrubs.run_due(first)
    world.scrubs.run_due(first + dt.timedelta(minutes=2))
    assert world.started == [("tank", first)]
    # down from March to May: one catch-up, not three
    back = dt.datetime(2026, 5, 10, 9, 0, tzinfo=dt.UTC)
    for minutes in range(0, 10, 2):
        world.scrubs.run_due(back + dt.timedelta(minutes=minutes))
    assert world.started == [("tank", first), ("tank", back)]


def test_a_busy_pool_is_tried_again_a_failure_is_told(world: World) -> None:
    first = dt.datetime(2026, 2, 1, 3, 0, tzinfo=dt.UTC)
    world.busy.add("tank")
    world.scrubs.run_due(first)
    assert world.started == []
    world.busy.clear()
    world.scrubs.run_due(first + dt.timedelta(minutes=1))
    assert world.started == [("tank", first + dt.timedelta(minutes=1))]
    with world.db.session() as s:
        s.add(Pool(name="broken", profile="single", state="ready", created_at=T))
    world.scrubs.run_due(first + dt.timedelta(minutes=2))
    failed = world.events.list(kind="scrub.failed")
    assert [(e.subject, e.level) for e in failed] == [("broken", "error")]


def test_setting_the_schedule(world: World) -> None:
    info = world.scrubs.set_schedule("tank", "  0 4   * * 0 ")
    assert info.schedule == "0 4 * * 0"
    assert info.next_scrub_at is not None and info.next_scrub_at.weekday() == 6
    off = world.scrubs.set_schedule("tank", "")
    assert off.schedule == "" and off.next_scrub_at is None
    with pytest.raises(InvalidInput) as raised:
        world.scrubs.set_schedule("tank", "every sunday")
    assert raised.value.problems[0].field == "schedule"
    world.scrubs.run_due(dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert world.started == []  # neither tank (off now), nor "new" (creating), nor "off"


def test_a_scrub_the_daemon_stopped_during_is_failed(world: World) -> None:
    jobs = JobService(world.db)
    with world.db.session() as s:
        pool = s.scalars(select(Pool).where(Pool.name == "tank")).one()
        s.add(Job(id=7, kind="pool.scrub", target="tank", state="running"))
        s.add(ScrubRun(pool_id=pool.id, job_id=7, state="running"))
        s.add(ScrubRun(pool_id=pool.id, job_id=None, state="running", started_at=T))
    assert jobs.fail_interrupted() == 1  # what the daemon does at start
    scrubs = world.scrubs.list("tank")
    assert [(x.job_id, x.state) for x in scrubs] == [(None, "failed"), (7, "failed")]
    assert scrubs[1].message.startswith("interrupted")
    assert all(x.finished_at is not None for x in scrubs)
