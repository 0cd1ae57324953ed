"""HTTP/1.1 Upgrade (RFC 9110 §7.8) for a route that wants the connection to itself: how a
replication stream reaches the target (docs/architecture.md, "Replication's wire").

A request with ``Connection: Upgrade`` and ``Upgrade: <a token in TOKENS>`` goes through
the app like any other (authentication, the route's checks, problem documents for what is
refused); the route finds a function under ``scope["extensions"][EXTENSION]`` and calls it
once it has accepted the request. That answers ``101 Switching Protocols``, and from then on
the connection is a :class:`PieceStream`: the client sends pieces, each a 4-byte big-endian
length and that many bytes (a length with the top bit set is that of a compressed piece,
stream.Packer), and a length of 0 at the end; the route answers with one JSON
line and the connection closes. Whatever the route returns to the app afterwards is
dropped.

Why not a request body: uvicorn hands a body on in the pieces TLS decrypted (16 KiB
records, joined per socket read), parses each with httptools and wakes the route's task
for it. Measured on this 2-core machine, a 2 GiB body took the receiving process 5.0-5.8
CPU seconds that way, the same bytes into a buffered protocol 1.4 s: TLS decrypts straight
into the piece's buffer, and nothing between the socket and the piece is Python. Between
two daemons, where the bytes come only as fast as ``btrfs send`` makes them, the target's
CPU per byte fell by a fifth (bench/README.md).
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from speicher.replication.stream import LARGEST, UPGRADE, ZSTD, Piece

TOKENS = frozenset({UPGRADE.encode()})
EXTENSION = "speicher.upgrade"
HEADER = 4
BATCH = 1024 * 1024  # pieces are handed on about this many bytes at a time
AHEAD = 4  # batches held before the socket is no longer read
LINGER = 30.0  # seconds a refused stream's rest is read and dropped
IDLE = 300.0  # seconds without a byte before a stream counts as abandoned
_GONE = "the connection ended in the middle of the stream"


class UpgradeError(Exception):
    """The client broke the upgraded protocol (a length too large) or went away."""


class PieceStream(asyncio.BufferedProtocol):
    """The upgraded connection: pieces in (straight into their own buffers), one answer
    out. :meth:`batches` gives the pieces; :meth:`answer` sends the line and closes."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._header = bytearray(HEADER)
        self._piece: bytearray | None = None  # None: reading a length
        self._compressed = False  # what the piece being read is
        self._filled = 0
        self._batch: list[Piece] = []
        self._batch_size = 0
        self._ready: collections.deque[list[Piece]] = collections.deque()
        self._wake = asyncio.Event()
        self._ended = False  # the length 0 came
        self._error: str | None = None
        self._paused = False
        self._draining = False  # answered before the end: what still comes is dropped
        self._scratch = bytearray()
        self._last = time.monotonic()  # when the last bytes came

    # -- what the transport calls ----------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._draining:
            return memoryview(self._scratch)
        target = self._header if self._piece is None else self._piece
        return memoryview(target)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._draining:
            return
        self._last = time.monotonic()
        self._filled += nbytes
        if self._piece is None:
            if self._filled == HEADER:
                self._filled = 0
                self._length(int.from_bytes(self._header, "big"))
        elif self._filled == len(self._piece):
            self._batch.append((self._compressed, self._piece))
            self._batch_size += len(self._piece)
            self._piece, self._filled = None, 0
            if self._batch_size >= BATCH:
                self._hand_on()

    def _length(self, value: int) -> None:
        length = value & ~ZSTD
        if self._ended or self._error:
            self._fail("the client sent more after the stream's end")
        elif value == ZSTD:
            self._fail("a compressed piece of no bytes")
        elif length == 0:
            self._ended = True
            self._hand_on()
            self.transport.pause_reading()  # nothing more is read: the answer comes next
            self._wake.set()
        elif length > LARGEST:
            self._fail(f"a piece of {length:,} bytes is larger than {LARGEST:,}")
        else:
            self._piece, self._compressed = bytearray(length), bool(value & ZSTD)

    def _hand_on(self) -> None:
        if self._batch:
            self._ready.append(self._batch)
            self._batch, self._batch_size = [], 0
            self._wake.set()
            if len(self._ready) >= AHEAD and not self._paused:
                self._paused = True
                self.transport.pause_reading()

    def _fail(self, why: str) -> None:
        if self._error is None:
            self._error = why
        self._wake.set()
        if not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        if not self._ended:
            self._fail(_GONE)
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._ended:
            self._fail(_GONE)

    # -- what the route calls --------------------------------------------------------------

    async def batches(self) -> AsyncIterator[list[Piece]]:
        """The pieces (compressed or not, the piece), a list of about a megabyte at a time,
        until the length 0; raises
        :class:`UpgradeError` when the client broke off or broke the protocol."""
        while True:
            if self._ready:
                batch = self._ready.popleft()
                if self._paused and len(self._ready) < AHEAD and self._error is None:
                    self._paused = False
                    self.transport.resume_reading()
                yield batch
            elif self._error is not None:
                raise UpgradeError(self._error)
            elif self._ended:
                return
            else:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), IDLE)
                except TimeoutError:
                    if time.monotonic() - self._last >= IDLE:  # a slow client is no idle one
                        raise UpgradeError(f"the client sent nothing for {IDLE:.0f} s") from None

    def answer(self, document: dict[str, Any]) -> None:
        """The one line of the answer (``status`` says how it went, as in HTTP), then the
        connection closes once it is written. Answered before the stream's end, what the
        client still sends is read and dropped until it stops (it looks for the answer
        before each piece) or for ``LINGER`` seconds: closed with unread bytes, the
        connection would be reset, and the answer lost with it."""
        if self.transport.is_closing():
            return
        self.transport.write(json.dumps(document).encode() + b"\n")
        if self._ended or self._error == _GONE:
            self.transport.close()
            return
        self._draining, self._scratch = True, bytearray(BATCH)
        self.transport.resume_reading()
        asyncio.get_running_loop().call_later(LINGER, self.transport.close)


