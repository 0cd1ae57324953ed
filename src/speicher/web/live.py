"""The dashboard's live figures, as server-sent events (``/console/stream``): every
``TICK`` seconds the pools' read and write throughput (from ``/proc/diskstats`` of their
disks) and their capacity. app.js draws them (an SVG chart of its own: no library).

A stream ends after ``LIFETIME`` (the browser's EventSource connects again by itself), when
the browser goes, and within a tick of the daemon stopping, so no open page holds up a
shutdown.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from speicher.services import Services

TICK = 2.0
LIFETIME = 300.0
SECTOR = 512  # /proc/diskstats counts 512-byte sectors, whatever the disk's own size
DISKSTATS = Path("/proc/diskstats")


def disk_bytes(devices: set[str], stats: str | None = None) -> tuple[int, int]:
    """Bytes read and written so far by the block devices named (``loop3``, ``sdb``)."""
    text = stats if stats is not None else DISKSTATS.read_text()
    read = written = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[2] in devices:
            read += int(fields[5]) * SECTOR
            written += int(fields[9]) * SECTOR
    return read, written


def _pool_devices(services: Services) -> set[str]:
    return {
        d.device.rsplit("/", 1)[-1]
        for d in services.disks.list()
        if d.used_by.startswith("pool:") and d.device
    }


def _capacity(services: Services) -> list[dict[str, Any]]:
    return [{"name": p.name, "size": p.size, "used": p.used} for p in services.pools.list()]


async def events(
    services: Services, request: Request, exiting: Callable[[], bool]
) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    devices = await run_in_threadpool(_pool_devices, services)
    before = await run_in_threadpool(disk_bytes, devices)
    then = time.monotonic()
    started = then
    while time.monotonic() - started < LIFETIME and not exiting():
        await asyncio.sleep(TICK)
        if exiting() or await request.is_disconnected():
            return
        now_bytes = await run_in_threadpool(disk_bytes, devices)
        now = time.monotonic()
        seconds = max(now - then, 0.001)
        figures = {
            "time": time.time(),
            "read": (now_bytes[0] - before[0]) / seconds,
            "write": (now_bytes[1] - before[1]) / seconds,
            "pools": await run_in_threadpool(_capacity, services),
        }
        before, then = now_bytes, now
        yield f"data: {json.dumps(figures)}\n\n".encode()
