"""Allocating stable Unix ids for Speicher users and groups, and creating the accounts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy.exc import IntegrityError

from speicher.errors import Conflict
from speicher.system.run import CommandError


def allocate(start: int, used: Iterable[int], taken: Callable[[int], bool]) -> int:
    """The lowest id from ``start`` that neither Speicher (``used``) nor the system has."""
    in_use = set(used)
    candidate = start
    while candidate in in_use or taken(candidate):
        candidate += 1
    return candidate


def create_with_free_id(
    start: int,
    used: Callable[[], Iterable[int]],
    taken: Callable[[int], bool],
    create: Callable[[int], None],
    what: str,
) -> int:
    """Create a Unix account or group with the lowest free id and return the id. Another
    process may take the same id at the same moment: then try the next one."""
    for _attempt in range(5):
        candidate = allocate(start, used(), taken)
        try:
            create(candidate)
        except CommandError as exc:
            if taken(candidate):
                continue
            raise Conflict(f"could not create the Unix {what}: {exc.output}") from None
        return candidate
    raise Conflict(f"could not find a free id for the Unix {what}; try again")


@contextlib.contextmanager
def undone_on_failure(undo: Callable[[], None], duplicate: str) -> Iterator[None]:
    """Run ``undo`` (remove the Unix account just made) if recording it fails, so no account
    is left without its Speicher row; a unique-constraint failure becomes ``duplicate``."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(CommandError):
            undo()
        if isinstance(exc, IntegrityError):
            raise Conflict(duplicate) from None
        raise
