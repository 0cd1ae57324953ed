"""Offsite backup with restic: targets (repositories) and tasks (docs/backup.md)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path
from pydantic import BaseModel

from speicher.api.deps import ServicesDep
from speicher.backup.targets import BackupTargetCreate, BackupTargetCreated, BackupTargetInfo
from speicher.backup.tasks import (
    BackupRestore,
    BackupSnapshot,
    BackupTaskCreate,
    BackupTaskInfo,
    BackupTaskUpdate,
)
from speicher.jobs import JobInfo
from speicher.validation import Name

router = APIRouter()
TAGS: list[str | Enum] = ["backup"]


class PublicKey(BaseModel):
    public_key: str


@router.get("/backup/ssh-key", tags=TAGS, summary="The key this box logs in to SFTP with")
def ssh_key(services: ServicesDep) -> PublicKey:
    """Install it on an SFTP server (its `authorized_keys`) before adding it as a target."""
    return PublicKey(public_key=services.backup_targets.public_key())


@router.post("/backup/targets", tags=TAGS, status_code=201, summary="Add a backup target")
async def add_target(req: BackupTargetCreate, services: ServicesDep) -> BackupTargetCreated:
    """Makes a restic repository there, with a password shown this once, or opens an existing
    one with the password given."""
    return await to_thread.run_sync(services.backup_targets.add, req)


@router.get("/backup/targets", tags=TAGS, summary="Backup targets")
def targets(services: ServicesDep) -> list[BackupTargetInfo]:
    return services.backup_targets.list()


@router.get("/backup/targets/{name}", tags=TAGS, summary="A backup target")
def target(name: Name, services: ServicesDep) -> BackupTargetInfo:
    return services.backup_targets.get(name)


@router.delete("/backup/targets/{name}", tags=TAGS, status_code=204, summary="Forget a target")
def delete_target(name: Name, services: ServicesDep) -> None:
    """Its repository and the backups in it stay where they are."""
    services.backup_targets.delete(name)


TaskId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The task's number.")]


@router.post("/backup/tasks", tags=TAGS, status_code=201, summary="Back up a share")
def create_task(req: BackupTaskCreate, services: ServicesDep) -> BackupTaskInfo:
    return services.backup_tasks.create(req)


@router.get("/backup/tasks", tags=TAGS, summary="Backup tasks")
def tasks(services: ServicesDep) -> list[BackupTaskInfo]:
    return services.backup_tasks.list()


@router.get("/backup/tasks/{task_id}", tags=TAGS, summary="A task, and its newest backup's age")
def task(task_id: TaskId, services: ServicesDep) -> BackupTaskInfo:
    return services.backup_tasks.get(task_id)


@router.patch("/backup/tasks/{task_id}", tags=TAGS, summary="Change a task")
def update_task(task_id: TaskId, req: BackupTaskUpdate, services: ServicesDep) -> BackupTaskInfo:
    return services.backup_tasks.update(task_id, req)


@router.delete("/backup/tasks/{task_id}", tags=TAGS, status_code=204, summary="Delete a task")
def delete_task(task_id: TaskId, services: ServicesDep) -> None:
    """Its backups stay in the repository."""
    services.backup_tasks.delete(task_id)


@router.post("/backup/tasks/{task_id}/run", tags=TAGS, status_code=202, summary="Back up now (job)")
def run_task(task_id: TaskId, services: ServicesDep) -> JobInfo:
    return services.backup_tasks.run(task_id)


@router.get("/backup/tasks/{task_id}/snapshots", tags=TAGS, summary="The task's backups")
async def snapshots(task_id: TaskId, services: ServicesDep) -> list[BackupSnapshot]:
    return await to_thread.run_sync(services.backup_tasks.backups, task_id)


@router.post("/backup/tasks/{task_id}/restore", tags=TAGS, status_code=202, summary="Restore (job)")
def restore(task_id: TaskId, req: BackupRestore, services: ServicesDep) -> JobInfo:
    """A file, a folder or the whole share, to a new name in a share (`to`: `SHARE/PATH`,
    a new name or an existing folder to restore into); nothing that exists is replaced."""
    return services.backup_tasks.restore(task_id, req)
