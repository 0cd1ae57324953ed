"""Listings served to a crowd: built once, then sent as the same bytes until something changes.

A listing (pools, shares) is rebuilt when the database has committed a change since
(``Database.generation``) or when it is older than ``MAX_AGE`` seconds (the machine's facts
move on too: usage, health); otherwise its JSON is sent again, on the event loop, with no
thread, session or command. Two hundred clients listing pools during a scrub cost one build a
second. A listing that is only old (nothing committed since) is sent as it is while one
request rebuilds it; after a change, every request waits for the new one, so a client reads
its own writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from anyio import to_thread
from fastapi import Response
from pydantic import BaseModel, TypeAdapter

MAX_AGE = 1.0


class ListingCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, float, bytes]] = {}
        self._lock = threading.Lock()
        self._adapters: dict[type[Any], TypeAdapter[Any]] = {}

    async def respond(
        self,
        key: str,
        generation: Callable[[], int],
        build: Callable[[], Sequence[BaseModel]],
        model: type[BaseModel],
    ) -> Response:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == generation():
            if time.monotonic() - entry[1] < MAX_AGE:
                return Response(entry[2], media_type="application/json")
            if self._lock.locked():  # only old, not changed: someone rebuilds it already
                return Response(entry[2], media_type="application/json")
        body = await to_thread.run_sync(self._build, key, generation, build, model)
        return Response(body, media_type="application/json")

    def _build(
        self,
        key: str,
        generation: Callable[[], int],
        build: Callable[[], Sequence[BaseModel]],
        model: type[BaseModel],
    ) -> bytes:
        with self._lock:  # one build at a time; the others then find it done
            entry = self._entries.get(key)
            now = time.monotonic()
            if entry is not None and entry[0] == generation() and now - entry[1] < MAX_AGE:
                return entry[2]
            seen = generation()
            adapter = self._adapters.setdefault(model, TypeAdapter(list[model]))  # type: ignore[valid-type]
            body: bytes = adapter.dump_json(list(build()))
            self._entries[key] = (seen, now, body)
            return body
