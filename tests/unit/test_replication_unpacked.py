"""The target's zstd body into the unframer (api/routes/replication.py): what one call
decompresses goes on in items of at most HELD bytes, and a damaged body is one clear error."""

from __future__ import annotations

import os

import pytest
import zstandard

from speicher.api.routes.replication import PIECE, _Unpacked
from speicher.replication.stream import StreamError


class Collected:
    """Stands in for the Unframer (which needs btrfs receive): the items as they came."""

    def __init__(self) -> None:
        self.items: list[list[bytes]] = []

    def feed_all(self, chunks: list[bytes]) -> None:
        self.items.append(list(chunks))


def test_a_small_body_that_becomes_a_big_one_is_passed_on_in_bounded_items() -> None:
    data = bytes(64 * PIECE) + os.urandom(12_345)  # 64 MiB of zeros: a few KiB compressed
    body = zstandard.ZstdCompressor(level=1).compress(data)
    assert len(body) < PIECE
    out = Collected()
    sink = _Unpacked(out)  # type: ignore[arg-type]
    sink.feed_all([body[i : i + 4096] for i in range(0, len(body), 4096)])
    assert b"".join(b"".join(item) for item in out.items) == data
    sizes = [sum(len(c) for c in item) for item in out.items]
    assert max(sizes) < _Unpacked.HELD + PIECE, sizes  # never the whole 64 MiB at once
    assert len(sizes) >= len(data) // (_Unpacked.HELD + PIECE)


def test_a_damaged_body_is_one_clear_error() -> None:
    body = zstandard.ZstdCompressor().compress(os.urandom(100_000))
    damaged = b"\x00" * 8 + body[8:]  # the frame's magic number gone
    with pytest.raises(StreamError, match="compressed stream is damaged"):
        _Unpacked(Collected()).feed_all([damaged])  # type: ignore[arg-type]
