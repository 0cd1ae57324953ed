"""A worker process's relay of the requests only the daemon may answer.

S3's worker processes (``workers.py``) answer object requests themselves. A request that
changes the daemon's state beyond files (CreateBucket and DeleteBucket make and remove
shares, which renders smb.conf and reloads Samba; the bucket settings are share rows) is
passed to the daemon unchanged, over its root-only control socket: the same method, path,
query, headers and body bytes, so the daemon checks the signature itself and answers as it
would have on its own port. The client's address goes with it in ``x-speicher-client``,
which only the control socket's app believes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.types import Receive, Scope, Send

from speicher.protocols.s3.errors import S3Error

CLIENT_HEADER = b"x-speicher-client"
# what a relayed request's body may come to: the bucket-level bodies are small XML documents
MAX_BODY = 2 * 1024 * 1024
_NOT_RELAYED = {
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"keep-alive",
    b"expect",
    b"upgrade",
    CLIENT_HEADER,
}
_NOT_RETURNED = {b"connection", b"keep-alive", b"transfer-encoding", b"date"}
_MAX_HEAD = 256 * 1024


def relayed(method: str, key: str) -> bool:
    """Whether a worker relays the request: a bucket-level PUT or DELETE."""
    return not key and method in ("PUT", "DELETE")


async def relay(control: Path, scope: Scope, receive: Receive, send: Send) -> None:
    """The request to the daemon's control socket, and its answer back to the client."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            raise S3Error("MalformedXML", "The XML you provided was too large.")
        if not message.get("more_body", False):
            break
    try:
        reader, writer = await asyncio.open_unix_connection(str(control), limit=_MAX_HEAD)
    except OSError:
        raise _unavailable() from None
    try:
        writer.write(_request(scope, bytes(body)))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        rest = await reader.read()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise _unavailable() from None
    finally:
        writer.close()
    status, headers, chunked = _response_head(head)
    if chunked:
        rest = _dechunk(rest)
        headers.append((b"content-length", str(len(rest)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": rest})


def _unavailable() -> S3Error:
    """The daemon cannot be reached (it starts or stops)."""
    return S3Error("ServiceUnavailable", "The S3 service is starting or stopping; try again.", 503)


def _request(scope: Scope, body: bytes) -> bytes:
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    lines = [scope["method"].encode("ascii") + b" " + target + b" HTTP/1.1"]
    lines += [
        name + b": " + value for name, value in scope["headers"] if name.lower() not in _NOT_RELAYED
    ]
    lines.append(b"content-length: " + str(len(body)).encode())
    lines.append(b"connection: close")
    client = scope.get("client")
    if client:
        lines.append(CLIENT_HEADER + b": " + str(client[0]).encode("ascii", "replace"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _response_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]], bool]:
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise S3Error(
            "InternalError", "We encountered an internal error. Please try again."
        ) from None
    headers = []
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        if name not in _NOT_RETURNED:
            headers.append((name, value.strip()))
    return status, headers, chunked


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    at = 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return bytes(out)
        size = int(data[at:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        at = end + 2 + size + 2
