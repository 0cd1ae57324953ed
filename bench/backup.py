"""A restic backup by a Speicher backup task, against restic run by hand on the same data.

    sudo .venv/bin/python bench/backup.py [--gib 4] [--rounds 2]

One daemon (``tests/speicher_testing.Daemon``) with a single-disk pool on a virtual disk and
a share of ``--gib`` GiB: 64 MiB files of fresh random bytes (restic deduplicates, so data
that repeats would measure nothing) and 1000 small files. Each round, alternating who goes
first: ``POST /backup/tasks/{id}/run`` into a new local repository (retention and check
off, so the run is the backup: snapshot, restic, snapshot deleted), timed from the request
to the job's end; and by hand, ``btrfs subvolume snapshot -r`` of the share and ``restic
backup .`` in it into another new repository. Caches are dropped and the pool settled before
each. Printed: MB/s of the share's bytes and Speicher's ratio to the hand run (issue 11's
target: at least 95 %). The repositories are on the host's disk, in the bench's folder;
everything is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from file_protocols import settle

from replication import drop_caches
from speicher.system import btrfs
from speicher_testing import Daemon

MiB = 1024 * 1024
FILE = 64 * MiB


def fill(share: Path, gib: int) -> int:
    total = 0
    for i in range(gib * 1024 * MiB // FILE):
        with (share / f"big-{i:04d}.bin").open("wb") as fh:
            for _ in range(FILE // (8 * MiB)):
                fh.write(os.urandom(8 * MiB))
        total += FILE
    for i in range(1000):
        data = os.urandom(1 + i * 37 % 9000)
        (share / f"small-{i:04d}.txt").write_bytes(data)
        total += len(data)
    return total


def by_task(daemon: Daemon, work: Path, round_: int) -> float:
    repo = work / f"repo-task-{round_}"
    target = {"name": f"t{round_}", "kind": "local", "path": str(repo)}
    r = daemon.api.post("/backup/targets", json=target)
    assert r.status_code == 201, r.text
    body = {"share": "data", "target": f"t{round_}", "schedule": "0 1 1 1 *", "keep_daily": 0,
            "keep_weekly": 0, "keep_monthly": 0, "check_days": 0}  # fmt: skip
    r = daemon.api.post("/backup/tasks", json=body)
    assert r.status_code == 201, r.text
    task = r.json()["id"]
    settle()
    drop_caches()
    t0 = time.perf_counter()
    r = daemon.api.post(f"/backup/tasks/{task}/run")
    assert r.status_code == 202, r.text
    job = daemon.wait_job(r.json(), timeout=3600, poll=0.05)
    os.sync()
    seconds = time.perf_counter() - t0
    assert job["state"] == "succeeded", job
    print(f"  task:    {seconds:6.1f} s  {job['message']}", flush=True)
    daemon.api.delete(f"/backup/tasks/{task}")
    daemon.api.delete(f"/backup/targets/t{round_}")
    shutil.rmtree(repo)
    return seconds


def by_hand(share: Path, work: Path, round_: int) -> float:
    repo = work / f"repo-hand-{round_}"
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "RESTIC_PASSWORD": "bench",
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_CACHE_DIR": str(work / "hand-cache"),
    }
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    frozen = share.parent / ".bench-frozen"
    settle()
    drop_caches()
    t0 = time.perf_counter()
    btrfs.snapshot(share, frozen)
    subprocess.run(["restic", "backup", "--json", "."], env=env, cwd=frozen, check=True,
                   capture_output=True)  # fmt: skip
    btrfs.subvolume_delete(frozen)
    os.sync()
    seconds = time.perf_counter() - t0
    print(f"  by hand: {seconds:6.1f} s", flush=True)
    shutil.rmtree(repo)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs, a daemon)")
    work = Path(tempfile.mkdtemp(prefix="speicher-backupbench-", dir="/tmp"))
    daemon = Daemon(work / "daemon")
    daemon.base.mkdir()
    daemon.env["SPEICHER_MONITOR_INTERVAL"] = "60"  # the default; the tests' 2 s competes for CPU
    try:
        daemon.start()
        daemon.use_token()
        size = f"{args.gib * 2 + 3}G"
        r = daemon.api.post("/disks/virtual", json={"name": "b1", "size": size})
        assert r.status_code == 201, r.text
        job = daemon.api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["b1"]})
        assert daemon.wait_job(job.json())["state"] == "succeeded"
        r = daemon.api.post("/shares", json={"name": "data", "pool": "tank"})
        assert r.status_code == 201, r.text
        share = Path(r.json()["path"])
        total = fill(share, args.gib)
        task_times, hand_times = [], []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}", flush=True)
            if round_ % 2 == 0:
                task_times.append(by_task(daemon, work, round_))
                hand_times.append(by_hand(share, work, round_))
            else:
                hand_times.append(by_hand(share, work, round_))
                task_times.append(by_task(daemon, work, round_))
        task, hand = min(task_times), min(hand_times)
        mb = total / 1e6
        print(f"\n{total / 2**30:.2f} GiB, best of {args.rounds}")
        print(f"| restic by hand | {mb / hand:6.0f} MB/s | {hand:6.1f} s |")
        print(f"| backup task    | {mb / task:6.0f} MB/s | {task:6.1f} s | {hand / task:.0%} |")
    finally:
        daemon.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
