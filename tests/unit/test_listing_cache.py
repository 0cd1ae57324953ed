"""Cached listings: one build for a crowd, a client reads its own writes, an old listing is
sent at once while it is refreshed, and only changes to a listing's own tables count."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import text

from speicher.api import cache
from speicher.api.cache import ListingCache
from speicher.db import Database, Job, VirtualDisk


class Item(BaseModel):
    name: str


class Source:
    """A listing's database stand-in: a generation and a build that counts its calls."""

    def __init__(self) -> None:
        self.generation = 1
        self.names = ["a"]
        self.builds = 0
        self.fail = False
        self.slow = threading.Event()
        self.slow.set()

    def build(self) -> Sequence[BaseModel]:
        self.builds += 1
        self.slow.wait(10)
        if self.fail:
            raise RuntimeError("broken")
        return [Item(name=n) for n in self.names]


async def names(listings: ListingCache, source: Source) -> list[str]:
    response = await listings.respond("k", lambda: source.generation, source.build, Item)
    return [item["name"] for item in json.loads(bytes(response.body))]


def test_a_crowd_after_a_change_costs_one_build() -> None:
    async def run() -> None:
        listings, source = ListingCache(), Source()
        source.slow.clear()
        crowd = [asyncio.create_task(names(listings, source)) for _ in range(50)]
        await asyncio.sleep(0.05)
        source.slow.set()
        assert await asyncio.gather(*crowd) == [["a"]] * 50
        assert source.builds == 1

    asyncio.run(run())


def test_after_a_change_nobody_gets_the_old_listing() -> None:
    async def run() -> None:
        listings, source = ListingCache(), Source()
        assert await names(listings, source) == ["a"]
        source.names, source.generation = ["a", "b"], 2
        assert await names(listings, source) == ["a", "b"]
        assert listings.current("k") is not None and b'"b"' in (listings.current("k") or b"")
        source.generation = 3  # a change the cache has not built yet
        assert listings.current("k") is None

    asyncio.run(run())


def test_a_change_during_a_build_waits_for_a_build_after_it() -> None:
    async def run() -> None:
        listings, source = ListingCache(), Source()
        source.slow.clear()
        first = asyncio.create_task(names(listings, source))
        await asyncio.sleep(0.05)  # the build runs, with the old names
        source.names, source.generation = ["new"], 2
        second = asyncio.create_task(names(listings, source))
        await asyncio.sleep(0.05)
        source.slow.set()
        assert await first in (["a"], ["new"])
        assert await second == ["new"]

    asyncio.run(run())


def test_an_old_listing_is_sent_at_once_and_refreshed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> None:
        listings, source = ListingCache(), Source()
        assert await names(listings, source) == ["a"]
        monkeypatch.setattr(cache, "MAX_AGE", 0.0)
        source.slow.clear()  # the refresh hangs; callers must not
        source.names = ["later"]  # the machine's facts moved on; the database did not
        for _ in range(20):  # a caller that waited for the hung refresh would time out
            assert await asyncio.wait_for(names(listings, source), timeout=5) == ["a"]
            assert listings.current("k") is not None
        await asyncio.sleep(0.1)  # the refresh's thread has started
        assert source.builds == 2  # the first, and one refresh for all twenty
        source.slow.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if b"later" in (listings.current("k") or b""):
                break
        assert b"later" in (listings.current("k") or b"")

    asyncio.run(run())


def test_a_failed_build_fails_its_callers_and_the_next_one_retries() -> None:
    async def run() -> None:
        listings, source = ListingCache(), Source()
        source.fail = True
        with pytest.raises(RuntimeError, match="broken"):
            await names(listings, source)
        source.fail = False
        assert await names(listings, source) == ["a"]

    asyncio.run(run())


def test_only_changes_to_a_listings_tables_count(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    db.migrate()
    disks, jobs = frozenset({"virtual_disks"}), frozenset({"jobs"})
    try:
        before = db.generation_of(disks)
        with db.session() as s:
            s.add(Job(kind="pool.scrub", target="tank"))
        assert db.generation_of(disks) == before
        assert db.generation_of(jobs) > before
        with db.session() as s:
            s.add(VirtualDisk(name="d1", size=1, path="/x"))
        changed = db.generation_of(disks)
        assert changed > before
        with db.quiet_session() as s:
            s.add(VirtualDisk(name="d2", size=1, path="/y"))
        assert db.generation_of(disks) == changed
        with db.session() as s:  # a statement whose tables Speicher does not parse: all
            s.execute(text("DELETE FROM virtual_disks WHERE name = 'd2'"))
        assert db.generation_of(disks) > changed
        assert db.generation_of(jobs) == db.generation_of(disks)
    finally:
        db.close()
