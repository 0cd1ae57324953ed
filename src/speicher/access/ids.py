"""Allocating stable Unix ids for Speicher users and groups.

An id is handed out once: every uid and gid Speicher gives is recorded in ``unix_ids`` and
kept when its user or group is deleted, so a new user never becomes the owner of a deleted
user's files (which stay on the disks with the old id)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from speicher.db import Database, UnixId
from speicher.errors import Conflict
from speicher.system.run import CommandError


def allocate(start: int, used: Iterable[int], taken: Callable[[int], bool]) -> int:
    """The lowest id from ``start`` that neither Speicher (``used``) nor the system has."""
    in_use = set(used)
    candidate = start
    while candidate in in_use or taken(candidate):
        candidate += 1
    return candidate


def reserve(db: Database, kind: str, start: int, taken: Callable[[int], bool], owner: str) -> int:
    """Record and return a new ``uid`` or ``gid`` (``kind``) that was never handed out and that
    the system does not use. Another process may take the same id at the same moment; then the
    next one is tried. No session is held while the system's account database is read."""
    for _attempt in range(20):
        with db.session() as s:
            given = list(s.scalars(select(UnixId.number).where(UnixId.kind == kind)))
        candidate = allocate(start, given, taken)
        try:
            with db.session() as s:
                s.add(UnixId(kind=kind, number=candidate, owner=owner))
        except IntegrityError:
            continue
        return candidate
    raise Conflict(f"could not find a free {kind} for '{owner}'; try again")


def record(db: Database, kind: str, number: int, owner: str) -> None:
    """Note an id that is in use without having been reserved (for example, made before ids
    were recorded), so it is never handed out again."""
    with db.session() as s:
        exists = s.scalars(
            select(UnixId).where(UnixId.kind == kind, UnixId.number == number)
        ).first()
        if exists is None:
            s.add(UnixId(kind=kind, number=number, owner=owner))


def create_with_reserved_id(
    db: Database,
    kind: str,
    start: int,
    taken: Callable[[int], bool],
    create: Callable[[int], None],
    owner: str,
    first: int | None = None,
) -> int:
    """Create a Unix account or group with ``first`` (or a newly reserved id) and return the
    id used. Another process (a second instance, an admin's useradd) may take the id between
    the check and ``create``: then a new id is reserved and tried."""
    candidate = first if first is not None else reserve(db, kind, start, taken, owner)
    for _attempt in range(10):
        try:
            create(candidate)
        except CommandError:
            if not taken(candidate):
                raise
            candidate = reserve(db, kind, start, taken, owner)
            continue
        return candidate
    raise Conflict(f"could not find a free {kind} for '{owner}'; try again")
