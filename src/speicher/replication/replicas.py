"""Where a pairing's replicas live on the target (docs/replication.md):
``<pool>/.replicas/<pairing>/<share>/<name>/<name>``, root only."""

from __future__ import annotations

import os
import re
from pathlib import Path

from speicher import names
from speicher.config import Settings
from speicher.errors import InvalidInput
from speicher.replication.pairing import Peer
from speicher.replication.stream import remove_incoming
from speicher.system import btrfs

REPLICAS = ".replicas"
_SNAPSHOT = re.compile(r"@GMT-\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}")


def replicas_of(settings: Settings, peer: Peer, share: str) -> Path:
    """Where ``peer``'s replicas of ``share`` live (the name checked: no way out)."""
    if reason := names.share_name(share):
        raise InvalidInput(field="share", reason=reason)
    top = settings.mount_root / peer.pool / REPLICAS
    top.mkdir(mode=0o700, exist_ok=True)
    os.chmod(top, 0o700)  # replicas are for root: nobody browses another site's copies
    return top / peer.name / share


def replica_names(folder: Path) -> list[str]:
    """The complete replicas in ``folder``, oldest first."""
    try:
        entries = sorted(folder.iterdir())
    except FileNotFoundError:
        return []
    return [
        e.name for e in entries if _SNAPSHOT.fullmatch(e.name) and btrfs.is_subvolume(e / e.name)
    ]


def clean_incoming(settings: Settings) -> list[str]:
    """At start: remove what interrupted streams left in every replica folder."""
    removed: list[str] = []
    for top in settings.mount_root.glob(f"*/{REPLICAS}/*/*"):
        if top.is_dir() and not top.is_symlink():
            removed += remove_incoming(top)
    return removed
