"""Replication: pairings (on a target) and targets (on a source), docs/replication.md.

``router`` is the admin API under ``/api/v1``; ``peer_router`` is what another Speicher
calls, under ``/replication/v1``, outside the admin authentication: it proves itself with
the pairing code's secret once, then with the credential it got for it."""

from __future__ import annotations

from enum import Enum

from anyio import to_thread
from fastapi import APIRouter, Request

from speicher.api.deps import ServicesDep
from speicher.replication.pairing import (
    PairAnswer,
    PairingCreate,
    PairingCreated,
    PairingInfo,
    PairRequest,
    TargetCreate,
    TargetInfo,
)
from speicher.tls import CertificateStore
from speicher.validation import Name

router = APIRouter()
peer_router = APIRouter()
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
