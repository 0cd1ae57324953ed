"""Replication: pairings (on a target) and targets (on a source), docs/replication.md.

``router`` is the admin API under ``/api/v1``; ``peer_router`` is what another Speicher
calls, under ``/replication/v1``, outside the admin authentication: it proves itself with
the pairing code's secret once, then with the credential it got for it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import pathlib
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, ClassVar

from anyio import to_thread
from fastapi import APIRouter, Path, Request, Response

from speicher.api import upgrade
from speicher.api.deps import ServicesDep
from speicher.api.problems import ProblemDocument, problem_document
from speicher.errors import Conflict, InvalidInput, SpeicherError, Unauthorized
from speicher.jobs import JobInfo
from speicher.replication import replicas
from speicher.replication.pairing import (
    PairAnswer,
    PairingCreate,
    PairingCreated,
    PairingInfo,
    PairingUpdate,
    PairRequest,
    Peer,
    TargetCreate,
    TargetInfo,
)
from speicher.replication.promote import (
    RECORD_HEADER,
    Promoted,
    PromoteRequest,
    ShareRecord,
    keep_record,
    kept_digest,
)
from speicher.replication.replicas import replica_names, replicas_of
from speicher.replication.stream import UPGRADE, Receiver, StreamError, Unframer, Unpacker
from speicher.replication.tasks import TaskCreate, TaskInfo, TaskUpdate
from speicher.replication.transfer import LOCK_HEADER, ReceiveFailed, SendRequest
from speicher.services import Services
from speicher.tls import CertificateStore
from speicher.validation import Name

router = APIRouter()
peer_router = APIRouter()
log = logging.getLogger(__name__)

TAGS: list[str | Enum] = ["replication"]


@router.post(
    "/replication/pairings", tags=TAGS, status_code=201, summary="Accept a source (target side)"
)
def accept(req: PairingCreate, request: Request, services: ServicesDep) -> PairingCreated:
    """A one-time code (an hour) for `replication target add` on the source box; it names
    this box's certificate, so the source can trust it without a CA."""
    store: CertificateStore = request.app.state.certificates
    return services.pairings.accept(req, store.show().sha256)


@router.get("/replication/pairings", tags=TAGS, summary="Sources that may send replicas here")
def pairings(services: ServicesDep) -> list[PairingInfo]:
    return services.pairings.list()


@router.patch("/replication/pairings/{name}", tags=TAGS, summary="Change a pairing")
def update_pairing(name: Name, req: PairingUpdate, services: ServicesDep) -> PairingInfo:
    """How many replicas of each share this box keeps for the source: this box's rule, which
    the source cannot change."""
    return services.pairings.update(name, req)


@router.delete(
    "/replication/pairings/{name}", tags=TAGS, status_code=204, summary="Forget a source"
)
def delete_pairing(name: Name, services: ServicesDep) -> None:
    """Its credential stops working at once; the replicas it sent stay."""
    services.pairings.delete(name)


@router.post(
    "/replication/targets", tags=TAGS, status_code=201, summary="Pair with a target (source side)"
)
async def add_target(req: TargetCreate, services: ServicesDep) -> TargetInfo:
    """Connects to the target, checks its certificate against the code and pairs."""
    return await to_thread.run_sync(services.targets.add, req)


@router.get("/replication/targets", tags=TAGS, summary="Boxes this one replicates to")
def targets(services: ServicesDep) -> list[TargetInfo]:
    return services.targets.list()


@router.delete("/replication/targets/{name}", tags=TAGS, status_code=204, summary="Forget a target")
def delete_target(name: Name, services: ServicesDep) -> None:
    services.targets.delete(name)


@peer_router.post("/pair", tags=TAGS, summary="A source pairs (called by another Speicher)")
def pair(req: PairRequest, services: ServicesDep) -> PairAnswer:
    return services.pairings.pair(req)


