"""Sending a share's snapshot to a paired target, and receiving it there (docs/replication.md).

On the target, a pairing's replicas live in ``<pool>/.replicas/<pairing>/<share>/`` (root
only), each ``<name>/<name>`` (stream.Receiver says why). The source asks which replicas the
target has, sends the newest snapshot incrementally against the newest one both hold (full
when there is none), and the target keeps it only when the stream arrived whole.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpcore
import httpx
from pydantic import BaseModel, Field

from speicher.config import Settings
from speicher.errors import Conflict, NotFound, SpeicherError
from speicher.events import EventService
from speicher.jobs import JobInfo, JobService
from speicher.jobs.service import Progress
from speicher.protection import SnapshotService
from speicher.replication import promote, replicas
from speicher.replication.pairing import Connection, Targets, Unreachable
from speicher.replication.stream import (
    INCOMING,
    UPGRADE,
    ZSTD,
    Packer,
    Sender,
    StreamError,
    estimate,
    framed,
)
from speicher.storage import ShareService
from speicher.storage.shares import snapshots_dir
from speicher.validation import Name, Request

LOCK_HEADER = "X-Speicher-Locked-Until"
WRITE_TIMEOUT = 300.0  # one piece into a target that reads nothing for five minutes: gone
ANSWER_TIMEOUT = 120.0  # the target finishing btrfs receive and recording the replica
ANSWER_LIMIT = 64 * 1024
T = TypeVar("T")


class ReceiveFailed(SpeicherError):
    status = 422
    exit_code = 2
    title = "Stream refused"


# -- the source ----------------------------------------------------------------------------


@dataclass
class Wire:
    """How a stream goes over the network: each piece zstd-compressed where that saves
    (stream.Packer) or none, at most ``limit`` bytes a second (0: as fast as it goes);
    ``sent``: bytes on the wire so far."""

    compress: bool = True
    limit: float = 0.0
    sent: int = 0

    def hold_back(self, start: float) -> None:
        """Sleep until the bytes sent since ``start`` are within the limit."""
        if self.limit > 0:
            ahead = self.sent / self.limit - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


class SendRequest(Request):
    share: Name = Field(max_length=64, description="The share whose snapshot goes.")
    snapshot: str | None = Field(
        None, max_length=64, description="Which snapshot (`@GMT-...`); the newest if omitted."
    )
    compress: bool = Field(True, description="zstd on the wire.")
    bandwidth_mib: float = Field(
        0, ge=0, le=100_000, description="At most this many MiB a second; 0: no limit."
    )


class SendResult(BaseModel):
    name: str
    parent: str | None  # the snapshot it was incremental against
    bytes: int  # of the stream; 0: the target held it already
    wire_bytes: int = 0  # what went over the network (compressed)
    summary: str


class Replicator:
    def __init__(
        self,
        settings: Settings,
        events: EventService,
        jobs: JobService,
        shares: ShareService,
        snapshots: SnapshotService,
        targets: Targets,
    ) -> None:
        self.settings = settings
        self.events = events
        self.jobs = jobs
        self.shares = shares
        self.snapshots = snapshots
        self.targets = targets

    def start(self, target: str, req: SendRequest) -> JobInfo:
        """Check what can be checked here, then send in a job (percent of an estimate)."""
        self.targets.connection(target)  # NotFound for an unknown target
        local = [s.name for s in self.snapshots.list(req.share)]
        if not local:
            raise Conflict(f"share '{req.share}' has no snapshot to send", "share")
        chosen = req.snapshot or local[-1]
        if chosen not in local:
            raise NotFound(f"share '{req.share}' has no snapshot {chosen}")
        return self.jobs.start(
            "replication.send",
            f"{req.share} to {target}",
            lambda progress: (
                self.send(
                    target,
                    req.share,
                    chosen,
                    local,
                    progress,
                    wire_of(req.compress, req.bandwidth_mib),
                ).summary
            ),
            "asking the target what it holds",
        )

    def send(
        self,
        target: str,
        share: str,
        chosen: str,
        local: list[str],
        progress: Progress,
        wire: Wire | None = None,
    ) -> SendResult:
        """Send snapshot ``chosen`` of ``share`` (``local``: the share's snapshots, oldest
        first) unless the target holds it; incremental against the newest one both hold."""
        link = self.targets.connection(target)
        pool, name = self.shares.locate(share)
        folder = snapshots_dir(self.settings, pool, name)
        # one client, so one TLS handshake, for the question, the stream and the record
        with link.client(httpx.Timeout(60.0, write=None)) as http:
            return self._send(http, link, target, share, chosen, local, progress, wire,
                              folder)  # fmt: skip

    def _send(
        self,
        http: httpx.Client,
        link: Connection,
        target: str,
        share: str,
        chosen: str,
        local: list[str],
        progress: Progress,
        wire: Wire | None,
        folder: Path,
    ) -> SendResult:
        try:
            held = http.get(f"/replicas/{share}")
            remote = _answer(held, link.url)
        except httpx.HTTPError as exc:
            raise Unreachable(f"{link.url} did not answer ({exc})") from None
        if not isinstance(remote, list):
            raise Unreachable(f"{link.url} answered the list of replicas with something else")
        if chosen in remote:
            return SendResult(
                name=chosen, parent=None, bytes=0, summary=f"{chosen} is on {target} already"
            )
        kept = held.headers.get(promote.RECORD_HEADER)  # the digest of its record of the share
        older = [n for n in local if n < chosen and n in remote]
        parent_path: Path | None = folder / older[-1] if older else None
        parent = older[-1] if older else None
        if parent_path is None and (origin := replicas.origin_of(self.settings, share)):
            # a promoted share going back (reverse): against the replica it was made from,
            # which the other box still holds as its own snapshot unless it was pruned
            parent_path, parent = origin, f"{origin.name} (the replica it was promoted from)"
        progress(0.0, "estimating the stream")
        try:  # the ranges btrfs send --no-data names: quick, metadata only
            size = estimate(folder / chosen, parent_path)
        except StreamError:
            size = self._used(share) if parent is None else 0  # else the bar counts bytes
        wire = wire or Wire()
        try:
            sent = self._stream(http, link, share, folder / chosen, parent_path, max(1, size),
                                progress, wire, kept)  # fmt: skip
        except SpeicherError as exc:
            if parent_path is None or "parent" not in exc.message:
                raise
            # the other box no longer holds the base: the whole snapshot, once
            parent_path, parent = None, None
            wire.sent = 0
            sent = self._stream(http, link, share, folder / chosen, None, max(1, self._used(share)),
                                progress, wire, kept)  # fmt: skip
        how = f"incremental from {parent}" if parent else "full"
        if wire.compress:
            how += f", {wire.sent:,} on the wire"
        self.events.record(
            "info",
            "replication.sent",
            share,
            f"snapshot {chosen} of share {share} sent to {target} ({how}, {sent:,} bytes)",
        )
        return SendResult(
            name=chosen,
            parent=parent,
            bytes=sent,
            wire_bytes=wire.sent,
            summary=f"sent {chosen} to {target}: {how}, {sent:,} bytes",
        )

    def _used(self, share: str) -> int:
        """What the share holds, for a percent when there is no estimate: only then, since
        reading it costs a ``btrfs qgroup show`` (with a cold cache a tenth of a small
        increment's time, here)."""
        return self.shares.get(share).used

    def _stream(
        self,
        http: httpx.Client,
        link: Connection,
        share: str,
        snapshot: Path,
        parent: Path | None,
        expected: int,
        progress: Progress,
        wire: Wire,
        kept: str | None,
    ) -> int:
        sender = Sender(snapshot, parent)
        count = 0
        headers = {"Connection": "Upgrade", "Upgrade": UPGRADE}  # api/upgrade.py
        lock = self.snapshots.get(share, snapshot.name).locked_until
        if lock is not None:  # a locked snapshot arrives locked, until the same time
            headers[LOCK_HEADER] = lock.isoformat()

        def packed() -> Iterator[tuple[int, bool, bytes]]:
            """The framed stream's pieces: each one's size, and whether and how it goes
            compressed; this runs in the reader's thread (`_ahead`), so compressing overlaps
            the TLS writes."""
            packer = Packer() if wire.compress else None
            for piece in framed(sender):
                yield len(piece), *(packer.pack(piece) if packer else (False, piece))

        def body() -> Iterator[tuple[bool, bytes]]:
            nonlocal count
            start = time.monotonic()
            for size, compressed, out in ahead:
                count += size
                yield compressed, out
                wire.sent += len(out)
                wire.hold_back(start)
                # the step's text stays the same, so the job's row is written five times a
                # second, not once a piece (a commit each: it halved the speed)
                if expected > 1:
                    progress(min(99.0, 100.0 * count / expected), "sending", done=count,
                             total=expected)  # fmt: skip
                else:
                    progress(0.0, "sending", done=count)

        ahead = _ahead(packed())
        try:
            with sender:
                answer = _upgraded(http, f"/replicas/{share}", headers, body(), link.url)
        except StreamError as exc:
            raise SpeicherError(str(exc)) from None
        except (httpx.HTTPError, httpcore.NetworkError, httpcore.TimeoutException) as exc:
            raise Unreachable(f"the stream to {link.url} broke off ({exc})") from None
        finally:
            ahead.close()  # its reader stops, whatever became of the request
        got = int(answer.get("bytes", -1)) if isinstance(answer, dict) else -1
        if sender.sent is None or got != sender.sent.bytes:
            raise SpeicherError(f"{link.url} did not confirm the whole stream")
        # what a promote there needs: grants, and the names behind the files' uids and gids
        record = promote.record_of(self.shares.db, self.shares, share)
        if promote.record_digest(record) == kept:
            return got  # the target holds this very record
        try:
            _answer(
                http.put(f"/replicas/{share}/record", json=record.model_dump(mode="json")),
                link.url,
            )
        except httpx.HTTPError as exc:
            raise Unreachable(f"{link.url} did not take the share's record ({exc})") from None
        return got


def _ahead(pieces: Iterator[T], depth: int = 4) -> Generator[T, None, None]:
    """``pieces``, made (read from btrfs send, compressed) by a thread of their own up
    to ``depth`` pieces ahead, so that making them overlaps sending them. The reader's
    failure is raised here; leaving early stops it at its next piece."""
    out: queue.Queue[T | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for piece in pieces:
                while not stop.is_set():
                    try:
                        out.put(piece, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(None)
        except BaseException as exc:  # handed to the consumer
            out.put(exc)

    reader = threading.Thread(target=read, name="btrfs-send-reader", daemon=True)
    reader.start()
    try:
        while (item := out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=30)


def wire_of(compress: bool, bandwidth_mib: float) -> Wire:
    return Wire(compress=compress, limit=bandwidth_mib * 1024 * 1024)


def _upgraded(
    http: httpx.Client,
    path: str,
    headers: dict[str, str],
    pieces: Iterator[tuple[bool, bytes]],
    url: str,
) -> object:
    """``pieces`` over a connection upgraded to the stream's protocol (api/upgrade.py), and
    the target's answer. A target that refuses the stream while it comes answers at once:
    the answer is looked for before each piece, and read when a write fails."""
    with http.stream("PUT", path, headers=headers) as r:
        if r.status_code != 101:
            r.read()
            _answer(r, url)  # a refusal raises here
            raise Unreachable(f"{url} did not take the stream (HTTP {r.status_code})")
        network: httpcore.NetworkStream = r.extensions["network_stream"]
        try:
            for compressed, piece in pieces:
                if network.get_extra_info("is_readable"):
                    break  # an answer before the end: the stream was refused
                length = len(piece) | (ZSTD if compressed else 0)
                network.write(length.to_bytes(4, "big"), timeout=WRITE_TIMEOUT)
                network.write(piece, timeout=WRITE_TIMEOUT)
            else:
                network.write(bytes(4), timeout=WRITE_TIMEOUT)  # the end
        except httpcore.NetworkError:
            pass  # the connection closed: the answer, if it came, says why
        except httpcore.TimeoutException:
            raise Unreachable(
                f"{url} took nothing of the stream for {WRITE_TIMEOUT:.0f} s"
            ) from None
        line = b""
        while not line.endswith(b"\n") and len(line) < ANSWER_LIMIT:
            try:
                more = network.read(ANSWER_LIMIT, timeout=ANSWER_TIMEOUT)
            except (httpcore.NetworkError, httpcore.TimeoutException) as exc:
                raise Unreachable(f"the stream to {url} broke off ({exc!r})") from None
            if not more:
                raise Unreachable(f"the stream to {url} broke off before the answer")
            line += more
    try:
        answer = json.loads(line)
    except ValueError:
        raise Unreachable(f"{url} answered the stream with something other than JSON") from None
    if not isinstance(answer, dict):
        raise Unreachable(f"{url} answered the stream with something other than an object")
    status = answer.get("status")
    if not isinstance(status, int) or status >= 400:
        detail = answer.get("detail", status)
        raise SpeicherError(f"{url} refused: {detail}")
    return answer


def _answer(r: httpx.Response, url: str) -> object:
    if r.status_code >= 400:
        detail: object = r.status_code
        with contextlib.suppress(ValueError, AttributeError):
            detail = r.json().get("detail", r.status_code)
        raise SpeicherError(f"{url} refused: {detail}")
    try:
        return r.json()
    except ValueError:
        raise Unreachable(f"{url} answered with something other than JSON") from None


__all__ = ["INCOMING", "ReceiveFailed", "Replicator", "SendRequest", "SendResult"]
