"""A stream's pieces on the wire (replication/stream.py): compressed where zstd saves and as
they are where it does not, back byte for byte, and what the target decompresses stays
bounded however little it was sent."""

from __future__ import annotations

import os

import pytest
import zstandard

from speicher.replication.stream import HELD, LARGEST, PIECE, Packer, StreamError, Unpacker


class Collected:
    """Stands in for the Unframer (which needs btrfs receive): the items as they came."""

    def __init__(self) -> None:
        self.items: list[list[bytes]] = []

    def feed_all(self, chunks: list[bytes]) -> None:
        self.items.append([bytes(c) for c in chunks])


def unpacked(pieces: list[tuple[bool, bytes]]) -> Collected:
    out = Collected()
    Unpacker(out).feed_all(pieces)  # type: ignore[arg-type]
    return out


def test_what_shrinks_goes_compressed_and_what_does_not_goes_as_it_is() -> None:
    text = b"2026-12-07 INFO backup of /srv/finance finished, 1,234 files\n" * 17_000
    noise = os.urandom(PIECE)
    # mostly noise, text in the middle: the samples find it, the whole piece still shrinks
    mixed = noise[: PIECE // 4] + text[: PIECE // 2] + noise[: PIECE // 4]
    footer = b"SPEICHER-SEND-2\n" + (4_303_430_560).to_bytes(8, "big")
    pieces = [text[:PIECE], noise, mixed, noise[:12_345], text[:5000], footer]
    packer = Packer()
    packed = [packer.pack(p) for p in pieces]
    assert [c for c, _ in packed] == [True, False, True, False, True, False], [c for c, _ in packed]
    assert len(packed[0][1]) < PIECE // 50 and len(packed[2][1]) < PIECE * 3 // 4
    assert packed[1][1] is noise  # not copied either
    out = unpacked(packed)
    assert b"".join(b"".join(item) for item in out.items) == b"".join(pieces)


def test_a_megabyte_that_becomes_gigabytes_is_passed_on_in_bounded_items() -> None:
    zeros = zstandard.ZstdCompressor(level=1).compress(bytes(PIECE))
    largest = zstandard.ZstdCompressor(level=1).compress(bytes(LARGEST))
    assert len(zeros) + len(largest) < 1024
    out = unpacked([(True, zeros)] * 64 + [(True, largest), (False, b"tail")])
    sizes = [sum(len(c) for c in item) for item in out.items]
    assert sum(sizes) == 64 * PIECE + LARGEST + 4
    assert sizes == [HELD] * 8 + [LARGEST, 4], sizes  # never more than HELD or one piece


def test_a_frame_that_hides_or_overstates_its_size_or_is_damaged_is_one_clear_error() -> None:
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 10_000)
    huge = zstandard.ZstdCompressor().compress(bytes(LARGEST + 1))
    good = zstandard.ZstdCompressor().compress(os.urandom(1000) + bytes(100_000))
    damaged = good[:-20] + bytes(20)
    for bad, why in [
        (unsized, "does not say its size"),
        (huge, "does not say its size, or says one over"),
        (b"\0" * 8 + good[8:], "damaged"),  # its magic number gone
        (damaged, "damaged"),
    ]:
        with pytest.raises(StreamError, match=why):
            unpacked([(True, bad)])
