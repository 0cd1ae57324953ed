"""The replication engine against a plain ``btrfs send | btrfs receive`` pipe, on two pools.

    sudo .venv/bin/python bench/replication.py [--gib 4] [--change-percent 1]

Two btrfs filesystems on loop devices (files in /var/tmp, so the page cache and the disk are
those of the machine). A share of ``--gib`` GiB of incompressible files (64 MiB each, plus
1,000 small ones) is snapshotted, and sent in full twice: by the shell pipe, and by
``speicher.replication.stream`` (``Sender`` into ``Receiver``, with its count and hash). Then
``--change-percent`` of the bytes are rewritten, a second snapshot is taken, and the increment
is sent both ways. Caches are dropped before each run. Printed: MB/s of each, and the engine's
ratio to the pipe (issue 11's target: at least 90 %). Everything is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "replication"))

from loopfs import filesystem

from speicher.replication.stream import Receiver, Sender
from speicher.system import btrfs

MiB = 1024 * 1024
FILE = 64 * MiB


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def pipe(
    snapshot: Path, into: Path, parent: Path | None, cores: tuple[str, str] | None = None
) -> float:
    """``btrfs send | btrfs receive``; ``cores``: the CPUs each end runs on (taskset)."""
    into.mkdir(parents=True, exist_ok=True)
    send = ["btrfs", "send", "-q", *(["-p", str(parent)] if parent else []), str(snapshot)]
    receive = ["btrfs", "receive", "-e", str(into)]
    if cores is not None:
        send, receive = ["taskset", "-c", cores[0], *send], ["taskset", "-c", cores[1], *receive]
    drop_caches()
    t0 = time.perf_counter()
    sender = subprocess.Popen(send, stdout=subprocess.PIPE)
    subprocess.run(receive, stdin=sender.stdout, check=True, capture_output=True)
    assert sender.wait() == 0
    sh("sync")
    return time.perf_counter() - t0


def engine(snapshot: Path, into: Path, parent: Path | None) -> tuple[float, int]:
    drop_caches()
    t0 = time.perf_counter()
    with Sender(snapshot, parent) as sender, Receiver(into) as receiver:
        for piece in sender.pieces():
            receiver.feed(piece)
        assert sender.sent is not None
        receiver.finish(sender.sent)
    sh("sync")
    return time.perf_counter() - t0, sender.sent.bytes


def fill(share: Path, gib: int) -> None:
    block = os.urandom(FILE)
    for i in range(gib * 1024 * MiB // FILE):
        (share / f"big-{i:04d}.bin").write_bytes(block[i % 61 :] + block[: i % 61])
    for i in range(1000):
        (share / f"small-{i:04d}.txt").write_bytes(os.urandom(1 + i * 37 % 9000))


def change(share: Path, percent: float) -> None:
    """Rewrite ``percent`` of the bytes: a 1 MiB range in as many big files as it takes."""
    files = sorted(share.glob("big-*.bin"))
    wanted = int(len(files) * FILE * percent / 100)
    done = 0
    for i, path in enumerate(files):
        if done >= wanted:
            break
        with path.open("r+b") as fh:
            fh.seek((i * 7 % 60) * MiB)
            fh.write(os.urandom(MiB))
        done += MiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=int, default=4)
    parser.add_argument("--change-percent", type=float, default=1.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs)")
    size = (args.gib * 3 + 2) * 1024 * MiB
    rows = []
    with tempfile.TemporaryDirectory(prefix="speicher-replbench-", dir="/var/tmp") as tmp:
        base = Path(tmp)
        with filesystem(base, "src", size) as src, filesystem(base, "dst", size) as dst:
            share = src / "docs"
            btrfs.subvolume_create(share)
            fill(share, args.gib)
            (src / ".snapshots").mkdir()
            first = src / ".snapshots" / "@GMT-2026.12.01-10.00.00"
            btrfs.snapshot(share, first)
            t_pipe = pipe(first, dst / "pipe", None)
            t_engine, full = engine(first, dst / "engine", None)
            rows.append(("full", full, t_pipe, t_engine))
            change(share, args.change_percent)
            second = src / ".snapshots" / "@GMT-2026.12.01-11.00.00"
            btrfs.snapshot(share, second)
            t_pipe = pipe(second, dst / "pipe", first)
            t_engine, increment = engine(second, dst / "engine", first)
            rows.append((f"increment ({args.change_percent:g} %)", increment, t_pipe, t_engine))
            for folder in (dst / "pipe", dst / "engine"):
                for sub in sorted(folder.rglob("@GMT-*"), reverse=True):
                    if btrfs.is_subvolume(sub):
                        btrfs.subvolume_delete(sub)
            for snap in (second, first):
                btrfs.subvolume_delete(snap)
            btrfs.subvolume_delete(share)
    print("| stream | bytes | pipe MB/s | engine MB/s | engine / pipe |")
    print("|---|---|---|---|---|")
    for label, count, t_pipe, t_engine in rows:
        print(f"| {label} | {count:,} | {count / t_pipe / 1e6:,.0f} | "
              f"{count / t_engine / 1e6:,.0f} | {t_pipe / t_engine:.0%} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
