"""Bit rot: bytes of one copy of a file change on a disk behind btrfs's back. A scrub finds
the bad block, repairs it from the other copy of the raid1 pool, and tells; the file reads
back intact. Where no good copy exists (a one-disk pool), the scrub names the damaged files.

The damage is done the way a failing disk would: garbage written straight into a virtual
disk's backing file at the physical offset of one copy of the file's first block. That
offset comes from btrfs's own tools: FIEMAP (``filefrag -v``) gives the block's btrfs
*logical* address, and ``btrfs-map-logical -l LOGICAL DEVICE`` maps it to each copy's
device and physical offset (a loop device's offset is the backing file's offset).

The kernel logs a bad block by the start of its 64 KiB scrub stripe, which lies in the file
before when files do not start on stripe boundaries; so files here have unaligned sizes, and
some of the damage sits in a file's first, partial stripe."""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system

BLOCK = 4096
STRIPE = 64 * 1024


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def drop_caches() -> None:
    """Forget cached file data, so reads go to the disks again."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def logical_address(path: Path) -> int:
    """btrfs's logical address of a file's first block: on btrfs, FIEMAP's "physical"
    offset is the logical address in the filesystem's chunk space."""
    out = subprocess.run(
        ["filefrag", "-v", str(path)], capture_output=True, text=True, check=True
    ).stdout
    blocksize = int(re.search(r"blocks of (\d+) bytes", out).group(1))  # type: ignore[union-attr]
    first = re.search(r"^\s*0:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*\d+:\s+\d+:(.*)$", out, re.M)
    assert first is not None, out
    assert "inline" not in first.group(2) and "encoded" not in first.group(2), out
    return int(first.group(1)) * blocksize


def logical_at(path: Path, offset: int) -> int:
    """btrfs's logical address of the block of ``path`` that holds byte ``offset``."""
    out = subprocess.run(
        ["filefrag", "-v", str(path)], capture_output=True, text=True, check=True
    ).stdout
    blocksize = int(re.search(r"blocks of (\d+) bytes", out).group(1))  # type: ignore[union-attr]
    block = offset // blocksize
    for m in re.finditer(
        r"^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*\d+:\s+\d+:(.*)$", out, re.M
    ):
        first, last, physical = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if first <= block <= last:
            assert "inline" not in m.group(4) and "encoded" not in m.group(4), out
            return (physical + block - first) * blocksize
    raise AssertionError(f"no block {block} in {out}")


def damage(path: Path, offset: int, disk: dict[str, Any]) -> int:
    """Rot the block of ``path`` holding byte ``offset`` on a one-disk pool; return its
    logical address."""
    logical = logical_at(path, offset)
    where = copies(logical, disk["device"])
    assert list(where) == [disk["device"]], where
    rot(disk["backing_file"], where[disk["device"]])
    return logical


def write_files(folder: Path, sizes: list[int]) -> list[Path]:
    folder.mkdir()
    files = []
    for i, size in enumerate(sizes):
        files.append(folder / f"file {i:03d}.bin")
        files[-1].write_bytes(os.urandom(size))
    os.sync()  # on disk, with their final addresses (but still cached: no drop_caches)
    return files


def copies(logical: int, device: str) -> dict[str, int]:
    """Each copy of the block at ``logical``: {device: physical offset}."""
    out = subprocess.run(
        # one block: by default it maps a node's worth (16 KiB), a line per 4 KiB extent piece,
        # and a later line would be another file's block
        ["btrfs-map-logical", "-l", str(logical), "-b", str(BLOCK), device],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, int] = {}
    for m in re.finditer(r"^mirror \d+ logical (\d+) physical (\d+) device (\S+)$", out, re.M):
        if int(m.group(1)) == logical:
            found.setdefault(m.group(3), int(m.group(2)))
    assert found, out
    return found


def read_at(image: str, offset: int, size: int = BLOCK) -> bytes:
    with open(image, "rb") as fh:
        fh.seek(offset)
        return fh.read(size)


