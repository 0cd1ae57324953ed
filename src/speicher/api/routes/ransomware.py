"""Ransomware detection: incidents, resolving them, and each share's policy
(docs/ransomware.md)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from speicher.api.deps import ServicesDep
from speicher.ransomware.models import GuardInfo, GuardUpdate, IncidentInfo, ResolveRequest
from speicher.validation import Name

router = APIRouter()
TAGS: list[str | Enum] = ["ransomware"]

IncidentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The incident's number.")]


@router.get("/ransomware/incidents", tags=TAGS, summary="Incidents, newest first")
def incidents(
    services: ServicesDep,
    state: Annotated[Literal["open", "resolved"] | None, Query()] = None,
) -> list[IncidentInfo]:
    return services.ransomware.incidents(state)


@router.get("/ransomware/incidents/{incident_id}", tags=TAGS, summary="One incident")
def incident(incident_id: IncidentId, services: ServicesDep) -> IncidentInfo:
    return services.ransomware.incident(incident_id)


@router.post(
    "/ransomware/incidents/{incident_id}/resolve",
    tags=TAGS,
    summary="Restore the touched files, release the user, or both",
    description="`restore`: every file the incident touched is put back from the newest "
    "snapshot taken before it began, files it made are removed, files that others changed "
    "since are left alone (listed as `kept`). `release`: the user is enabled again and the "
    "incident closed.",
)
def resolve(incident_id: IncidentId, req: ResolveRequest, services: ServicesDep) -> IncidentInfo:
    return services.ransomware.resolve(incident_id, req)


@router.get("/ransomware/shares/{name}", tags=TAGS, summary="A share's ransomware policy")
def policy(name: Name, services: ServicesDep) -> GuardInfo:
    return services.ransomware.policy(name)


@router.patch("/ransomware/shares/{name}", tags=TAGS, summary="Change a share's policy")
def update_policy(name: Name, req: GuardUpdate, services: ServicesDep) -> GuardInfo:
    return services.ransomware.update_policy(name, req)
