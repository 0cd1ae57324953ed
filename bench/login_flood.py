"""A flood of wrong HTTP Basic passwords against a real daemon, and what it does to tokens.

Starts a daemon (``tests/speicher_testing.Daemon``), makes an API token, and runs ``--threads``
clients, each from its own loopback address (127.0.1.x) for its own user name, that send wrong
passwords for ``--seconds``. Meanwhile one client asks ``GET /pools`` with the token every
0.1 s. Prints the token requests' latency, the flood's answers (401, 429 busy, 429 locked) and
the daemon's peak RSS (VmHWM). Needs root; removes everything it made.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS_DIR))

from speicher_testing import Daemon  # noqa: E402 - found through TESTS_DIR


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def flood(daemon: Daemon, threads: int, seconds: float) -> dict[str, object]:
    token = daemon.api.post("/tokens", json={"name": "bench"}).json()["token"]
    stop = threading.Event()
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def guess(n: int) -> None:
        transport = httpx.HTTPTransport(local_address=f"127.0.1.{n + 1}")
        with httpx.Client(base_url=f"{daemon.url}/api/v1", transport=transport, timeout=120) as c:
            attempt = 0
            while not stop.is_set():
                attempt += 1
                r = c.get("/pools", auth=(f"flood{n}", f"wrong-{attempt}"))
                kind = str(r.status_code)
                if r.status_code == 429:
                    kind += " busy" if "busy" in r.json()["detail"] else " locked"
                with lock:
                    seen[kind] += 1

    workers = [threading.Thread(target=guess, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    latencies = []
    statuses: Counter[int] = Counter()
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{daemon.url}/api/v1", headers=headers, timeout=120) as c:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.monotonic()
            statuses[c.get("/pools").status_code] += 1
            latencies.append((time.monotonic() - start) * 1000)
            time.sleep(0.1)
    stop.set()
    for w in workers:
        w.join(120)
    assert daemon.proc is not None
    latencies.sort()
    return {
        "threads": threads,
        "seconds": seconds,
        "token_requests": dict(statuses),
        "token_ms_p50": round(statistics.median(latencies), 1),
        "token_ms_p95": round(latencies[math.ceil(len(latencies) * 0.95) - 1], 1),
        "token_ms_max": round(latencies[-1], 1),
        "flood_answers": dict(seen),
        "daemon_peak_rss_mib": round(peak_rss_mib(daemon.proc.pid)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="speicher-bench-", dir="/tmp"))
    base.chmod(0o755)
    daemon = Daemon(base)
    try:
        daemon.start()
        print(json.dumps(flood(daemon, args.threads, args.seconds), indent=2))
    finally:
        daemon.cleanup()


if __name__ == "__main__":
    main()
