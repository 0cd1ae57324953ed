"""Mounting: ``mount``, ``umount``, ``findmnt``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from speicher.system.run import run


@dataclass(frozen=True)
class Mount:
    target: str
    source: str
    fstype: str
    options: str


def parse_findmnt(output: str) -> list[Mount]:
    if not output.strip():
        return []
    return [
        Mount(m["target"], m["source"], m["fstype"], m.get("options") or "")
        for m in json.loads(output).get("filesystems", [])
    ]


def list_mounts() -> list[Mount]:
    result = run(
        ["findmnt", "--json", "--list", "--output", "TARGET,SOURCE,FSTYPE,OPTIONS"], check=False
    )
    return parse_findmnt(result.stdout)


def mounted_at(target: Path) -> Mount | None:
    for m in list_mounts():
        if m.target == str(target):
            return m
    return None


def mount(source: str, target: Path, fstype: str, options: list[str]) -> None:
    argv = ["mount", "-t", fstype]
    if options:
        argv += ["-o", ",".join(options)]
    run([*argv, source, str(target)], timeout=600)


def umount(target: Path) -> None:
    run(["umount", str(target)], timeout=600)
