"""Allocating stable Unix ids for Speicher users and groups."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def allocate(start: int, used: Iterable[int], taken: Callable[[int], bool]) -> int:
    """The lowest id from ``start`` that neither Speicher (``used``) nor the system has."""
    in_use = set(used)
    candidate = start
    while candidate in in_use or taken(candidate):
        candidate += 1
    return candidate
