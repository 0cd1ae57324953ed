"""Block devices: ``lsblk``, ``blkid``, ``wipefs``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from speicher.system.run import CommandError, run


@dataclass(frozen=True)
class BlockDevice:
    name: str
    path: str
    size: int
    type: str
    model: str = ""
    serial: str = ""
    mountpoints: list[str] = field(default_factory=list)
    parent: str = ""
    read_only: bool = False
    children: list[str] = field(default_factory=list)


def _flatten(items: list[dict[str, Any]], parent: str, out: list[BlockDevice]) -> None:
    for item in items:
        children = item.get("children") or []
        out.append(
            BlockDevice(
                name=item["name"],
                path=item.get("path") or f"/dev/{item['name']}",
                size=int(item.get("size") or 0),
                type=item.get("type") or "",
                model=(item.get("model") or "").strip(),
                serial=(item.get("serial") or "").strip(),
                mountpoints=[m for m in (item.get("mountpoints") or []) if m],
                parent=parent,
                read_only=bool(item.get("ro")),
                children=[c.get("path") or f"/dev/{c['name']}" for c in children],
            )
        )
        _flatten(children, item.get("path") or f"/dev/{item['name']}", out)


def parse_lsblk(output: str) -> list[BlockDevice]:
    """Parse ``lsblk --json --bytes`` output into a flat list (children after parents)."""
    out: list[BlockDevice] = []
    _flatten(json.loads(output).get("blockdevices", []), "", out)
    return out


def list_devices() -> list[BlockDevice]:
    result = run(
        [
            "lsblk",
            "--json",
            "--bytes",
            "--output",
            "NAME,PATH,SIZE,TYPE,MODEL,SERIAL,MOUNTPOINTS,RO",
        ]
    )
    return parse_lsblk(result.stdout)


def parse_export(output: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines (``blkid -o export``, ``mdadm --export``)."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def probe(device: str) -> dict[str, str]:
    """What is on ``device`` according to its superblocks (no cache); empty if nothing."""
    try:
        result = run(["blkid", "--probe", "--output", "export", device], timeout=30)
    except CommandError as exc:
        if exc.returncode == 2:  # nothing found
            return {}
        raise
    return parse_export(result.stdout)


def size(device: str) -> int:
    return int(run(["blockdev", "--getsize64", device]).stdout.strip())


def wipe(device: str) -> None:
    """Erase every filesystem, RAID and partition-table signature on ``device``."""
    run(["wipefs", "--all", "--force", device])
