"""The WebDAV front's own rules, without a daemon: remembered logins, the read-ahead body of
PUTs, lock times, and how ShareFS's errors become statuses."""

from __future__ import annotations

import asyncio
import errno
import threading
from typing import Any, cast

import pytest

from speicher.db import Database
from speicher.files import FsError
from speicher.protocols.webdav.app import (
    LOGIN_SECONDS,
    ClientDisconnected,
    LoginCache,
    PumpedBody,
    is_dav,
)
from speicher.protocols.webdav.provider import _lock_timeout, dav_error, href, split


class FakeDb:
    def __init__(self) -> None:
        self.generation = 1

    def generation_of(self, tables: frozenset[str]) -> int:
        assert tables == frozenset({"users", "groups"})
        return self.generation


def test_remembered_logins() -> None:
    now = [100.0]
    db = FakeDb()
    cache = LoginCache(cast(Database, db), clock=lambda: now[0])
    key = cache.key("alice", "secret")
    assert key != cache.key("alice", "secret2") and key != cache.key("alice2", "secret")
    assert key != LoginCache(cast(Database, db)).key(
        "alice", "secret"
    )  # a key of its own per process
    assert b"secret" not in key
    assert cache.get(key) is None
    cache.put(key, "alice", db.generation)
    assert cache.get(key) == "alice"
    now[0] += LOGIN_SECONDS - 1
    assert cache.get(key) == "alice"
    now[0] += 2
    assert cache.get(key) is None  # expired
    cache.put(key, "alice", db.generation)
    db.generation += 1  # a password changed, a user was disabled...
    assert cache.get(key) is None
    # a check that began before a change is not remembered as valid after it
    cache.put(key, "alice", db.generation - 1)
    assert cache.get(key) is None


def _feed(messages: list[dict[str, Any]], reads: list[int]) -> tuple[list[bytes], Any]:
    """Run a PumpedBody over ``messages`` and read ``reads`` sizes from another thread."""
    got: list[bytes] = []
    error: list[BaseException] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        body = PumpedBody(loop)
        queue = list(messages)

        async def receive() -> dict[str, Any]:
            await asyncio.sleep(0)
            if not queue:
                await asyncio.sleep(3600)
            return queue.pop(0)

        def reader() -> None:
            try:
                for size in reads:
                    got.append(body.read(size))
            except BaseException as exc:
                error.append(exc)

        pump = asyncio.create_task(body.pump(receive))
        thread = threading.Thread(target=reader)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        pump.cancel()

    asyncio.run(main())
    return got, error[0] if error else None


def test_read_ahead_body() -> None:
    chunks: list[dict[str, Any]] = [
        {"type": "http.request", "body": bytes([i]) * 1000, "more_body": True} for i in range(9)
    ]
    chunks.append({"type": "http.request", "body": b"end", "more_body": False})
    got, error = _feed(chunks, [2500, 2500, 100_000, 10])
    assert error is None
    data = b"".join(got)
    assert data == b"".join(m["body"] for m in chunks)
    assert [len(g) for g in got] == [2500, 2500, 4003, 0]


def test_read_ahead_body_of_a_client_that_went_away() -> None:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"x" * 100, "more_body": True},
        {"type": "http.disconnect"},
    ]
    got, error = _feed(messages, [100, 100])
    assert got == [b"x" * 100]
    assert isinstance(error, ClientDisconnected)


def test_read_ahead_waits_when_enough_is_waiting() -> None:
    big = PumpedBody.HIGH // 4
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"y" * big, "more_body": True} for _ in range(12)
    ]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    got, error = _feed(messages, [big] * 12 + [1])
    assert error is None and sum(map(len, got)) == 12 * big


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("", 3600),
        ("Infinite", 3600),
        ("Second-120", 120),
        ("Second-99999999", 86_400),
        ("Second-90000", 86_400),
    ],
)
def test_lock_times(header: str, seconds: int) -> None:
    assert _lock_timeout(header) == seconds


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (errno.ENOENT, 404),
        (errno.EACCES, 403),
        (errno.EROFS, 403),
        (errno.EDQUOT, 507),
        (errno.ENOSPC, 507),
        (errno.ENAMETOOLONG, 414),
        (errno.EINVAL, 400),
        (errno.ENOTEMPTY, 409),
        (errno.EXDEV, 502),
        (errno.EIO, 503),
        (errno.EBUSY, 500),
    ],
)
def test_statuses(code: int, status: int) -> None:
    error = dav_error(FsError(code, "said in our words"))
    assert error.value == status and error.context_info == "said in our words"


def test_paths_and_hrefs() -> None:
    assert split("/docs/a/b/") == ("docs", "a/b")
    assert split("/") == ("", "")
    assert href("docs", "/a b/c%d") == "/dav/docs/a%20b/c%25d"
    assert href("docs", "/folder", folder=True) == "/dav/docs/folder/"
    assert is_dav({}, "/dav") and is_dav({}, "/dav/x") and not is_dav({}, "/davx")
    assert not is_dav({"method": "GET"}, "/") and is_dav({"method": "OPTIONS"}, "/")
