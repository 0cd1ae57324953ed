"""A request body as S3 reads it, for every operation that takes one (PutObject, UploadPart,
the XML bodies): ``aws-chunked`` bodies decoded with their chunk and trailer signatures
checked, plain signed bodies hashed against ``x-amz-content-sha256``.

The body comes off the event loop in pieces of up to ``BATCH`` bytes (the server receives
64 KiB at a time), and decoding and hashing run with the write in the worker thread, not on
the event loop: a 1 GiB upload then takes a thousand thread hops instead of sixteen
thousand, and SHA-256 of a gigabyte never stalls the loop's other clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from starlette.types import Receive

from speicher.protocols.s3 import sigv4
from speicher.protocols.s3.errors import S3Error

BATCH = 1024 * 1024


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
        buffer = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody", "The client went away before the body ended.")
            buffer += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(buffer) >= BATCH or (buffer and not more):
                piece = bytes(buffer)
                buffer.clear()
                yield piece
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
