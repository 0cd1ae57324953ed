"""Counting an ASGI app's requests: bytes of the bodies in and out, and the answers that were
errors (4xx: the client's, 5xx: ours). A request whose client went away before an answer
counts as a request without an error."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from speicher.metrics.counters import ProtocolCounters


async def counted(
    app: ASGIApp,
    counters: ProtocolCounters,
    protocol: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Run ``app`` on one HTTP request and count it under ``protocol``."""
    received = sent = status = 0

    async def receiving() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
        return message

    async def sending(message: Message) -> None:
        nonlocal sent, status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            sent += len(message.get("body", b""))
        await send(message)

    try:
        await app(scope, receiving, sending)
    except BaseException:
        status = status or 500
        raise
    finally:
        counters.request(protocol, received, sent, 400 <= status < 500, status >= 500)


class Counted:
    """``app`` with its HTTP requests counted (S3's app, in the daemon and in its workers)."""

    def __init__(self, app: ASGIApp, counters: ProtocolCounters, protocol: str) -> None:
        self.app = app
        self.counters = counters
        self.protocol = protocol

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await counted(self.app, self.counters, self.protocol, scope, receive, send)
