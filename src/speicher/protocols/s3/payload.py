"""A request body as S3 reads it, for every operation that takes one (PutObject, UploadPart,
the XML bodies): ``aws-chunked`` bodies decoded with their chunk and trailer signatures
checked, plain signed bodies hashed against ``x-amz-content-sha256``.

The body comes off the event loop in pieces of up to ``BATCH`` bytes (the server receives
64 KiB at a time), and decoding and hashing run with the write in the worker thread, not on
the event loop: a 1 GiB upload then takes a thousand thread hops instead of sixteen
thousand, and SHA-256 of a gigabyte never stalls the loop's other clients.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.types import Receive

from speicher.protocols.s3 import sigv4
from speicher.protocols.s3.errors import S3Error

BATCH = 1024 * 1024
# pieces from this size are hashed in a second thread while the first writes them
PARALLEL_HASH = 256 * 1024


class Payload:
    def __init__(self, verified: sigv4.Verified, headers: Mapping[str, str]) -> None:
        self.decoder: sigv4.ChunkedDecoder | None = None
        self.hasher: sigv4.PayloadHasher | None = None
        if verified.payload.startswith("STREAMING-"):
            self.decoder = sigv4.ChunkedDecoder(
                verified,
                decoded_length=headers.get("x-amz-decoded-content-length"),
                trailer=headers.get("x-amz-trailer"),
            )
        elif verified.payload != sigv4.UNSIGNED_PAYLOAD:
            self.hasher = sigv4.PayloadHasher(verified.payload)
        length = headers.get("content-length")
        # what the decoded body must come to, where the request says (a chunked one checks
        # x-amz-decoded-content-length itself)
        self.length = int(length) if self.decoder is None and length and length.isdigit() else None
        self.received = 0  # payload bytes, decoded
        self.trailers: dict[str, str] = {}

    async def pieces(self, receive: Receive) -> AsyncIterator[bytes]:
        """The body as it came, in pieces of up to ``BATCH`` bytes (give each to
        :meth:`decode` in the worker thread)."""
        async for batch in self.batches(receive):
            yield batch[0] if len(batch) == 1 else b"".join(batch)

    async def batches(self, receive: Receive) -> AsyncIterator[list[bytes]]:
        """The body as it came, in lists of the server's pieces, ``BATCH`` bytes or more
        each but the last: never joined, so a large body is not copied once more into
        fresh memory (a write takes the list whole, ``writev``)."""
        batch: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody", "The client went away before the body ended.")
            body = message.get("body", b"")
            if body:
                batch.append(body)
                size += len(body)
            more = bool(message.get("more_body", False))
            if size >= BATCH or (batch and not more):
                yield batch
                batch, size = [], 0
            if not more:
                return

    def decode(self, piece: bytes) -> bytes:
        """The payload bytes of a piece of the body (hashed, or decoded and signature-checked
        on the way)."""
        if self.decoder is not None:
            piece = self.decoder.feed(piece)
        elif self.hasher is not None:
            self.hasher.update(piece)
        self.received += len(piece)
        return piece

    async def whole(self, receive: Receive, limit: int, too_large: S3Error) -> bytes:
        """A small body (XML) read whole, decoded and checked on the event loop;
        ``too_large`` past ``limit`` bytes."""
        body = bytearray()
        async for piece in self.pieces(receive):
            body += self.decode(piece)
            if len(body) > limit:
                raise too_large
        self.finish()
        return bytes(body)

    def finish(self) -> dict[str, str]:
        """At the end of the body: the whole of it checked (signatures, hash, length); its
        trailers (``x-amz-checksum-*`` of a chunked body)."""
        if self.decoder is not None:
            self.trailers = self.decoder.finish()
        elif self.hasher is not None:
            self.hasher.check()
        if self.length is not None and self.received != self.length:
            raise S3Error("IncompleteBody", "The body ended before its Content-Length.")
        return self.trailers


class Sink(Protocol):
    """Where a body's bytes go (a ShareFS upload, an internal file of a multipart upload)."""

    size: int

    def write(self, data: bytes | list[bytes]) -> None: ...


class Checksum(Protocol):
    def update(self, data: bytes) -> None: ...


class Writer:
    """A body into its sink, a piece at a time, in a worker thread.

    A piece is decoded first (an aws-chunked one); then, given ``hashers``, its write and its
    hashes (the MD5 of the ETag, the client's checksum, a signed payload's SHA-256) run side
    by side in two threads (os.write and hashlib let go of the GIL), so the MD5 does not
    serialize the stream. Small pieces are hashed in line. ``limit``: the most bytes the
    sink may take (``too_large`` past it)."""

    def __init__(
        self,
        body: Payload,
        sink: Sink,
        wanted: Checksum | None,
        hashers: concurrent.futures.ThreadPoolExecutor | None,
        limit: int | None = None,
        too_large: S3Error | None = None,
    ) -> None:
        self.body = body
        self.sink = sink
        self.wanted = wanted
        self.hashers = hashers
        self.limit = limit
        self.too_large = too_large
        self.md5 = hashlib.md5(usedforsecurity=False)

    def piece(self, piece: bytes | list[bytes]) -> None:
        """One piece of the body, or a list of them (:meth:`Payload.batches`)."""
        plain = self.body.decoder is None  # the piece is the payload as it is
        data: list[bytes]
        if plain:
            data = piece if isinstance(piece, list) else [piece]
        else:
            joined = piece if isinstance(piece, bytes) else b"".join(piece)
            data = [self.body.decode(joined)]
        size = sum(len(d) for d in data)
        if self.hashers is None or size < PARALLEL_HASH:
            self._hash(data, plain)
            if size:
                self.sink.write(data if len(data) > 1 else data[0])
        else:
            hashing = self.hashers.submit(self._hash, data, plain)
            try:
                self.sink.write(data if len(data) > 1 else data[0])
            finally:
                hashing.result()
        if self.limit is not None and self.sink.size > self.limit:
            raise self.too_large or S3Error("EntityTooLarge", "The body is too large.")

    def _hash(self, data: list[bytes], plain: bool) -> None:
        for chunk in data:
            if plain:
                self.body.decode(chunk)  # the payload's SHA-256 and the count of bytes received
            self.md5.update(chunk)
            if self.wanted is not None:
                self.wanted.update(chunk)

    async def stream(self, receive: Receive, run: Callable[..., Awaitable[Any]]) -> None:
        """The whole body, piece by piece through ``run`` (a worker thread): while one piece
        is written and hashed, the event loop receives the next. A failure waits for the
        piece in flight, so the caller may discard the sink at once."""
        pending: asyncio.Future[Any] | None = None
        try:
            async for batch in self.body.batches(receive):
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(run(self.piece, batch))
            if pending is not None:
                await pending
                pending = None
        except BaseException:
            if pending is not None:
                await asyncio.wait([pending])
            raise
