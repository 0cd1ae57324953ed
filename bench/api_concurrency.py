"""Many API clients at once, during a scrub: errors and latency of the list endpoints.

    sudo .venv/bin/python bench/api_concurrency.py [--clients 200] [--seconds 30]
        [--scrub-limit-mib 200] [--json FILE]

It starts a real Speicher daemon (``tests/speicher_testing.Daemon``) with a raid1 pool of two
virtual disks, 20 shares with grants, and an API token; writes data and keeps a scrub running for
the whole measurement (at most ``--scrub-limit-mib`` per disk, the daemon's
``scrub_speed_limit_mib``: 200 by default, what a hard disk reads; 0 lets the scrub of loop devices
in the page cache checksum at memory speed, which takes both cores); then `wrk` (C, from Debian;
installed if missing) holds ``--clients`` connections, each sending token-authenticated GETs of
``/api/v1/pools`` and ``/api/v1/shares`` back to back. It reports requests per second, the
50th/95th/99th percentile latency, non-2xx answers and socket errors, and whether the daemon's
monitor kept running (its ``pool.members``/health checks are seen in the API's answers staying
current). Target (issue 7): 0 errors, p95 under 200 ms. Everything it made is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx

from speicher_testing import Daemon

ROOT = Path(__file__).resolve().parent.parent

LUA = """
local paths = {"/api/v1/pools", "/api/v1/shares"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % 2) + 1], {["Authorization"] = "Bearer TOKEN"})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d "
    .. "max_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run([str(ROOT / "scripts" / "apt-install"), "wrk"], check=True)
    return "wrk"


def build(daemon: Daemon, shares: int) -> str:
    api = daemon.api
    for name in ("b1", "b2"):
        assert api.post("/disks/virtual", json={"name": name, "size": "4G"}).status_code == 201
    job = api.post("/pools", json={"name": "tank", "profile": "raid1", "disks": ["b1", "b2"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    r = api.post("/users", json={"name": "bench", "password": "bench-password-1"})
    assert r.status_code == 201, r.text
    for i in range(shares):
        r = api.post("/shares", json={"name": f"share-{i:02d}", "pool": "tank", "quota": "1G"})
        assert r.status_code == 201, r.text
        r = api.post(f"/shares/share-{i:02d}/grants", json={"user": "bench", "access": "rw"})
        assert r.status_code == 200, r.text
    data = daemon.mount_root / "tank" / "share-00" / "data.bin"
    with data.open("wb") as fh:
        for _ in range(768):
            fh.write(os.urandom(1024 * 1024))
    os.sync()
    token: str = api.post("/tokens", json={"name": "bench"}).json()["token"]
    return token


def keep_scrubbing(daemon: Daemon, token: str, stop: threading.Event, scrubs: list[int]) -> None:
    # with a token: the harness's password logins (Argon2, 64 MiB) would compete for the cores
    headers = {"Authorization": f"Bearer {token}", "X-Speicher-Request": "1"}
    with httpx.Client(base_url=daemon.url + "/api/v1", headers=headers, timeout=60) as api:
        while not stop.is_set():
            r = api.post("/pools/tank/scrub")
            if r.status_code != 202:
                time.sleep(0.5)
                continue
            job = r.json()
            scrubs.append(job["id"])
            while job["state"] == "running" and not stop.is_set():
                time.sleep(0.3)
                job = api.get(f"/jobs/{job['id']}").json()


def measure(daemon: Daemon, token: str, clients: int, seconds: int) -> dict[str, float]:
    wrk = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(LUA.replace("TOKEN", token))
        script = fh.name
    try:
        out = subprocess.run(
            [
                wrk,
                f"--threads={min(4, clients)}",
                f"--connections={clients}",
                f"--duration={seconds}s",
                "--timeout=30s",
                f"--script={script}",
                daemon.url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 120,
        ).stdout
    finally:
        os.unlink(script)
    match = re.search(r"^RESULT (.*)$", out, re.MULTILINE)
    assert match, out
    values = {k: int(v) for k, v in (p.split("=") for p in match.group(1).split())}
    duration = values["duration_us"] / 1e6
    errors = sum(values[k] for k in ("non2xx", "connect", "read", "write", "timeout"))
    return {
        "clients": clients,
        "requests": values["requests"],
        "requests_per_second": round(values["requests"] / duration, 1),
        "p50_ms": values["p50_us"] / 1000,
        "p95_ms": values["p95_us"] / 1000,
        "p99_ms": values["p99_us"] / 1000,
        "max_ms": values["max_us"] / 1000,
        "errors": errors,
        "non2xx": values["non2xx"],
        "socket_errors": errors - values["non2xx"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--shares", type=int, default=20)
    parser.add_argument("--monitor-interval", type=float, default=10.0)
    parser.add_argument(
        "--scrub-limit-mib",
        type=int,
        default=200,
        help="scrub speed per disk (MiB/s; 0: unlimited). The default is what a hard disk "
        "reads; loop devices in the page cache scrub at memory speed and take both cores",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (loop devices, btrfs, Unix accounts)")
    base = Path(tempfile.mkdtemp(prefix="speicher-bench-", dir="/tmp"))
    base.chmod(0o755)
    daemon = Daemon(base)
    # the test harness checks every 2 s; a real box every 60 s (the default): measure between
    daemon.env["SPEICHER_MONITOR_INTERVAL"] = str(args.monitor_interval)
    daemon.env["SPEICHER_SCRUB_SPEED_LIMIT_MIB"] = str(args.scrub_limit_mib)
    stop = threading.Event()
    try:
        daemon.start()
        token = build(daemon, args.shares)
        scrubs: list[int] = []
        scrubber = threading.Thread(target=keep_scrubbing, args=(daemon, token, stop, scrubs))
        scrubber.start()
        time.sleep(1)
        result = measure(daemon, token, args.clients, args.seconds)
        scrubbing = daemon.api.get("/jobs", params={"state": "running"}).json()
        result["scrub_limit_mib"] = args.scrub_limit_mib
        result["scrubs_during_run"] = len(scrubs)
        result["scrub_running_at_end"] = any(j["kind"] == "pool.scrub" for j in scrubbing)
        stop.set()
        scrubber.join(700)
    finally:
        stop.set()
        daemon.cleanup()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["errors"] == 0 and result["p95_ms"] < 200
    print("target (0 errors, p95 < 200 ms):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
