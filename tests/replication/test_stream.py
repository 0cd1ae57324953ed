"""The replication stream engine between two real btrfs filesystems on loop devices: a full
stream of a share's snapshot with 200 files of unaligned sizes, an incremental one after 10
changed and 5 deleted files (and it is small), byte-identical results; and a stream that is
cut, altered, killed, or received twice leaves no subvolume behind."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopfs import filesystem

from speicher.replication.stream import (
    FOOTER,
    INCOMING,
    Receiver,
    Sender,
    Sent,
    StreamError,
    Unframer,
    estimate,
    framed,
    remove_incoming,
)
from speicher.system import btrfs

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def pools() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="speicher-stream-") as tmp:
        base = Path(tmp)
        with filesystem(base, "source") as source, filesystem(base, "target") as target:
            yield source, target


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def replicate(snapshot: Path, replicas: Path, parent: Path | None = None) -> tuple[Path, Sent]:
    with Sender(snapshot, parent) as sender, Receiver(replicas) as receiver:
        for piece in sender.pieces():
            receiver.feed(piece)
        assert sender.sent is not None
        return receiver.finish(sender.sent), sender.sent


def share_and_snapshot(source: Path, name: str, sizes: list[int], when: str) -> Path:
    """A share ``name`` with a file of each size in ``sizes``, and its snapshot ``@GMT-when``."""
    share = source / name
    btrfs.subvolume_create(share)
    for i, size in enumerate(sizes):
        (share / f"f{i}.bin").write_bytes(os.urandom(size))
    snap = source / ".snapshots" / f"@GMT-{when}"
    snap.parent.mkdir(exist_ok=True)
    btrfs.snapshot(share, snap)
    return snap


def leftovers(replicas: Path) -> list[str]:
    return sorted(p.name for p in replicas.iterdir() if p.name.startswith(INCOMING))


def test_full_then_incremental_streams_make_identical_snapshots(
    pools: tuple[Path, Path],
) -> None:
    source, target = pools
    share = source / "docs"
    btrfs.subvolume_create(share)
    for i in range(200):
        folder = share / f"dept-{i % 7}"
        folder.mkdir(exist_ok=True)
        (folder / f"file-{i:03d}.bin").write_bytes(os.urandom(1 + i * 977 % 70_001))
    (share / "dept-0" / "empty.txt").touch()
    snaps, replicas = source / ".snapshots", target / ".replicas" / "docs"
    snaps.mkdir()
    first = snaps / "@GMT-2026.12.01-10.00.00"
    btrfs.snapshot(share, first)
    guess = estimate(first)
    got, full = replicate(first, replicas)
    # the estimate from --no-data is close to the stream: data ranges plus metadata
    assert 0.9 * full.bytes < guess < 1.1 * full.bytes, (guess, full.bytes)
    assert got == replicas / first.name / first.name
    assert digests(got) == digests(first)
    assert btrfs.is_subvolume(got)
    with pytest.raises(OSError):  # a replica is read-only
        (got / "dept-0" / "new.txt").write_text("no")
    # 10 files changed, 5 deleted: the increment carries only that
    for i in range(10):
        (share / f"dept-{i % 7}" / f"file-{i:03d}.bin").write_bytes(os.urandom(5_000 + i))
    for i in range(100, 105):
        (share / f"dept-{i % 7}" / f"file-{i:03d}.bin").unlink()
    second = snaps / "@GMT-2026.12.01-11.00.00"
    btrfs.snapshot(share, second)
    guess = estimate(second, first)
    got2, increment = replicate(second, replicas, parent=first)
    assert 0.9 * increment.bytes < guess < 1.1 * increment.bytes, (guess, increment.bytes)
    assert digests(got2) == digests(second)
    assert not (got2 / "dept-2" / "file-100.bin").exists()
    assert increment.bytes < full.bytes / 10, (increment.bytes, full.bytes)
    assert digests(replicas / first.name / first.name) == digests(first)  # untouched
    assert leftovers(replicas) == []


def test_a_stream_that_is_cut_altered_or_killed_leaves_nothing(
    pools: tuple[Path, Path],
) -> None:
    source, target = pools
    snap = share_and_snapshot(source, "cut", [20_000 + i for i in range(50)], "2026.12.01-12.00.00")
    replicas = target / ".replicas" / "cut"
    with Sender(snap) as sender:
        stream = b"".join(sender.pieces())
        assert sender.sent is not None
        sent = sender.sent
    assert sent.bytes == len(stream)
    # cut: the receiver is told how much was sent, and gets less
    for cut in (len(stream) // 2, len(stream) - 1):
        with pytest.raises(StreamError), Receiver(replicas) as receiver:
            receiver.feed(stream[:cut])
            receiver.finish(sent)
        assert list(replicas.iterdir()) == []
    # altered on the way: btrfs receive checks each command's CRC32 ...
    middle = len(stream) - 30_000
    altered = stream[:middle] + bytes([stream[middle] ^ 0xFF]) + stream[middle + 1 :]
    with pytest.raises(StreamError, match="crc32"), Receiver(replicas) as receiver:
        receiver.feed(altered)
        receiver.finish(sent)
    assert list(replicas.iterdir()) == []
    # ... and the receiver its count against the sender's, also when btrfs receive was content
    with pytest.raises(StreamError, match="not whole"), Receiver(replicas) as receiver:
        receiver.feed(stream)
        receiver.finish(Sent(sent.bytes + 1))
    assert list(replicas.iterdir()) == []
    # pieces swapped: the count is right, btrfs receive refuses the commands
    piece, at = 64 * 1024, len(stream) // 3  # in the middle, past the stream's header
    swapped = (
        stream[:at] + stream[at + piece : at + 2 * piece] + stream[at : at + piece]
        + stream[at + 2 * piece :]
    )  # fmt: skip
    assert len(swapped) == len(stream) and swapped != stream
    with pytest.raises(StreamError, match="btrfs receive"), Receiver(replicas) as receiver:
        receiver.feed(swapped)
        receiver.finish(sent)
    assert list(replicas.iterdir()) == []
    # the sender killed mid-stream: the receiver is left without a finish
    with Receiver(replicas) as receiver:
        receiver.feed(stream[: len(stream) // 3])
    assert list(replicas.iterdir()) == []
    # a receiving process killed: its staging folder stays until the next start removes it
    half = Receiver(replicas).__enter__()
    half.feed(stream[: len(stream) // 2])
    assert half._proc is not None
    half._proc.kill()  # as kill -9 of the daemon would: no abort, no clean-up
    half._proc.wait()
    half._end_writer()  # its thread, which the process's death would end
    assert leftovers(replicas) != []
    assert remove_incoming(replicas) != [] and list(replicas.iterdir()) == []
    # whole: accepted once; the same snapshot again is refused and leaves only the first
    with Receiver(replicas) as receiver:
        receiver.feed(stream)
        got = receiver.finish(sent)
    assert digests(got) == digests(snap) and got == replicas / snap.name / snap.name
    with pytest.raises(StreamError, match="already there"), Receiver(replicas) as receiver:
        receiver.feed(stream)
        receiver.finish(sent)
    assert sorted(p.name for p in replicas.iterdir()) == [snap.name]


def test_a_stream_against_a_parent_the_target_lacks_is_refused(
    pools: tuple[Path, Path],
) -> None:
    source, target = pools
    share = source / "orphan"
    btrfs.subvolume_create(share)
    (share / "a.txt").write_text("one")
    snaps = source / ".snapshots"
    snaps.mkdir(exist_ok=True)
    base, later = snaps / "@GMT-2026.12.01-13.00.00", snaps / "@GMT-2026.12.01-14.00.00"
    btrfs.snapshot(share, base)
    (share / "a.txt").write_text("two")
    btrfs.snapshot(share, later)
    replicas = target / ".replicas" / "orphan"
    with pytest.raises(StreamError, match="btrfs receive"):
        replicate(later, replicas, parent=base)  # base never went over
    assert list(replicas.iterdir()) == []


def test_a_framed_stream_carries_its_size_and_a_cut_one_is_refused(
    pools: tuple[Path, Path],
) -> None:
    """What goes over the network: the stream and its footer in one body, fed in pieces of
    odd sizes; cut anywhere, in the stream or in the footer, it is refused and leaves
    nothing."""
    source, target = pools
    sizes = [3_333 * i + 1 for i in range(30)]
    snap = share_and_snapshot(source, "wire", sizes, "2026.12.01-15.00.00")
    with Sender(snap) as sender:
        body = b"".join(framed(sender))
    replicas = target / ".replicas" / "wire"
    for cut in (len(body) - 1, len(body) - FOOTER, len(body) - FOOTER - 1, len(body) // 2):
        with pytest.raises(StreamError), Receiver(replicas) as receiver:
            unframer = Unframer(receiver)
            unframer.feed(body[:cut])
            unframer.finish()
        assert list(replicas.iterdir()) == [], cut
    with Receiver(replicas) as receiver:
        unframer = Unframer(receiver)
        for start in range(0, len(body), 7_919):  # pieces that split the footer too
            unframer.feed(body[start : start + 7_919])
        got = unframer.finish()
    assert digests(got) == digests(snap)
    # as the route feeds it: lists of chunks as they came, some shorter than the footer
    sizes, at = [1, 5, FOOTER - 1, FOOTER, FOOTER + 1, 65_536, 3], 0
    chunks: list[bytes] = []
    while at < len(body):
        chunks.append(body[at : at + sizes[len(chunks) % len(sizes)]])
        at += len(chunks[-1])
    with Receiver(target / ".replicas" / "wire-lists") as receiver:
        unframer = Unframer(receiver)
        for first in range(0, len(chunks), 11):
            unframer.feed_all(chunks[first : first + 11])
        listed = unframer.finish()
    assert digests(listed) == digests(snap)
