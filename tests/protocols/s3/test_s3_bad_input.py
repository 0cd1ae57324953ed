"""Bodies that lie or break off, and PUTs past the quota, over S3: each gets its S3 error (or
the connection ends) and leaves the bucket as it was: no object, no half-written temp file,
an older object untouched."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions  # type: ignore[import-untyped]
import pytest
from test_s3_basics import client, code
from test_s3_copy_delete_tags import signed

from speicher_testing import Daemon
from world import make_pool, make_share, make_user

pytestmark = pytest.mark.system
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    data = make_share(daemon, "data", {"alice": "rw"}, s3=True)
    tiny = make_share(daemon, "tiny", {"alice": "rw"}, quota="8M", s3=True)
    r = daemon.api.post("/users/alice/s3-keys")
    assert r.status_code == 201, r.text
    return {"data": data, "tiny": tiny, "key": r.json()}


@pytest.fixture(scope="module")
def alice(daemon: Daemon, world: dict[str, Any]) -> Iterator[Any]:
    s3 = client(daemon, world["key"])
    yield s3
    s3.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".speicher-upload-*"))


def send_raw(daemon: Daemon, head: str, body: bytes, wait_answer: bool) -> bytes:
    """``head`` and ``body`` on one connection; the answer (what came before the server
    closed, or nothing when ``wait_answer`` is off and the client closes first)."""
    with socket.create_connection(("127.0.0.1", daemon.s3_port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + body)
        if not wait_answer:
            return b""
        answer = b""
        while b"\r\n\r\n" not in answer or b"</Error>" not in answer:
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
        return answer


def request_head(
    daemon: Daemon, method: str, path: str, headers: dict[str, str], length: int
) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{daemon.s3_port}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    lines.append(f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n\r\n"


def wait_until_clean(folder: Path, timeout: float = 30, quiet: float = 2) -> None:
    """No temp file in ``folder``, and none for ``quiet`` seconds: a request the client has
    given up may reach the server after the one before it was cleaned up, so one look at an
    empty folder proves nothing (that look made this test flaky)."""
    deadline = time.monotonic() + timeout
    clean_since: float | None = None
    while time.monotonic() < deadline:
        if leftovers(folder):
            clean_since = None
        elif clean_since is None:
            clean_since = time.monotonic()
        elif time.monotonic() - clean_since >= quiet:
            return
        time.sleep(0.05)
    assert leftovers(folder) == []


def test_a_put_past_the_quota_makes_nothing(world: dict[str, Any], alice: Any) -> None:
    alice.put_object(Bucket="tiny", Key="kept.bin", Body=b"small and kept")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.put_object(Bucket="tiny", Key="big.bin", Body=os.urandom(12 * MiB + 3))
    assert code(exc) == ("QuotaExceeded", 507)
    assert "quota" in exc.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # a replacement too
        alice.put_object(Bucket="tiny", Key="kept.bin", Body=os.urandom(12 * MiB + 3))
    assert code(exc) == ("QuotaExceeded", 507)
    assert (world["tiny"] / "kept.bin").read_bytes() == b"small and kept"
    assert not (world["tiny"] / "big.bin").exists()
    wait_until_clean(world["tiny"])
    alice.put_object(Bucket="tiny", Key="after.bin", Body=b"room again")  # nothing held


def _plain_put(daemon: Daemon, world: dict[str, Any], key: str, body: bytes, size: int) -> bytes:
    """A signed PUT of ``key`` announcing ``size`` bytes and sending ``body``: the answer,
    or nothing where the body is short (the client hangs up)."""
    _url, headers = signed(
        daemon,
        world["key"],
        "PUT",
        f"/data/{key}",
        unsigned=True,
    )
    head = request_head(daemon, "PUT", f"/data/{key}", headers, size)
    return send_raw(daemon, head, body, wait_answer=len(body) == size)


@pytest.mark.parametrize("size", [3 * MiB + 5, 200_001])  # streamed, and read whole
def test_a_body_cut_short_leaves_nothing(
    daemon: Daemon, world: dict[str, Any], alice: Any, size: int
) -> None:
    whole = _plain_put(daemon, world, f"cut/whole-{size}", os.urandom(size), size)
    assert whole.startswith(b"HTTP/1.1 200 "), whole[:300]  # the request itself is right
    alice.put_object(Bucket="data", Key=f"cut/old-{size}", Body=b"the old bytes")
    for key in (f"cut/new-{size}", f"cut/old-{size}"):
        _plain_put(daemon, world, key, os.urandom(size // 2), size)  # then hangs up
    wait_until_clean(world["data"])
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.head_object(Bucket="data", Key=f"cut/new-{size}")
    assert code(exc)[1] == 404
    got = alice.get_object(Bucket="data", Key=f"cut/old-{size}")["Body"].read()
    assert got == b"the old bytes"


def _chunked_head(daemon: Daemon, world: dict[str, Any], key: str, decoded: int) -> dict[str, str]:
    _url, headers = signed(
        daemon,
        world["key"],
        "PUT",
        f"/data/{key}",
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(decoded),
        },
        trailer="x-amz-checksum-crc32",  # signs STREAMING-UNSIGNED-PAYLOAD-TRAILER
    )
    assert headers["X-Amz-Content-SHA256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    return headers


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (b"400\r\n" + b"x" * 10, 1024),  # a chunk cut off inside, the HTTP body complete
        (b"a\r\n0123456789\r\n", 10),  # no last chunk
        (b"a\r\n0123456789\r\n0\r\n\r\n", 100),  # fewer bytes than declared
        (b"zz\r\n0123456789\r\n0\r\n\r\n", 10),  # not a chunk size
    ],
)
def test_a_broken_aws_chunked_body_is_refused(
    daemon: Daemon, world: dict[str, Any], alice: Any, body: bytes, decoded: int
) -> None:
    """A complete HTTP body whose aws-chunked content is broken: 400 and nothing made. The
    signature covers the headers only (what SDKs send over HTTPS), so only the framing can
    be wrong here."""
    good = b"a\r\n0123456789\r\n0\r\n\r\n"
    headers = _chunked_head(daemon, world, "chunked/good", 10)
    answer = send_raw(
        daemon, request_head(daemon, "PUT", "/data/chunked/good", headers, len(good)), good, True
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]  # the framing is all that is wrong
    key = "chunked/broken"
    headers = _chunked_head(daemon, world, key, decoded)
    answer = send_raw(
        daemon, request_head(daemon, "PUT", f"/data/{key}", headers, len(body)), body, True
    )
    status = answer.split(b"\r\n", 1)[0]
    assert b" 400 " in status, answer[:300]
    assert b"<Code>" in answer and b"Traceback" not in answer
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        alice.head_object(Bucket="data", Key=key)
    assert code(exc)[1] == 404
    wait_until_clean(world["data"])
