"""Disks, pools and shares."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from speicher.access.models import GrantRequest
from speicher.api.cache import ListingCache
from speicher.api.deps import ServicesDep
from speicher.jobs import JobInfo
from speicher.storage.models import (
    DiskInfo,
    PoolCreate,
    PoolDiskChange,
    PoolInfo,
    PoolReplace,
    ShareCreate,
    ShareInfo,
    ShareUpdate,
    VirtualDiskCreate,
)
from speicher.validation import Name

router = APIRouter()


@router.get("/disks", tags=["disks"], summary="List disks")
def list_disks(services: ServicesDep) -> list[DiskInfo]:
    return services.disks.list()


@router.post("/disks/virtual", tags=["disks"], status_code=201, summary="Create a virtual disk")
def create_virtual_disk(req: VirtualDiskCreate, services: ServicesDep) -> DiskInfo:
    return services.disks.create_virtual(req.name, req.size)


@router.delete(
    "/disks/virtual/{name}", tags=["disks"], status_code=204, summary="Delete a virtual disk"
)
def delete_virtual_disk(name: str, services: ServicesDep) -> Response:
    services.disks.delete_virtual(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# what the cached listings are built from: a change elsewhere (a job, an event) keeps them
POOL_TABLES = frozenset({"pools", "pool_disks", "shares", "virtual_disks"})
SHARE_TABLES = frozenset({"shares", "pools", "grants", "users", "groups"})


@router.get("/pools", tags=["pools"], summary="List pools", response_model=list[PoolInfo])
async def list_pools(services: ServicesDep, request: Request) -> Response:
    cache: ListingCache = request.app.state.listings
    return await cache.respond(
        "pools", lambda: services.db.generation_of(POOL_TABLES), services.pools.list, PoolInfo
    )


@router.post("/pools", tags=["pools"], status_code=202, summary="Create a pool (runs as a job)")
def create_pool(req: PoolCreate, services: ServicesDep) -> JobInfo:
    return services.pools.create(req)


@router.get("/pools/{name}", tags=["pools"], summary="Show a pool")
def get_pool(name: Name, services: ServicesDep) -> PoolInfo:
    return services.pools.get(name)


@router.delete(
    "/pools/{name}",
    tags=["pools"],
    status_code=204,
    summary="Destroy a pool, its shares and their files",
)
def destroy_pool(name: Name, services: ServicesDep) -> Response:
    services.pools.destroy(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/pools/{name}/disks", tags=["pools"], status_code=202, summary="Add a disk to a pool (job)"
)
def add_pool_disk(name: Name, req: PoolDiskChange, services: ServicesDep) -> JobInfo:
    return services.pools.add_disk(name, req.disk, req.force)


@router.delete(
    "/pools/{name}/disks/{disk:path}",
    tags=["pools"],
    status_code=202,
    summary="Remove a disk from a pool (job)",
)
def remove_pool_disk(name: Name, disk: str, services: ServicesDep) -> JobInfo:
    return services.pools.remove_disk(name, disk)


@router.post(
    "/pools/{name}/replace",
    tags=["pools"],
    status_code=202,
    summary="Replace a disk of a pool (job)",
)
def replace_pool_disk(name: Name, req: PoolReplace, services: ServicesDep) -> JobInfo:
    return services.pools.replace_disk(name, req)


@router.get("/shares", tags=["shares"], summary="List shares", response_model=list[ShareInfo])
async def list_shares(
    services: ServicesDep, request: Request, pool: Name | None = None
) -> Response:
    cache: ListingCache = request.app.state.listings
    return await cache.respond(
        f"shares:{pool or ''}",
        lambda: services.db.generation_of(SHARE_TABLES),
        lambda: services.shares.list(pool),
        ShareInfo,
    )


@router.post("/shares", tags=["shares"], status_code=201, summary="Create a share")
def create_share(req: ShareCreate, services: ServicesDep) -> ShareInfo:
    return services.shares.create(req)


@router.get("/shares/{name}", tags=["shares"], summary="Show a share")
def get_share(name: Name, services: ServicesDep) -> ShareInfo:
    return services.shares.get(name)


@router.patch("/shares/{name}", tags=["shares"], summary="Change a share")
def update_share(name: Name, req: ShareUpdate, services: ServicesDep) -> ShareInfo:
    return services.shares.update(name, req)


@router.delete(
    "/shares/{name}", tags=["shares"], status_code=204, summary="Delete a share and its files"
)
def delete_share(name: Name, services: ServicesDep) -> Response:
    services.shares.delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/shares/{name}/grants", tags=["shares"], summary="Give a user or group access to a share"
)
def grant(name: Name, req: GrantRequest, services: ServicesDep) -> ShareInfo:
    return services.grants.grant(name, req)


@router.delete(
    "/shares/{name}/grants/user/{user}", tags=["shares"], summary="Take a user's access away"
)
def revoke_user(name: Name, user: Name, services: ServicesDep) -> ShareInfo:
    return services.grants.revoke(name, user=user)


@router.delete(
    "/shares/{name}/grants/group/{group}", tags=["shares"], summary="Take a group's access away"
)
def revoke_group(name: Name, group: Name, services: ServicesDep) -> ShareInfo:
    return services.grants.revoke(name, group=group)
