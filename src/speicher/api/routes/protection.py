"""Snapshots, their locks, restores, rollbacks and clones, and snapshot policies."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from speicher.api.deps import ServicesDep
from speicher.protection.models import (
    CloneRequest,
    PolicyCreate,
    PolicyInfo,
    PolicyUpdate,
    RestoreRequest,
    RestoreResult,
    RollbackResult,
    SnapshotCreate,
    SnapshotInfo,
    SnapshotLock,
)
from speicher.storage.models import ShareInfo
from speicher.validation import Name

router = APIRouter()
SNAP = "/shares/{name}/snapshots/{snapshot}"


def _no_content() -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/shares/{name}/snapshots", tags=["snapshots"], summary="List a share's snapshots")
def list_snapshots(name: Name, services: ServicesDep) -> list[SnapshotInfo]:
    return services.snapshots.list(name)


@router.post(
    "/shares/{name}/snapshots", tags=["snapshots"], status_code=201, summary="Take a snapshot"
)
def create_snapshot(name: Name, req: SnapshotCreate, services: ServicesDep) -> SnapshotInfo:
    return services.snapshots.create(name, req.name, locked_until=req.locked_until)


@router.get(SNAP, tags=["snapshots"], summary="Show a snapshot, with the space only it holds")
def get_snapshot(name: Name, snapshot: str, services: ServicesDep) -> SnapshotInfo:
    return services.snapshots.get(name, snapshot, exclusive=True)


@router.delete(SNAP, tags=["snapshots"], status_code=204, summary="Delete a snapshot")
def delete_snapshot(name: Name, snapshot: str, services: ServicesDep) -> Response:
    services.snapshots.delete(name, snapshot)
    return _no_content()


@router.put(f"{SNAP}/lock", tags=["snapshots"], summary="Lock a snapshot until a time")
def lock_snapshot(
    name: str, snapshot: str, req: SnapshotLock, services: ServicesDep
) -> SnapshotInfo:
    return services.snapshots.lock(name, snapshot, req.until)


@router.post(f"{SNAP}/restore", tags=["snapshots"], summary="Restore a file or folder")
def restore(name: Name, snapshot: str, req: RestoreRequest, services: ServicesDep) -> RestoreResult:
    return services.restore.restore(name, snapshot, req.path, req.to)


@router.post(
    f"{SNAP}/rollback",
    tags=["snapshots"],
    summary="Roll the whole share back to the snapshot (a safety snapshot is taken first)",
)
def rollback(name: Name, snapshot: str, services: ServicesDep) -> RollbackResult:
    return services.restore.rollback(name, snapshot)


@router.post(
    f"{SNAP}/clone", tags=["snapshots"], status_code=201, summary="Make a new share from it"
)
def clone(name: Name, snapshot: str, req: CloneRequest, services: ServicesDep) -> ShareInfo:
    return services.restore.clone(name, snapshot, req.name)


@router.get("/snapshot-policies", tags=["policies"], summary="List every snapshot policy")
def all_policies(services: ServicesDep) -> list[PolicyInfo]:
    return services.policies.list()


@router.get("/shares/{name}/policies", tags=["policies"], summary="List a share's policies")
def list_policies(name: Name, services: ServicesDep) -> list[PolicyInfo]:
    return services.policies.list(name)


@router.post(
    "/shares/{name}/policies", tags=["policies"], status_code=201, summary="Create a policy"
)
def create_policy(name: Name, req: PolicyCreate, services: ServicesDep) -> PolicyInfo:
    return services.policies.create(name, req)


@router.get("/shares/{name}/policies/{policy}", tags=["policies"], summary="Show a policy")
def get_policy(name: Name, policy: str, services: ServicesDep) -> PolicyInfo:
    return services.policies.get(name, policy)


@router.patch("/shares/{name}/policies/{policy}", tags=["policies"], summary="Change a policy")
def update_policy(name: Name, policy: str, req: PolicyUpdate, services: ServicesDep) -> PolicyInfo:
    return services.policies.update(name, policy, req)


@router.delete(
    "/shares/{name}/policies/{policy}",
    tags=["policies"],
    status_code=204,
    summary="Delete a policy (its snapshots stay)",
)
def delete_policy(name: Name, policy: str, services: ServicesDep) -> Response:
    services.policies.delete(name, policy)
    return _no_content()


@router.post(
    "/shares/{name}/policies/{policy}/run",
    tags=["policies"],
    summary="Run a policy now: take its snapshot and prune",
)
def run_policy(name: Name, policy: str, services: ServicesDep) -> list[str]:
    return services.policies.run(name, policy)
