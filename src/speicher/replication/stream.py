"""Snapshots from one btrfs pool into another, as ``btrfs send`` streams: the engine under
replication (issue 11). It knows nothing of pairing, tasks or the network: a :class:`Sender`
gives a snapshot's stream in pieces, a :class:`Receiver` takes pieces and makes the snapshot
on the target side, whole or not at all.

Whole or not at all, because ``btrfs receive`` is not: killed, or fed a stream that stops,
it leaves a writable, half-filled subvolume behind, and a stream cut exactly between two
commands is taken for complete (btrfs-progs finishes the subvolume at end of input). So:

- a stream is received into a staging folder (``.incoming-<random>``) beside the replicas,
  never into their own folder, so a half-made subvolume is never mistaken for a replica;
- the sender counts the stream's bytes; the receiver accepts the snapshot only when its own
  count is the same and ``btrfs receive`` succeeded (which checks each command's CRC32C: a
  piece altered, swapped or lost inside the stream fails there), and only then renames the
  staging folder to the snapshot's name (one ``rename``: atomic). A replica is therefore
  ``<replicas>/<name>/<name>``: btrfs refuses to rename a read-only subvolume (EROFS: its
  ``..`` entry would change), and making it writable for the rename would clear the received
  UUID that later incremental streams are matched by;
- anything else (an error, a short or altered stream, a kill of either side) removes the
  staging folder with what it holds; :func:`remove_incoming` does so for every staging
  folder left by a process that was killed, at start.

No checksum of the whole stream is taken on top: every command of a send stream carries its
own CRC32C, which ``btrfs receive`` checks, so what the count cannot see (bytes altered or
pieces swapped inside the stream) fails there; between two boxes TLS authenticates every
byte besides (AEAD, with the target's certificate pinned at pairing). Until 2026-12-07 both
ends took a SHA-256, then a CRC-32, of the stream: measured during a replication between two
daemons here (bench/replication_daemons.py), that took more CPU than the TLS, on the two
cores that ``btrfs send`` and ``btrfs receive`` need too.

Incremental streams (``parent``) carry only what changed since a snapshot both sides hold;
btrfs finds that snapshot on the target by its received UUID.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

from speicher.system import btrfs
from speicher.system.run import minimal_env

log = logging.getLogger(__name__)

PIECE = 1024 * 1024
INCOMING = ".incoming-"


def _widen(pipe: IO[bytes] | None) -> None:
    """A pipe to or from btrfs holds a piece (the kernel's default is 64 KiB): btrfs and the
    daemon then take turns a megabyte at a time, with fewer wake-ups on two cores."""
    if pipe is not None:
        with contextlib.suppress(OSError):  # a lower /proc/sys/fs/pipe-max-size: the default
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIECE)


_Bytes = bytes | bytearray | memoryview  # nobody changes them once handed on
Piece = tuple[bool, bytearray]  # a piece as the wire brought it: compressed?, its bytes


class StreamError(Exception):
    """A stream that could not be sent or received; its text says why, for people."""


@dataclass(frozen=True)
class Sent:
    """What a sender sent: the stream's size."""

    bytes: int


class Sender:
    """``btrfs send`` of ``snapshot`` (read-only), incremental against ``parent`` when given.

    Iterate :meth:`pieces`; then :attr:`sent` says the stream's size. Closing (or
    leaving the ``with``) before the end kills ``btrfs send``."""

    def __init__(self, snapshot: Path, parent: Path | None = None) -> None:
        argv = ["btrfs", "send", "-q"]
        if parent is not None:
            argv += ["-p", str(parent)]
        argv.append(str(snapshot))
        self.argv = argv
        self._count = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.sent: Sent | None = None

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pieces(self) -> Iterator[bytes]:
        self._proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=minimal_env(),
        )
        assert self._proc.stdout is not None
        _widen(self._proc.stdout)
        while piece := self._proc.stdout.read(PIECE):
            self._count += len(piece)
            yield piece
        stderr = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        if self._proc.wait() != 0:
            raise StreamError(f"btrfs send failed: {_one_line(stderr)}")
        self.sent = Sent(self._count)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            self._proc.wait()
            for pipe in (self._proc.stdout, self._proc.stderr):
                if pipe is not None:
                    pipe.close()