def upgrade_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of ``Upgrade`` when ``Connection`` asks for it."""
    connection: list[bytes] = []
    token = None
    for name, value in headers:
        if name == b"connection":
            connection += [part.strip().lower() for part in value.split(b",")]
        elif name == b"upgrade":
            token = value.strip().lower()
    return token if b"upgrade" in connection else None


class UpgradingHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, which leaves WebSocket aside upgrades nothing: a request
    for one of ``TOKENS`` is handed to the app with a way to take the connection over."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if not self.parser.should_upgrade():  # llhttp saw both headers; most requests: no
            return
        token = upgrade_token(self.headers)
        if token in TOKENS and self.cycle is not None and self.cycle.scope is self.scope:
            self.cycle.keep_alive = False  # refused, it is answered and the connection closes
            scope = cast(dict[str, Any], self.scope)
            scope.setdefault("extensions", {})[EXTENSION] = self._take_over(token)

    def _unsupported_upgrade_warning(self) -> None:
        """httptools stopped after the head of an upgrade request: for our tokens nothing is
        read until the route decides (a client that sent more before the 101 broke the
        protocol, and those bytes are lost, so its stream fails whole)."""
        if upgrade_token(self.headers) in TOKENS:
            self.flow.pause_reading()
        else:
            super()._unsupported_upgrade_warning()

    def _take_over(self, token: bytes) -> Callable[[], PieceStream]:
        cycle = self.cycle

        def take_over() -> PieceStream:
            # uvicorn writes nothing more for this request, and the connection no longer
            # counts as one of its own (it closes when the stream is done)
            cycle.disconnected = True
            self.connections.discard(self)
            transport = self.transport
            transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "
                + token
                + b"\r\n\r\n"
            )
            stream = PieceStream(transport)
            transport.set_protocol(stream)
            transport.resume_reading()
            return stream

        return take_over
