"""Replication between two real daemons over HTTPS, against a plain ``btrfs send | btrfs
receive`` pipe between the same two pools.

    sudo .venv/bin/python bench/replication_daemons.py [--gib 4] [--change-percent 1]

Two daemons (``tests/speicher_testing.Daemon``), each with a single-disk pool on a virtual
disk, are paired. A share of ``--gib`` GiB of incompressible files (as bench/replication.py)
is snapshotted and sent in full: by the pipe (into a folder of the target's pool), then by
``POST /replication/targets/{name}/send`` with the stream as it goes by default (zstd on the
wire) and with ``compress: false``. Then ``--change-percent`` of the bytes are rewritten, a
second snapshot is taken, and the increment is sent both ways. Caches are dropped and the
pools settled before each run. Printed: MB/s of the stream (not of the wire) and Speicher's
ratio to the pipe (issue 11's target: at least 90 %). Everything is removed afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from file_protocols import settle

from replication import change, drop_caches, fill
from replication import pipe as plain_pipe
from speicher.system import btrfs
from speicher_testing import Daemon

MiB = 1024 * 1024


def pool(daemon: Daemon, gib: int) -> Path:
    size = f"{gib * 3 + 3}G"
    assert daemon.api.post("/disks/virtual", json={"name": "b1", "size": size}).status_code == 201
    job = daemon.api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["b1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    return daemon.mount_root / "tank"


def snapshot(daemon: Daemon) -> str:
    r = daemon.api.post("/shares/data/snapshots", json={})
    assert r.status_code == 201, r.text
    time.sleep(1.1)
    name: str = r.json()["name"]
    return name


def pipe(snapshot: Path, into: Path, parent: Path | None) -> float:
    settle()
    return plain_pipe(snapshot, into, parent)  # it drops the caches first


def speicher(source: Daemon, snap: str, compress: bool) -> tuple[float, dict[str, Any]]:
    """Seconds from the request to the job's end (its own ``finished_at``), then a sync."""
    settle()
    drop_caches()
    t0 = time.time()
    r = source.api.post(
        "/replication/targets/target/send",
        json={"share": "data", "snapshot": snap, "compress": compress},
    )
    assert r.status_code == 202, r.text
    # polling every 20 ms all along (as this did until 2026-12-07) cost the source daemon and
    # this process about a CPU-second per 2 GiB sent, a tenth of the two cores the replication
    # needs; so only the first second (a small increment ends in it) and the last tenth of the
    # bytes are polled every 20 ms, the rest every half second, as the CLI does. The end must
    # be seen soon: the sync after it would otherwise find some of the writing done.
    job = source.wait_job(
        r.json(),
        timeout=3600,
        poll=lambda job: 0.02 if time.time() - t0 < 1 or job["progress"] >= 90 else 0.5,
    )
    assert job["state"] == "succeeded", job
    ended = dt.datetime.fromisoformat(job["finished_at"]).timestamp()
    synced = time.perf_counter()
    os.sync()
    return ended - t0 + time.perf_counter() - synced, job


def stream_bytes(job: dict[str, Any]) -> int:
    return int(job["message"].rsplit(", ", 1)[1].split()[0].replace(",", ""))


def forget(target_pool: Path, snap: str) -> None:
    """Remove the replica ``snap`` from the target, so the next send sends it again."""
    folder = target_pool / ".replicas" / "source" / "data" / snap
    btrfs.subvolume_delete(folder / snap)
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=int, default=4)
    parser.add_argument("--change-percent", type=float, default=1.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs, two daemons)")
    rows = []
    source = Daemon(Path(tempfile.mkdtemp(prefix="speicher-replbench-a-", dir="/tmp")))
    target = Daemon(Path(tempfile.mkdtemp(prefix="speicher-replbench-b-", dir="/tmp")))
    try:
        source.start()
        target.start()
        source.use_token()
        target.use_token()
        src, dst = pool(source, args.gib), pool(target, args.gib)
        r = source.api.post("/shares", json={"name": "data", "pool": "tank"})
        assert r.status_code == 201, r.text
        code = target.api.post("/replication/pairings", json={"name": "source"}).json()["code"]
        body = {"name": "target", "url": target.https_url, "code": code}
        assert source.api.post("/replication/targets", json=body).status_code == 201
        fill(src / "data", args.gib)
        first = snapshot(source)
        snaps = src / ".snapshots" / "data"
        t_pipe = pipe(snaps / first, dst / "pipe", None)
        t_plain, job = speicher(source, first, compress=False)
        forget(dst, first)
        t_zstd, _ = speicher(source, first, compress=True)
        rows.append(("full", stream_bytes(job), t_pipe, t_plain, t_zstd))
        change(src / "data", args.change_percent)
        second = snapshot(source)
        t_pipe = pipe(snaps / second, dst / "pipe", snaps / first)
        t_plain, job = speicher(source, second, compress=False)
        forget(dst, second)
        t_zstd, _ = speicher(source, second, compress=True)
        label = f"increment ({args.change_percent:g} %)"
        rows.append((label, stream_bytes(job), t_pipe, t_plain, t_zstd))
    finally:
        source.cleanup()
        target.cleanup()
    print("| stream | bytes | pipe MB/s | Speicher MB/s, plain / zstd | Speicher / pipe |")
    print("|---|---|---|---|---|")
    for label, count, t_pipe, t_plain, t_zstd in rows:
        print(f"| {label} | {count:,} | {count / t_pipe / 1e6:,.0f} | "
              f"{count / t_plain / 1e6:,.0f} / {count / t_zstd / 1e6:,.0f} | "
              f"{t_pipe / t_plain:.0%} / {t_pipe / t_zstd:.0%} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
