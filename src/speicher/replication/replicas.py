"""Where a pairing's replicas live on the target (docs/replication.md):
``<pool>/.replicas/<pairing>/<share>/<name>/<name>``, root only."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

from speicher import names
from speicher.config import Settings
from speicher.errors import Forbidden, InvalidInput
from speicher.hooks import POOL_DESTROYING, Hooks
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


# -- locks and the target's retention --------------------------------------------------------

LOCK = "lock.json"


def lock(folder: Path, name: str, until: dt.datetime) -> None:
    """Replica ``name`` may not go before ``until`` (the source snapshot's lock, same date)."""
    path = folder / name / LOCK
    temp = path.with_name(f".{LOCK}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"locked_until": until.astimezone(dt.UTC).isoformat()}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)


def locked_until(folder: Path, name: str) -> dt.datetime | None:
    try:
        text = (folder / name / LOCK).read_text()
        return dt.datetime.fromisoformat(json.loads(text)["locked_until"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _locked(folder: Path, name: str, now: dt.datetime) -> bool:
    until = locked_until(folder, name)
    return until is not None and until > now


def prune(folder: Path, keep_last: int, now: dt.datetime | None = None) -> list[str]:
    """Keep the newest ``keep_last`` replicas in ``folder`` (0: all); a locked one stays
    until its lock ends, and the newest always (the base of the next increment). The
    names removed."""
    if keep_last <= 0:
        return []
    now = now or dt.datetime.now(dt.UTC)
    held = replica_names(folder)
    removed = []
    for name in held[: max(0, len(held) - keep_last)]:
        if _locked(folder, name, now):
            continue
        btrfs.subvolume_delete(folder / name / name)
        for leftover in (folder / name).iterdir():
            leftover.unlink()
        (folder / name).rmdir()
        removed.append(name)
    return removed


def locked_in_pool(settings: Settings, pool: str, now: dt.datetime | None = None) -> list[str]:
    """The locked replicas on ``pool``, as ``pairing/share/name``."""
    now = now or dt.datetime.now(dt.UTC)
    found = []
    for lock_file in sorted((settings.mount_root / pool / REPLICAS).glob(f"*/*/*/{LOCK}")):
        name = lock_file.parent.name
        folder = lock_file.parent.parent
        if _locked(folder, name, now):
            found.append(f"{folder.parent.name}/{folder.name}/{name}")
    return found


def register_vetoes(hooks: Hooks, settings: Settings) -> None:
    """Destroying a pool is refused while a replica on it is locked, as for snapshots."""

    def pool_destroying(pool: str, **_: object) -> None:
        locked = locked_in_pool(settings, pool)
        if locked:
            raise Forbidden(
                f"pool '{pool}' cannot be destroyed: {len(locked)} replica(s) on it are locked "
                f"({', '.join(locked[:3])})"
            )

    hooks.subscribe(POOL_DESTROYING, pool_destroying)


# -- promoted shares: which replica each was made from (for the way back) --------------------

PROMOTED = "promoted.json"


def note_promoted(folder: Path, replica: str, share: str) -> None:
    """Share ``share`` was made from replica ``replica`` of ``folder``."""
    path = folder / PROMOTED
    try:
        notes = json.loads(path.read_text())
    except (OSError, ValueError):
        notes = {}
    notes[share] = replica
    temp = folder / f".{PROMOTED}.tmp"
    temp.write_text(json.dumps(notes))
    os.replace(temp, path)


def origin_of(settings: Settings, share: str) -> Path | None:
    """The replica share ``share`` was promoted from, if it was and the replica is there."""
    for path in settings.mount_root.glob(f"*/{REPLICAS}/*/*/{PROMOTED}"):
        try:
            replica = json.loads(path.read_text()).get(share)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(replica, str) and _SNAPSHOT.fullmatch(replica):
            found = path.parent / replica / replica
            if btrfs.is_subvolume(found):
                return found
    return None


def refuse_unnamed(made: Path) -> None:
    """A received snapshot must be named as Speicher names snapshots (``@GMT-...``): what a
    stream named otherwise is removed again, and the stream refused."""
    if _SNAPSHOT.fullmatch(made.name):
        return
    btrfs.subvolume_delete(made)
    for leftover in made.parent.iterdir():
        leftover.unlink()
    made.parent.rmdir()
    raise InvalidInput(field="stream", reason="must be of a snapshot named @GMT-...")