def rot(image: str, offset: int, size: int = BLOCK) -> None:
    """Overwrite ``size`` bytes of a disk image, as a failing disk would."""
    fd = os.open(image, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes(range(256)) * (size // 256), offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def disks(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in daemon.api.get("/disks").json()}


def make_pool(daemon: Daemon, pool: str, profile: str, names: list[str], share: str) -> Path:
    api = daemon.api
    for name in names:
        r = api.post("/disks/virtual", json={"name": name, "size": "1G"})
        assert r.status_code == 201, r.text
    job = api.post("/pools", json={"name": pool, "profile": profile, "disks": names})
    assert job.status_code == 202, job.text
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    r = api.post("/shares", json={"name": share, "pool": pool})
    assert r.status_code == 201, r.text
    return Path(r.json()["path"])


def scrub(daemon: Daemon, pool: str) -> dict[str, Any]:
    job = daemon.api.post(f"/pools/{pool}/scrub")
    assert job.status_code == 202, job.text
    done = daemon.wait_job(job.json())
    assert done["state"] == "succeeded", done
    latest: dict[str, Any] = daemon.api.get(f"/pools/{pool}/scrubs").json()[0]
    assert latest["job_id"] == done["id"]
    return latest


def health_of(daemon: Daemon, pool: str) -> dict[str, dict[str, Any]]:
    return {d["disk"]: d for d in daemon.api.get("/disks/health").json() if d["pool"] == pool}


@pytest.fixture(scope="module")
def tank(daemon: Daemon) -> Iterator[Path]:
    """A raid1 pool over r1 and r2 with a share ``docs``."""
    yield make_pool(daemon, "tank", "raid1", ["r1", "r2"], "docs")


def test_bit_rot_is_found_corrected_and_told(daemon: Daemon, tank: Path) -> None:
    target = tank / "photo.raw"
    target.write_bytes(os.urandom(1024 * 1024))
    digest = sha256(target)
    drop_caches()
    # the health monitor has seen the disks clean: their counters are the baseline
    assert {d["state"] for d in health_of(daemon, "tank").values()} == {"ok"}

    by_name = disks(daemon)
    r1, r2 = by_name["r1"], by_name["r2"]
    logical = logical_address(target)
    where = copies(logical, r1["device"])
    assert set(where) == {r1["device"], r2["device"]}, where
    good = read_at(r1["backing_file"], where[r1["device"]])
    assert read_at(r2["backing_file"], where[r2["device"]]) == good
    rot(r2["backing_file"], where[r2["device"]])
    assert read_at(r2["backing_file"], where[r2["device"]]) != good
    drop_caches()  # and no read of the file now: a read would repair the block itself

    result = daemon.cli("pool", "scrub", "tank")
    assert "corrected" in result.stdout + result.stderr

    latest = daemon.api.get("/pools/tank/scrubs").json()[0]
    assert latest["state"] == "finished"
    assert latest["errors_found"] >= 1
    assert latest["errors_corrected"] >= 1
    assert latest["errors_uncorrectable"] == 0
    assert latest["uncorrectable_files"] == []
    assert latest["bytes_checked"] >= 2 * 1024 * 1024

    # repaired on the disk itself, from the good copy
    assert read_at(r2["backing_file"], where[r2["device"]]) == good
    drop_caches()
    assert sha256(target) == digest

    events = daemon.api.get("/events", params={"kind": "scrub."}).json()
    errors = [e for e in events if e["kind"] == "scrub.errors" and e["subject"] == "tank"]
    assert errors and errors[0]["level"] == "warning", events
    assert "r2" in errors[0]["message"]
    assert any(e["kind"] == "scrub.finished" for e in events)

    # the disk's counters show it; a corrected error does not degrade the pool
    health = health_of(daemon, "tank")
    assert health["r2"]["counters"]["corruption_errs"] >= 1
    assert health["r2"]["state"] == "errors"
    assert health["r1"]["counters"]["corruption_errs"] == 0
    assert health["r2"]["smart"] == "unsupported"
    disk_events = daemon.api.get("/events", params={"kind": "disk.errors"}).json()
    assert any(e["subject"] == "r2" and e["level"] == "warning" for e in disk_events)
    assert daemon.api.get("/pools/tank").json()["health"] == "ok"
    time.sleep(2.5)  # a monitor round later, still ok
    assert daemon.api.get("/pools/tank").json()["health"] == "ok"
    assert "r2" in daemon.cli("disk", "health").stdout


def test_without_a_good_copy_the_damaged_files_are_named(daemon: Daemon) -> None:
    share = make_pool(daemon, "solo", "single", ["s1"], "archive")
    intact = share / "intact.bin"
    intact.write_bytes(os.urandom(256 * 1024))
    digest = sha256(intact)
    damaged = share / "Bericht für März.pdf"
    damaged.write_bytes(os.urandom(256 * 1024))
    snapshot = share.parent / ".snapshots" / "archive-manual"
    subprocess.run(["btrfs", "subvolume", "snapshot", "-r", str(share), str(snapshot)], check=True)
    drop_caches()

    s1 = disks(daemon)["s1"]
    where = copies(logical_address(damaged), s1["device"])
    assert list(where) == [s1["device"]]
    rot(s1["backing_file"], where[s1["device"]])
    drop_caches()

    latest = scrub(daemon, "solo")
    assert latest["errors_found"] >= 1
    assert latest["errors_uncorrectable"] >= 1
    assert latest["errors_corrected"] == 0
    # the file, and the snapshot that shares its blocks
    assert sorted(latest["uncorrectable_files"]) == sorted(
        [str(damaged), str(snapshot / damaged.name)]
    )
    events = daemon.api.get("/events", params={"kind": "scrub.uncorrectable"}).json()
    assert events and events[0]["level"] == "error" and events[0]["subject"] == "solo"
    assert str(damaged) in events[0]["message"]
    listing = daemon.cli("pool", "scrubs", "solo").stdout
    assert "Bericht" in listing

    drop_caches()
    with pytest.raises(OSError):  # btrfs refuses to hand out data that fails its checksum
        damaged.read_bytes()
    assert sha256(intact) == digest
    subprocess.run(["btrfs", "subvolume", "delete", str(snapshot)], check=True)


def test_progress_one_scrub_at_a_time_and_the_schedule(daemon: Daemon, tank: Path) -> None:
    (tank / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    drop_caches()
    pool = daemon.api.get("/pools/tank").json()
    devinfo = Path("/sys/fs/btrfs") / pool["uuid"] / "devinfo"
    limits = [devinfo / str(d["devid"]) / "scrub_speed_max" for d in pool["disks"]]
    assert daemon.api.post("/disks/virtual", json={"name": "r3", "size": "1G"}).status_code == 201
    for limit in limits:  # slow the scrub down to 8 MiB/s per disk, to watch it
        limit.write_text(str(8 * 1024 * 1024))
    try:
        job = daemon.api.post("/pools/tank/scrub").json()
        again = daemon.api.post("/pools/tank/scrub")
        assert again.status_code == 409, again.text
        assert "scrubbed already" in again.json()["detail"]
        # a scrub holds the pool: no disk is replaced or removed under it
        r = daemon.api.post("/pools/tank/replace", json={"old": "r1", "new": "r3"})
        assert r.status_code == 409 and "busy" in r.json()["detail"], r.text
        seen = set()
        while job["state"] == "running":
            seen.add(round(job["progress"]))
            time.sleep(0.2)
            job = daemon.api.get(f"/jobs/{job['id']}").json()
        assert job["state"] == "succeeded", job
        assert any(0 < p < 100 for p in seen), (seen, job)
        assert "no errors" in job["message"]
    finally:
        for limit in limits:
            limit.write_text("0")

    assert daemon.api.delete("/disks/virtual/r3").status_code == 204
    scrubs = daemon.api.get("/pools/tank/scrubs").json()
    assert [s["state"] for s in scrubs[:2]] == ["finished", "finished"]
    assert scrubs[0]["id"] > scrubs[1]["id"]
    assert scrubs[0]["errors_found"] == 0
    assert scrubs[0]["bytes_checked"] >= 2 * 24 * 1024 * 1024

    # the schedule: monthly by default, settable, validated; `last` is the last start
    default = daemon.api.get("/pools/tank/scrub-schedule").json()
    assert default["schedule"] == "0 3 1 * *"
    assert default["last_scrub_at"] is not None and default["next_scrub_at"] is not None
    r = daemon.api.put("/pools/tank/scrub-schedule", json={"schedule": "every day"})
    assert r.status_code == 422, r.text
    weekly = daemon.cli("pool", "scrub-schedule", "tank", "0 4 * * 0").stdout
    assert "0 4 * * 0" in weekly
    bad = daemon.cli("pool", "scrub-schedule", "tank", "61 * * * *", check=False)
    assert bad.returncode == 2 and "schedule" in bad.stderr
    off = daemon.cli("pool", "scrub-schedule", "tank", "off", "--json").stdout
    assert '"schedule": ""' in off
    assert daemon.api.get("/pools/nope/scrubs").status_code == 404
    assert daemon.api.post("/pools/nope/scrub").status_code == 404


def damaged_names(daemon: Daemon, pool: str) -> tuple[dict[str, Any], str]:
    latest = scrub(daemon, pool)
    events = daemon.api.get("/events", params={"kind": "scrub.uncorrectable"}).json()
    mine = [e for e in events if e["subject"] == pool]
    assert mine and mine[0]["level"] == "error", events
    return latest, mine[0]["message"]


def assert_named_exactly(
    latest: dict[str, Any], message: str, damaged: list[Path], files: list[Path]
) -> None:
    assert sorted(latest["uncorrectable_files"]) == sorted(str(f) for f in damaged), latest
    for f in files:  # the message shows ten names
        if f not in damaged:
            assert str(f) not in message, (f, message)
        elif len(damaged) <= 10:
            assert str(f) in message, (f, message)
    drop_caches()
    for f in files:  # the named ones are the ones that fail to read, and only they
        if f in damaged:
            with pytest.raises(OSError):
                f.read_bytes()
        else:
            f.read_bytes()


def test_unaligned_files_the_damaged_ones_are_named(daemon: Daemon) -> None:
    """Six files of 300 KiB, the third and fourth damaged at their start: their first stripe
    begins in the file before, which the kernel names (and the scrub used to)."""
    share = make_pool(daemon, "six", "single", ["x1"], "reports")
    files = write_files(share / "q3", [300 * 1024] * 6)
    disk = disks(daemon)["x1"]
    damaged = files[2:4]
    starts = [damage(f, 0, disk) for f in damaged]
    # the case that went wrong: a damaged block whose stripe starts in the file before
    assert any(s % STRIPE for s in starts), starts
    latest, message = damaged_names(daemon, "six")
    assert latest["errors_uncorrectable"] == 2
    assert_named_exactly(latest, message, damaged, files)


def test_many_small_files_of_unaligned_sizes(daemon: Daemon) -> None:
    rnd = random.Random(7)  # noqa: S311 (sizes, not secrets)
    share = make_pool(daemon, "heap", "single", ["h1"], "heap")
    files = write_files(share / "many", [rnd.randint(4097, 90_000) for _ in range(300)])
    disk = disks(daemon)["h1"]
    damaged = rnd.sample(files, 4)
    for f in damaged:  # anywhere in the file, one block
        damage(f, rnd.randrange(f.stat().st_size), disk)
    latest, message = damaged_names(daemon, "heap")
    assert latest["errors_uncorrectable"] == 4
    assert_named_exactly(latest, message, damaged, files)


def test_more_damage_than_the_kernel_logs_reads_every_file(daemon: Daemon) -> None:
    """The kernel logs at most 10 bad blocks in 5 s; with more, every file is read. The walk
    follows no symlink."""
    share = make_pool(daemon, "wide", "single", ["w1"], "wide")
    files = write_files(share / "lots", [5000 + 7919 * i for i in range(40)])
    disk = disks(daemon)["w1"]
    damaged = files[3:40:3]  # 13 files
    for f in damaged:
        damage(f, f.stat().st_size // 2, disk)
    # were they followed, the damaged files would be named a second time, by these names
    (share / "folder link").symlink_to(share / "lots")
    (share / "file link").symlink_to(damaged[0])
    latest, message = damaged_names(daemon, "wide")
    assert latest["errors_uncorrectable"] == 13
    assert_named_exactly(latest, message, damaged, files)
    assert "reading every file" in daemon.log()
