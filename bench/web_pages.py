"""Server time of the web console's and file manager's pages on a big box.

    sudo .venv/bin/python bench/web_pages.py [--shares 1000] [--users 200]
        [--snapshots 10000] [--files 10000] [--rounds 30]

It starts a real daemon (``tests/speicher_testing.Daemon``) with a pool on a virtual disk, and
puts in what a big customer has: ``--shares`` shares (real btrfs subvolumes, rows written to
the database directly: the API would take an hour of smb.conf reloads), ``--users`` users
(API and console logins only: rows, no Unix accounts), a folder of ``--files`` files, and
``--snapshots`` earlier states of one file in that share's snapshot folder (as folders in the
``@GMT-`` layout ShareFS reads; real btrfs snapshots of one share would take as long and show
the same). Then an admin and a user log in over HTTPS and ask for every page ``--rounds``
times (after one untimed request each); printed: p50 and p95 in milliseconds, against the
issue's 100 ms per page and one second for a folder of 10,000 files. Everything it made is
removed afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from speicher.access import passwords
from speicher.db import Database
from speicher.db.models import Grant, Pool, Share, User
from speicher_testing import ADMIN_PASSWORD, Daemon

USER, USER_PASSWORD = "bench", "bench-password-1"
BIG_SHARE = "s0000"


def build(daemon: Daemon, args: argparse.Namespace) -> None:
    api = daemon.api
    assert api.post("/disks/virtual", json={"name": "w1", "size": "4G"}).status_code == 201
    job = api.post("/pools", json={"name": "big", "profile": "single", "disks": ["w1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    assert api.post("/users", json={"name": USER, "password": USER_PASSWORD}).status_code == 201
    pool_dir = daemon.mount_root / "big"
    db = Database(f"sqlite:///{daemon.state_dir / 'speicher.db'}")
    db.share_generations(daemon.state_dir / "db.generations")
    try:
        with db.session() as s:
            pool = s.query(Pool).filter_by(name="big").one()
            bench = s.query(User).filter_by(name=USER).one()
            for i in range(args.shares):
                name = f"s{i:04d}"
                subprocess.run(
                    ["btrfs", "subvolume", "create", str(pool_dir / name)],
                    check=True,
                    capture_output=True,
                )
                share = Share(name=name, pool_id=pool.id, state="ready", smb_enabled=i % 2 == 0)
                s.add(share)
                s.flush()
                s.add(Grant(share_id=share.id, user_id=bench.id, access="rw"))
            digest = passwords.hash_password("unused-password-1")
            for i in range(args.users):
                s.add(
                    User(
                        name=f"u{i:04d}",
                        password_hash=digest,
                        state="ready",
                        file_access=False,
                        uid=None,
                    )
                )
        folder = pool_dir / BIG_SHARE / "many"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"file-{i:05d}.txt").write_bytes(b"x" * (i % 5000))
        uid = int(
            subprocess.run(
                ["id", "-u", daemon.unix_name(USER)], capture_output=True, text=True, check=True
            ).stdout
        )
        for path in (pool_dir / BIG_SHARE, folder):
            os.chown(path, uid, -1)
        (pool_dir / BIG_SHARE / "report.txt").write_text("current\n")
        snaps = pool_dir / ".snapshots" / BIG_SHARE
        snaps.mkdir(parents=True, exist_ok=True)
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for i in range(args.snapshots):
            when = start + dt.timedelta(hours=i)
            snap = snaps / when.strftime("@GMT-%Y.%m.%d-%H.%M.%S")
            snap.mkdir()
            (snap / "report.txt").write_text(f"state {i // 10}\n")  # a change every 10
    finally:
        db.close()


def session(daemon: Daemon, user: str, secret: str) -> httpx.Client:
    client = httpx.Client(
        base_url=daemon.https_url,
        verify=False,  # noqa: S501 - the daemon's self-signed certificate
        headers={"Origin": daemon.https_url},
        timeout=120,
    )
    page = client.get("/login")
    nonce = page.text.split('name="nonce" value="', 1)[1].split('"', 1)[0]
    r = client.post("/login", data={"nonce": nonce, "user": user, "password": secret})
    assert r.status_code == 303, r.text
    return client


def timed(client: httpx.Client, path: str, rounds: int) -> tuple[float, float, int]:
    r = client.get(path)  # untimed: caches warm, as on a box in use
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return statistics.median(times), p95, len(r.content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shares", type=int, default=1000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--snapshots", type=int, default=10000)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs, Unix accounts)")
    base = Path(tempfile.mkdtemp(prefix="speicher-webbench-", dir="/tmp"))
    base.chmod(0o755)
    daemon = Daemon(base)
    # the tests' daemon checks the machine every 2 s; a box in use does so every minute
    daemon.env["SPEICHER_MONITOR_INTERVAL"] = "60"
    rows = []
    try:
        daemon.start()
        t0 = time.monotonic()
        build(daemon, args)
        print(f"built in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        admin = session(daemon, "admin", ADMIN_PASSWORD)
        user = session(daemon, USER, USER_PASSWORD)
        pages = [
            (admin, "/console/", "dashboard"),
            (admin, "/console/setup/", "first steps"),
            (admin, "/console/pools/", "pools and disks"),
            (admin, "/console/shares/", f"shares ({args.shares})"),
            (admin, "/console/users/", f"users ({args.users + 2})"),
            (user, "/files/", f"file manager: shares ({args.shares})"),
            (user, f"/files/{BIG_SHARE}/many/", f"folder of {args.files} files, page 1"),
            (user, f"/files/{BIG_SHARE}/many/?sort=size&order=desc&page=20", "by size, page 20"),
            (user, f"/files/{BIG_SHARE}/report.txt?versions", f"versions, {args.snapshots} snaps"),
        ]  # fmt: skip
        for client, path, label in pages:
            p50, p95, size = timed(client, path, args.rounds)
            rows.append(f"| {label} | `{path}` | {p50:,.1f} | {p95:,.1f} | {size:,} |")
        admin.close()
        user.close()
    finally:
        daemon.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    print("| page | path | p50 ms | p95 ms | bytes |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