class Receiver:
    """``btrfs receive`` into a staging folder of ``replicas`` (a folder on the target pool);
    :meth:`finish` moves the snapshot into ``replicas`` when the stream was whole.

    Use as a context manager: leaving it without :meth:`finish` (an error, a kill of the
    sender) removes everything the stream made."""

    def __init__(self, replicas: Path) -> None:
        self.replicas = replicas
        self.staging = replicas / f"{INCOMING}{secrets.token_hex(8)}"
        self._count = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_path = self.staging.with_name(self.staging.name + ".log")
        self.received: Path | None = None
        self.received_bytes = 0
        # pieces are written into btrfs receive by a thread of their own, so the caller's
        # reading of the next piece overlaps the write (which lets go of the GIL); an item is
        # one call's pieces (about a megabyte), written as they came, without joining them
        self._pieces: queue.Queue[list[_Bytes] | None] = queue.Queue(maxsize=4)
        self._writer: threading.Thread | None = None
        self._broken = False

    def __enter__(self) -> Receiver:
        self.replicas.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(mode=0o700)
        with self._stderr_path.open("wb") as errors:
            self._proc = subprocess.Popen(
                # -C: chrooted into the staging folder, a stream cannot name a path outside it
                ["btrfs", "receive", "-e", "-C", str(self.staging)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=minimal_env(),
            )
        _widen(self._proc.stdin)
        self._writer = threading.Thread(target=self._write, name="btrfs-receive", daemon=True)
        self._writer.start()
        return self

    def _write(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        while (pieces := self._pieces.get()) is not None:
            if self._broken:
                continue  # drain: the caller learns of it at its next feed or at finish
            try:
                for piece in pieces:
                    stdin.write(piece)
            except (BrokenPipeError, ValueError):
                self._broken = True
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.close()

    def _end_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            self._pieces.put(None)
            self._writer.join()

    def __exit__(self, *exc: object) -> None:
        if self.received is None:
            self.abort()

    def feed(self, piece: _Bytes) -> None:
        self.feed_all([piece])

    def feed_all(self, pieces: list[_Bytes]) -> None:
        """The next pieces of the stream (bytes or views of bytes that nobody changes)."""
        if self._broken:
            raise StreamError(f"btrfs receive stopped: {self._errors()}")
        self._count += sum(len(piece) for piece in pieces)
        self._pieces.put(pieces)

    def finish(self, sent: Sent) -> Path:
        """The snapshot, in ``replicas``, once the stream was all of what was sent."""
        assert self._proc is not None
        self._end_writer()
        code = self._proc.wait()
        if code != 0:
            raise StreamError(f"btrfs receive failed: {self._errors()}")
        if self._count != sent.bytes:
            raise StreamError(
                f"the stream was not whole: {self._count:,} bytes received of {sent.bytes:,}"
            )
        made = list(self.staging.iterdir())
        if len(made) != 1 or not btrfs.is_subvolume(made[0]):
            raise StreamError(f"the stream made {len(made)} entries, not one snapshot")
        name = made[0].name
        folder = self.replicas / name
        if folder.exists():
            raise StreamError(f"{name} is already there")
        os.rename(self.staging, folder)  # the folder is plain: it may move
        self.received = folder / name
        self.received_bytes = self._count
        with contextlib.suppress(FileNotFoundError):
            self._stderr_path.unlink()
        return self.received

    def abort(self) -> None:
        """Stop ``btrfs receive`` and remove whatever it made."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        self._end_writer()  # its writes fail on the dead process's pipe; it closes the pipe
        self._remove_staging()

    def _errors(self) -> str:
        with contextlib.suppress(OSError):
            return _one_line(self._stderr_path.read_text(errors="replace")) or "no reason given"
        return "no reason given"

    def _remove_staging(self) -> None:
        remove_staging(self.staging)
        with contextlib.suppress(FileNotFoundError):
            self._stderr_path.unlink()


# On the wire a stream is followed by its footer, so one request body carries both and the
# sender need not know the size before it starts: magic, the stream's size (8 bytes, big
# endian). Version 1 carried a SHA-256 besides: a box of version 2 refuses its streams as
# cut off, so both boxes must run a Speicher of 2026-12-07 or later.
MAGIC = b"SPEICHER-SEND-2\n"
FOOTER = len(MAGIC) + 8
# Between two boxes the framed stream goes over an HTTP/1.1 connection upgraded to this
# protocol (api/upgrade.py): pieces, each a 4-byte big-endian length and its bytes, a length
# of 0 at the end, then the target's answer as one line of JSON. A length with the ZSTD bit
# set is that of a piece sent as one zstd frame (:class:`Packer`), the others go as they
# are. Version 2 (2026-12-07) compressed the whole stream or none of it, as one zstd stream
# announced by ``Content-Encoding``; a box of version 3 answers its requests with 426.
UPGRADE = "speicher-replication/3"
ZSTD = 1 << 31
# zstd level 1: measured here, a 2 GiB full stream took 15.9 s at level 3, 13.1 s at level 1
# and 12.4 s uncompressed; level 1 still shrinks office data well
ZSTD_LEVEL = 1
SAMPLES = 4  # places in a piece that are tried before the whole piece is
SAMPLE = 16 * 1024
HELD = 8 * PIECE  # decompressed bytes handed on at once, at most (and one piece)
LARGEST = 16 * PIECE  # what a piece may hold, compressed or not


class Packer:
    """Each piece of a stream as it goes on the wire: compressed (one zstd frame, with its
    size in the frame) when that saves, else as it is.

    What decides: ``SAMPLES`` slices of ``SAMPLE`` bytes spread over the piece are
    compressed first (a sixteenth of the work), and only a piece whose slices shrink by a
    sixteenth is compressed whole, and sent so only when it shrank by a sixty-fourth. Most
    of what fills a file server (photos, video, archives, Office documents: zip inside) does
    not shrink, and neither do backups that are compressed or encrypted already; zstd ran
    over every byte of such streams before, on the two cores that ``btrfs send`` and ``btrfs
    receive`` need too, for nothing (bench/README.md). Pieces are compressed each on their
    own, not as one zstd stream: at level 1 zstd's window is smaller than a piece anyway."""

    def __init__(self) -> None:
        self._zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)

    def pack(self, piece: bytes) -> tuple[bool, bytes]:
        """(compressed, what goes on the wire)."""
        if len(piece) > SAMPLES * SAMPLE:
            view, step = memoryview(piece), len(piece) // SAMPLES
            sample = b"".join(view[i * step : i * step + SAMPLE] for i in range(SAMPLES))
            if len(self._zstd.compress(sample)) > len(sample) - len(sample) // 16:
                return False, piece
        out = self._zstd.compress(piece)
        if len(out) > len(piece) - len(piece) // 64:
            return False, piece
        return True, out


class Unpacker:
    """The wire's pieces into the unframer: compressed ones decompressed, the others handed
    on as they are. A frame must say how large it is (:class:`Packer`'s do), and no larger
    than ``LARGEST``; what is handed on at once stays under ``HELD`` bytes plus one piece,
    however small the compressed pieces were (a megabyte of them could claim terabytes)."""

    def __init__(self, unframer: Unframer) -> None:
        self.unframer = unframer
        self._zstd = zstandard.ZstdDecompressor()

    def feed_all(self, pieces: Iterable[tuple[bool, _Bytes]]) -> None:
        out: list[_Bytes] = []
        held = 0
        for compressed, piece in pieces:
            data = self._unpack(piece) if compressed else piece
            out.append(data)
            held += len(data)
            if held >= HELD:
                self.unframer.feed_all(out)
                out, held = [], 0
        if out:
            self.unframer.feed_all(out)

    def _unpack(self, data: _Bytes) -> bytes:
        try:
            size = zstandard.frame_content_size(data)
            if size < 0 or size > LARGEST:
                raise StreamError(
                    f"a compressed piece does not say its size, or says one over {LARGEST:,}"
                )
            out = self._zstd.decompress(data)
        except zstandard.ZstdError as exc:
            raise StreamError(f"a compressed piece is damaged ({exc})") from None
        if len(out) != size:
            raise StreamError("a compressed piece is damaged (not the size it says)")
        return out


def framed(sender: Sender) -> Iterator[bytes]:
    """The sender's stream, then its footer."""
    yield from sender.pieces()
    assert sender.sent is not None
    yield MAGIC + sender.sent.bytes.to_bytes(8, "big")


class Unframer:
    """A framed stream into a :class:`Receiver`: every byte but the last ``FOOTER`` goes to
    it, and :meth:`finish` checks the stream against the footer. Pieces are handed on as
    views, not copies (a megabyte copied twice per megabyte was a measurable share of the
    target's CPU)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self._tail = b""  # the last FOOTER bytes so far (or fewer): perhaps the footer

    def feed(self, data: _Bytes) -> None:
        self.feed_all([data])

    def feed_all(self, chunks: Iterable[_Bytes]) -> None:
        out: list[_Bytes] = []
        for chunk in chunks:
            if len(chunk) >= FOOTER:
                if self._tail:
                    out.append(self._tail)  # not the footer: more came after it
                view = memoryview(chunk)
                if len(chunk) > FOOTER:
                    out.append(view[:-FOOTER])
                self._tail = bytes(view[-FOOTER:])
            else:
                joined = self._tail + chunk
                if len(joined) > FOOTER:
                    out.append(joined[:-FOOTER])
                self._tail = joined[-FOOTER:]
        if out:
            self.receiver.feed_all(out)

    def finish(self) -> Path:
        tail = self._tail
        if len(tail) != FOOTER or not tail.startswith(MAGIC):
            raise StreamError("the stream ended without its footer: it was cut off")
        return self.receiver.finish(Sent(int.from_bytes(tail[len(MAGIC) :], "big")))


# The send stream's format (the kernel's fs/btrfs/send.h, version 1): a 17-byte header
# ("btrfs-stream\0" and a u32 version), then commands: u32 length of the attributes, u16
# command, u32 crc, then attributes as u16 type, u16 length, value (little endian).
_STREAM_HEADER = 17
_CMD_HEADER = 10
_C_UPDATE_EXTENT = 22  # what --no-data sends instead of a write: the range, not the bytes
_A_SIZE = 4


def estimate(snapshot: Path, parent: Path | None = None) -> int:
    """About how many bytes ``btrfs send`` of ``snapshot`` (against ``parent``) will be:
    the data of every range ``btrfs send --no-data`` names, plus that metadata-only stream
    itself. It reads metadata only, so it is quick even for a large snapshot."""
    argv = ["btrfs", "send", "-q", "--no-data"]
    if parent is not None:
        argv += ["-p", str(parent)]
    argv.append(str(snapshot))
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=minimal_env(),
    )
    assert proc.stdout is not None
    total = 0
    data = 0
    buffer = b""
    skip = _STREAM_HEADER
    try:
        while piece := proc.stdout.read(PIECE):
            total += len(piece)
            buffer += piece
            if skip:
                taken = min(skip, len(buffer))
                buffer, skip = buffer[taken:], skip - taken
            while len(buffer) >= _CMD_HEADER:
                length = int.from_bytes(buffer[0:4], "little")
                if len(buffer) < _CMD_HEADER + length:
                    break
                if int.from_bytes(buffer[4:6], "little") == _C_UPDATE_EXTENT:
                    data += _size_attribute(buffer[_CMD_HEADER : _CMD_HEADER + length])
                buffer = buffer[_CMD_HEADER + length :]
    finally:
        proc.stdout.close()
        code = proc.wait()
    if code != 0:
        raise StreamError("btrfs send --no-data failed")
    return total + data


def _size_attribute(attributes: bytes) -> int:
    at = 0
    while at + 4 <= len(attributes):
        kind = int.from_bytes(attributes[at : at + 2], "little")
        length = int.from_bytes(attributes[at + 2 : at + 4], "little")
        if kind == _A_SIZE and length == 8:
            return int.from_bytes(attributes[at + 4 : at + 12], "little")
        at += 4 + length
    return 0


def remove_staging(staging: Path) -> None:
    """A staging folder and the (half-received) subvolumes in it."""
    if not staging.exists():
        return
    for entry in staging.iterdir():
        if entry.is_dir() and not entry.is_symlink() and btrfs.is_subvolume(entry):
            try:
                btrfs.subvolume_delete(entry)
            except Exception:  # a subvolume that cannot go: the folder stays for the next try
                log.exception("could not delete the half-received %s", entry)
                return
    shutil.rmtree(staging, ignore_errors=True)


def remove_incoming(replicas: Path) -> list[str]:
    """Every staging folder (and its log) in ``replicas`` left by a process that was killed
    mid-stream; the names removed. Call at start, before any stream is received there."""
    gone: list[str] = []
    if not replicas.is_dir():
        return gone
    for entry in sorted(replicas.iterdir()):
        if not entry.name.startswith(INCOMING) or entry.is_symlink():
            continue
        if entry.is_dir():
            remove_staging(entry)
        else:
            entry.unlink(missing_ok=True)
        gone.append(entry.name)
    return gone


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
