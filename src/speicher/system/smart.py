"""Disks' own health verdict: SMART, through ``smartctl`` (smartmontools)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass

from speicher.system.run import _PATH, CommandError, run

# smartctl's exit status is a bit mask (smartctl(8), "RETURN VALUES")
_BAD_COMMAND_LINE = 1
_OPEN_FAILED = 2  # also: the disk sleeps and -n standby kept it asleep
_DISK_FAILING = 8

# devices without SMART: loop, md, device-mapper, zram, nbd, ram disks
_VIRTUAL = re.compile(r"^/dev/(loop|md|dm-|mapper/|zram|nbd|ram)")


@dataclass(frozen=True)
class SmartHealth:
    status: str  # passed, failed or unknown
    message: str  # what smartctl said, for people
    temperature: int | None = None  # degrees Celsius, where the disk tells


def available() -> bool:
    return shutil.which("smartctl", path=_PATH) is not None


def has_smart(device: str) -> bool:
    """Whether ``device`` can be a physical disk (virtual devices have no SMART)."""
    return bool(device) and not _VIRTUAL.match(device)


def parse_health(output: str) -> SmartHealth:
    """Parse ``smartctl -H -j`` (JSON, smartmontools 7.0 or later)."""
    try:
        data = json.loads(output)
    except ValueError:
        return SmartHealth("unknown", "smartctl printed no JSON")
    tool = data.get("smartctl", {})
    status = int(tool.get("exit_status", 0))
    messages = "; ".join(m.get("string", "") for m in tool.get("messages", []))
    passed = data.get("smart_status", {}).get("passed")
    current = (data.get("temperature") or {}).get("current")
    temperature = current if isinstance(current, int) and not isinstance(current, bool) else None
    if passed is False or status & _DISK_FAILING:
        return SmartHealth(
            "failed", messages or "SMART overall-health self-assessment: FAILED", temperature
        )
    if passed is True:
        return SmartHealth(
            "passed", messages or "SMART overall-health self-assessment: PASSED", temperature
        )
    if status & (_BAD_COMMAND_LINE | _OPEN_FAILED) and not messages:
        messages = "smartctl could not read the disk"
    return SmartHealth("unknown", messages or "the disk reports no SMART status", temperature)


def health(device: str) -> SmartHealth:
    """The disk's SMART verdict and temperature (``-A``: the attributes, where smartctl
    finds it). A sleeping disk is not woken (``-n standby``)."""
    try:
        result = run(
            ["smartctl", "-H", "-A", "-j", "-n", "standby", device], check=False, timeout=60
        )
    except CommandError as exc:
        return SmartHealth("unknown", exc.output)
    return parse_health(result.stdout)