@router.post(
    "/replication/targets/{name}/send",
    tags=TAGS,
    status_code=202,
    summary="Send a share's snapshot to a target (job)",
)
def send(name: Name, req: SendRequest, services: ServicesDep) -> JobInfo:
    """The newest snapshot (or the one named), incremental against the newest one the
    target holds, full when it holds none."""
    return services.replicator.start(name, req)


TaskId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The task's number.")]


@router.post("/replication/tasks", tags=TAGS, status_code=201, summary="Replicate a share")
def create_task(req: TaskCreate, services: ServicesDep) -> TaskInfo:
    """Each run takes a snapshot and sends it; see docs/replication.md."""
    return services.replication_tasks.create(req)


@router.get("/replication/tasks", tags=TAGS, summary="Replication tasks")
def tasks(services: ServicesDep) -> list[TaskInfo]:
    return services.replication_tasks.list()


@router.get("/replication/tasks/{task_id}", tags=TAGS, summary="A task, and its replica's age")
def task(task_id: TaskId, services: ServicesDep) -> TaskInfo:
    return services.replication_tasks.get(task_id)


@router.patch("/replication/tasks/{task_id}", tags=TAGS, summary="Change a task")
def update_task(task_id: TaskId, req: TaskUpdate, services: ServicesDep) -> TaskInfo:
    return services.replication_tasks.update(task_id, req)


@router.delete("/replication/tasks/{task_id}", tags=TAGS, status_code=204, summary="Delete a task")
def delete_task(task_id: TaskId, services: ServicesDep) -> None:
    """Its snapshots here and its replicas on the target stay."""
    services.replication_tasks.delete(task_id)


@router.post(
    "/replication/tasks/{task_id}/run", tags=TAGS, status_code=202, summary="Run a task now (job)"
)
def run_task(task_id: TaskId, services: ServicesDep) -> JobInfo:
    return services.replication_tasks.run(task_id)


@router.post(
    "/replication/promote",
    tags=TAGS,
    status_code=201,
    summary="Make a writable share of a replica (target side)",
)
def promote(req: PromoteRequest, services: ServicesDep) -> Promoted:
    """Disaster recovery: the newest replica (or the one named) becomes a share, its files
    owned by the users of the same names here, with the source's grants where those users
    and groups exist here."""
    return services.promoter.promote(req)


# -- what another Speicher calls -------------------------------------------------------------


def _lock_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field=LOCK_HEADER, reason="must be an ISO 8601 time") from None
    if when.tzinfo is None:
        raise InvalidInput(field=LOCK_HEADER, reason="must name its time zone")
    return when


async def _peer(request: Request, services: Services) -> Peer:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        peer = await to_thread.run_sync(services.pairings.peer, value.strip())
        if peer is not None:
            return peer
    raise Unauthorized("send the credential this box gave at pairing")


@peer_router.get("/replicas/{share}", tags=TAGS, summary="The replicas of a share held here")
async def held_replicas(
    share: str, request: Request, response: Response, services: ServicesDep
) -> list[str]:
    """Their names, oldest first; the header ``X-Speicher-Record`` is the digest of the
    share's record held here (promote.record_digest), when there is one."""
    peer = await _peer(request, services)
    folder = replicas_of(services.settings, peer, share)
    names, digest = await to_thread.run_sync(lambda: (replica_names(folder), kept_digest(folder)))
    if digest is not None:
        response.headers[RECORD_HEADER] = digest
    return names


class UpgradeRequired(SpeicherError):
    status = 426
    exit_code = 2
    title = "Upgrade required"
    headers: ClassVar[Mapping[str, str]] = {"Upgrade": UPGRADE, "Connection": "Upgrade"}


