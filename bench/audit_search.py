"""Audit log searches over a year of a busy office: 10 million generated records.

    .venv/bin/python bench/audit_search.py [--rows 10000000] [--queries 200] [--keep DIR]

The records are made by ``speicher.audit.store.AuditStore`` itself, into month files in a
folder on the host's disk (``/var/tmp``): 12 months, 50 users, 12 shares, folder trees three
levels deep with a few thousand names, operations in the mix of an office (mostly writes and
creates, some renames and deletes). Then ``--queries`` searches of the kinds the API offers,
each with a time range and a limit of 100 (what `speicher audit search` asks):

- one user, over a month or over the whole year;
- one share and a path prefix (a department's folder, or one file) over the year;
- one user in one share over a quarter;
- a time range alone (a day).

Printed: rows written per second, and p50, p95 and max of each kind of search (run as root,
the page cache is dropped before the searches: the first of each kind reads from the disk;
issue 12's target: p95 under one second).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from speicher.audit.records import Record
from speicher.audit.store import AuditStore, Query

YEAR = 2025
OPS = ["open_write"] * 50 + ["create"] * 25 + ["read"] * 10 + ["rename"] * 6 + ["delete"] * 6
OPS += ["mkdir", "rmdir", "set_permission"]


def tree(rng: random.Random) -> list[str]:
    paths = []
    for a in range(12):
        for b in range(15):
            for c in range(20):
                paths.append(f"/dept{a:02d}/project{b:02d}/file{c:03d}.docx")
    rng.shuffle(paths)
    return paths


def generate(store: AuditStore, rows: int, rng: random.Random) -> float:
    users = [f"user{i:02d}" for i in range(50)]
    shares = [f"share{i:02d}" for i in range(12)]
    paths = tree(rng)
    start = dt.datetime(YEAR, 1, 1, tzinfo=dt.UTC).timestamp()
    span = 365 * 86400
    step = span / rows
    began = time.monotonic()
    batch: list[Record] = []
    for i in range(rows):
        t = start + i * step + rng.random() * step
        op = rng.choice(OPS)
        path = rng.choice(paths)
        batch.append(
            Record(
                t,
                "file",
                rng.choice(("smb", "smb", "smb", "webdav", "sftp", "s3")),
                rng.choice(users),
                f"10.0.{rng.randrange(4)}.{rng.randrange(2, 250)}",
                rng.choice(shares),
                op,
                path,
                path.replace(".docx", ".old.docx") if op == "rename" else "",
                rng.randrange(1, 5_000_000),
            )
        )
        if len(batch) == 50_000:
            store.add(batch)
            batch = []
            if i % 1_000_000 < 50_000:
                print(f"  {i + 1:>11,} rows, {time.monotonic() - began:6.1f} s", flush=True)
    store.add(batch)
    return time.monotonic() - began


def month_range(rng: random.Random, days: int) -> tuple[float, float]:
    start = dt.datetime(YEAR, 1, 1, tzinfo=dt.UTC).timestamp()
    first = start + rng.randrange(0, max(1, 365 - days)) * 86400
    return first, first + days * 86400


def kinds(rng: random.Random) -> dict[str, Callable[[], Query]]:
    year = (
        dt.datetime(YEAR, 1, 1, tzinfo=dt.UTC).timestamp(),
        dt.datetime(YEAR, 12, 31, 23, tzinfo=dt.UTC).timestamp(),
    )

    def user() -> str:
        return f"user{rng.randrange(50):02d}"

    def share() -> str:
        return f"share{rng.randrange(12):02d}"

    return {
        "user, a month": lambda: Query(*month_range(rng, 30), user=user()),
        "user, the year": lambda: Query(*year, user=user()),
        "share + folder, the year": lambda: Query(
            *year, share=share(), path=f"/dept{rng.randrange(12):02d}"
        ),
        "share + one file, the year": lambda: Query(
            *year,
            share=share(),
            path=f"/dept{rng.randrange(12):02d}/project{rng.randrange(15):02d}/"
            f"file{rng.randrange(20):03d}.docx",
        ),
        "user + share, a quarter": lambda: Query(*month_range(rng, 91), user=user(), share=share()),
        "a day": lambda: Query(*month_range(rng, 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="use (and keep) this folder of month files")
    args = parser.parse_args()
    rng = random.Random(12)  # noqa: S311 - made-up records, no secrets
    folder = args.keep or Path(tempfile.mkdtemp(prefix="audit-bench-", dir="/var/tmp"))
    store = AuditStore(folder)
    store.prepare()
    try:
        if not store.months():
            print(f"writing {args.rows:,} records into {folder}")
            took = generate(store, args.rows, rng)
            print(f"written: {args.rows / took:,.0f} rows/s ({took:.0f} s)")
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(f"on disk: {size / 1e9:.2f} GB in {len(store.months())} month files")
        store.close()  # and opened again by the first search: nothing of the files is cached
        os.sync()
        if os.geteuid() == 0:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            print("page cache dropped: the first search of each kind reads from the disk")
        makers = kinds(rng)
        times: dict[str, list[float]] = {k: [] for k in makers}
        names = list(makers)
        for i in range(args.queries):
            kind = names[i % len(names)]
            q = makers[kind]()
            began = time.perf_counter()
            found = store.search(q)
            times[kind].append(time.perf_counter() - began)
            assert len(found) <= q.limit
        print("\n| search | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|")
        every: list[float] = []
        for kind, values in times.items():
            every += values
            values.sort()
            p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
            print(
                f"| {kind} | {len(values)} | {statistics.median(values) * 1000:.1f} | "
                f"{p95 * 1000:.1f} | {values[-1] * 1000:.1f} |"
            )
        every.sort()
        p95 = every[min(len(every) - 1, int(len(every) * 0.95))]
        print(f"| all | {len(every)} | {statistics.median(every) * 1000:.1f} | "
              f"{p95 * 1000:.1f} | {every[-1] * 1000:.1f} |")  # fmt: skip
    finally:
        store.close()
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
