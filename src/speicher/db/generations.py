"""Change counters every process of the daemon shares (S3's worker processes and the daemon).

``Database.generation_of`` tells a cache whether the tables it was built from changed. In one
process a dict does; with S3 served by worker processes, a grant revoked through the API (the
daemon) must reach the workers' caches at once, and a bucket's settings written by the
daemon must too. So the counters live in a small file every process maps
(``<state>/db.generations``): slot 0 is the generation, each table has a slot (the CRC32 of
its name picks it; two tables sharing a slot only cost a cache an extra rebuild), and a
commit writes them under ``flock`` (commits are rare next to reads; a read is a memory load).
"""

from __future__ import annotations

import fcntl
import functools
import mmap
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

SLOTS = 256
_SLOT = struct.Struct("=Q")  # native order: only this machine's processes map it
SIZE = _SLOT.size * SLOTS
ANY = "*"  # a change of unknown tables


@functools.cache
def slot(table: str) -> int:
    return 1 + zlib.crc32(table.encode()) % (SLOTS - 1)


class SharedGenerations:
    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._slots = memoryview(self._map).cast("Q")
        self._any = slot(ANY)
        self._of: dict[frozenset[str], tuple[int, ...]] = {}

    def bump(self, tables: Iterable[str]) -> int:
        """A commit changed ``tables``: the next generation, and theirs set to it."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            generation = _SLOT.unpack_from(self._map, 0)[0] + 1
            _SLOT.pack_into(self._map, 0, generation)
            for table in tables:
                _SLOT.pack_into(self._map, _SLOT.size * slot(table), generation)
            return int(generation)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def of(self, tables: frozenset[str]) -> int:
        """The generation at which any of ``tables`` (or an unknown table) last changed: a
        few loads from the map (every request asks, several times)."""
        slots = self._of.get(tables)
        if slots is None:
            slots = self._of[tables] = tuple({self._any, *map(slot, tables)})
        counters = self._slots
        return max([counters[at] for at in slots])

    def close(self) -> None:
        self._slots.release()
        self._map.close()
        os.close(self._fd)