@peer_router.put(
    "/replicas/{share}",
    tags=TAGS,
    summary="Receive a snapshot stream",
    status_code=101,
    responses={426: {"model": ProblemDocument}},
)
async def receive(share: str, request: Request, services: ServicesDep) -> None:
    """A framed ``btrfs send`` stream (stream.framed), kept only when it arrived whole. The
    request asks for ``Connection: Upgrade`` and ``Upgrade: speicher-replication/3``; once
    it is accepted (101), the stream comes as pieces and the answer as one line of JSON
    (api/upgrade.py): ``{"status": 200, "name": ..., "bytes": ...}`` or a problem document."""
    peer = await _peer(request, services)
    folder = replicas_of(services.settings, peer, share)
    until = _lock_date(request.headers.get(LOCK_HEADER))
    take_over = request.scope.get("extensions", {}).get(upgrade.EXTENSION)
    if take_over is None:
        raise UpgradeRequired(f"a stream comes over a connection upgraded to {UPGRADE}")
    receiver = Receiver(folder)
    await to_thread.run_sync(receiver.__enter__)
    stream: upgrade.PieceStream = take_over()
    # from here on the answer goes over the connection, whatever happens: the app's own
    # error handlers would write into nothing
    try:
        made = await _receive(stream, receiver, folder, until)
        await to_thread.run_sync(_received, services, peer, share, folder, made.name)
    except (StreamError, upgrade.UpgradeError) as exc:
        error = Conflict if "already there" in str(exc) else ReceiveFailed
        stream.answer(problem_document(error(str(exc))))
    except SpeicherError as exc:
        stream.answer(problem_document(exc))
    except Exception:
        log.exception("receiving a replication stream")
        stream.answer(problem_document(SpeicherError("internal error; see the daemon's log")))
    except BaseException:  # cancelled: the daemon stops
        stream.transport.close()
        raise
    else:
        stream.answer({"status": 200, "name": made.name, "bytes": receiver.received_bytes})


async def _receive(
    stream: upgrade.PieceStream,
    receiver: Receiver,
    folder: pathlib.Path,
    until: dt.datetime | None,
) -> pathlib.Path:
    """The stream's pieces into ``btrfs receive``; the replica, or nothing left behind."""
    unframer = Unframer(receiver)
    sink = Unpacker(unframer)  # pieces compressed or not (stream.Packer)
    # while a worker thread feeds one batch to btrfs receive, the loop receives the next
    pending: asyncio.Future[None] | None = None
    try:
        async for batch in stream.batches():
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(to_thread.run_sync(sink.feed_all, batch))
        if pending is not None:
            await pending
            pending = None
        made = await to_thread.run_sync(unframer.finish)
        await to_thread.run_sync(replicas.refuse_unnamed, made)
        if until is not None:
            await to_thread.run_sync(replicas.lock, folder, made.name, until)
    except BaseException:  # a client gone, a cancel, a bad stream: nothing half-made stays
        await _settled(pending)
        await to_thread.run_sync(receiver.abort)
        raise
    return made


async def _settled(pending: asyncio.Future[None] | None) -> None:
    """Wait for the piece in flight (its failure is the one being raised, or moot)."""
    if pending is not None and not pending.done():
        await asyncio.wait([pending])
    if pending is not None and not pending.cancelled():
        pending.exception()  # retrieved: no "never retrieved" warning


def _received(services: Services, peer: Peer, share: str, folder: pathlib.Path, name: str) -> None:
    """After a replica arrived: the target's retention, and the events (off the loop)."""
    gone = replicas.prune(folder, peer.keep_last)
    if gone:
        services.events.record(
            "info",
            "replication.pruned",
            share,
            f"replicas of {share} from {peer.name} removed (keep {peer.keep_last}): "
            + ", ".join(gone),
        )
    services.events.record(
        "info",
        "replication.received",
        share,
        f"replica {name} of share {share} received from {peer.name}",
    )


@peer_router.put("/replicas/{share}/record", tags=TAGS, summary="The share's record")
async def record(
    share: str, req: ShareRecord, request: Request, services: ServicesDep
) -> dict[str, str]:
    """Grants and owner names of the share, sent after each replica (for a promote)."""
    peer = await _peer(request, services)
    folder = replicas_of(services.settings, peer, share)
    if not replica_names(folder):
        raise Conflict(f"no replica of share '{share}' is here yet")
    await to_thread.run_sync(keep_record, folder, req)
    return {"share": share}
