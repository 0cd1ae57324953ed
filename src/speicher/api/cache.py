"""Listings served to a crowd: built once, then sent as the same bytes until something changes.

A listing (pools, shares) is rebuilt when the database has committed a change since
(``Database.generation``) or when it is older than ``MAX_AGE`` seconds (the machine's facts
move on too: usage, health); otherwise its JSON is sent again, on the event loop, with no
thread, session or command. Two hundred clients listing pools during a scrub cost one build a
second, made while the old listing is still sent.

One build at a time per listing (single flight): every request that needs a new build awaits
the one build in flight on the event loop, instead of each taking a worker thread to wait on a
lock (with 200 clients that queue of threads, not the build, was the latency). A listing that
is only old (nothing committed since) is sent as it is while one build refreshes it; after a
change, a request waits for a build that started after the change, so a client reads its own
writes. "A change" is a commit to one of the tables the listing is built from
(``Database.generation_of``): the jobs and events a scrub writes change no listing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from anyio import to_thread
from fastapi import Response
from pydantic import BaseModel, TypeAdapter
from starlette.types import Scope, Send

log = logging.getLogger(__name__)

MAX_AGE = 1.0
_Builder = tuple[Callable[[], int], Callable[[], Sequence[BaseModel]], type[BaseModel]]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class ListingCache:
    def __init__(self) -> None:
        # key -> (generation seen before the build, monotonic time of the build, JSON)
        self._entries: dict[str, tuple[int, float, bytes]] = {}
        # key -> (generation seen when the build started, the build)
        self._building: dict[str, tuple[int, asyncio.Task[bytes]]] = {}
        self._adapters: dict[type[Any], TypeAdapter[Any]] = {}
        # key -> how the route builds it, so the fast lane can start a refresh too
        self._builders: dict[str, _Builder] = {}

    def current(self, key: str) -> bytes | None:
        """The listing's JSON if nothing it is built from changed since it was built (an old
        one is refreshed meanwhile), else None: then the route must wait for a build."""
        entry = self._entries.get(key)
        builder = self._builders.get(key)
        if entry is None or builder is None:
            return None
        now = builder[0]()
        if entry[0] != now:
            return None
        if time.monotonic() - entry[1] >= MAX_AGE and key not in self._building:
            self._start(key, now, *builder)
        return entry[2]

    async def respond(
        self,
        key: str,
        generation: Callable[[], int],
        build: Callable[[], Sequence[BaseModel]],
        model: type[BaseModel],
    ) -> Response:
        self._builders[key] = (generation, build, model)
        now = generation()
        entry = self._entries.get(key)
        building = self._building.get(key)
        if entry is not None and entry[0] == now:
            if time.monotonic() - entry[1] >= MAX_AGE and building is None:
                # only old: refresh it for the next callers, answer this one at once
                self._start(key, now, generation, build, model)
            return Response(entry[2], media_type="application/json")
        if building is None or building[0] < now:
            building = self._start(key, now, generation, build, model)
        # shielded: a client that goes away does not cancel the build the others await
        body = await asyncio.shield(building[1])
        return Response(body, media_type="application/json")

    def _start(
        self,
        key: str,
        now: int,
        generation: Callable[[], int],
        build: Callable[[], Sequence[BaseModel]],
        model: type[BaseModel],
    ) -> tuple[int, asyncio.Task[bytes]]:
        task = asyncio.get_running_loop().create_task(self._build(key, generation, build, model))
        task.add_done_callback(_log_failure)
        self._building[key] = (now, task)
        return self._building[key]

    async def _build(
        self,
        key: str,
        generation: Callable[[], int],
        build: Callable[[], Sequence[BaseModel]],
        model: type[BaseModel],
    ) -> bytes:
        seen = generation()
        try:
            adapter = self._adapters.get(model)
            if adapter is None:
                adapter = self._adapters[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
            body: bytes = await to_thread.run_sync(lambda: adapter.dump_json(list(build())))
            entry = self._entries.get(key)
            if entry is None or entry[0] <= seen:
                self._entries[key] = (seen, time.monotonic(), body)
            return body
        finally:
            current = self._building.get(key)
            if current is not None and current[1] is asyncio.current_task():
                del self._building[key]


def _log_failure(task: asyncio.Task[bytes]) -> None:
    """A refresh nobody waited for must not fail in silence (nor warn at exit)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("building a cached listing failed: %s", exc)


class FastListings:
    """Answers a request for a current cached listing (``paths``, without a query) by a caller
    whose API token the token cache alone proves valid, straight from the cache: no routing,
    dependencies, middleware or response object, so a crowd of clients listing pools costs a
    few dictionary lookups each. Everything else (other callers, passwords, misses) goes the
    normal way, through authentication and the routes, which stay the only place that knows
    how to build a listing."""

    def __init__(
        self,
        cache: ListingCache,
        tokens: Callable[[str], str | None],
        paths: dict[str, str],
    ) -> None:
        self.cache = cache
        self.tokens = tokens  # TokenService.cached: a name only when the cache proves it
        self.paths = paths  # request path -> cache key

    async def answer(self, scope: Scope, send: Send) -> bool:
        key = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        if key is None or scope["method"] != "GET" or scope["query_string"]:
            return False
        body = self.cache.current(key)
        if body is None or scope.get("server", (None, None))[1] is None:  # Unix socket: root
            return False
        token = _bearer(scope)
        if token is None or self.tokens(token) is None:
            return False
        headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None
