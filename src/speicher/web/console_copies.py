"""The console's pages for copies elsewhere (admins): replication to another Speicher
(docs/replication.md) and offsite backup with restic (docs/backup.md). Built like the other
management pages: a GET shows the state and its forms, a POST per form calls one service and
goes back to the page (303, with a ``done`` note) or shows it again with the problems next
to their fields (422). A pairing code and a new repository's password are shown once, as the
page that made them (``AccessPages._page_once``). Runs and restores are jobs: the page's
job list shows their live bars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from speicher.backup.targets import BackupTargetCreate
from speicher.backup.tasks import BackupRestore, BackupTaskCreate, BackupTaskUpdate
from speicher.errors import SpeicherError
from speicher.replication.pairing import PairingCreate, TargetCreate
from speicher.replication.promote import PromoteRequest
from speicher.replication.tasks import TaskCreate, TaskUpdate
from speicher.web.console_access import AccessPages, Handler
from speicher.web.forms import Errors, call, checked, text
from speicher.web.sessions import WebUser

_Change_contra = TypeVar("_Change_contra", contravariant=True)

BACKUP_KEEP = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def _number(form: dict[str, Any], name: str) -> str | None:
    return text(form, name) or None


def _task_id(form: dict[str, Any], errors: Errors) -> int | None:
    try:
        return int(text(form, "task"))
    except ValueError:
        errors.add("", "unknown task")
        return None


class _Tasks(Protocol[_Change_contra]):
    """What a page's tasks are run, paused, resumed and deleted with: the replication or
    the backup tasks (``ReplicationTasks``, ``BackupTasks``)."""

    def run(self, task_id: int) -> Any: ...
    def update(self, task_id: int, req: _Change_contra) -> Any: ...
    def delete(self, task_id: int) -> None: ...


def _task_forms(
    tasks: _Tasks[_Change_contra], change: Callable[..., _Change_contra]
) -> dict[str, Handler]:
    """The forms of each task on a page (run, pause, resume, delete), done by ``tasks``;
    ``change`` makes its update request (``TaskUpdate``, ``BackupTaskUpdate``). The page
    that asks is the one they go back to, with the same ``done`` notes on both pages."""

    def on(act: Callable[[int], object], done: str) -> Handler:
        def handle(form: dict[str, Any], errors: Errors) -> str | None:
            task = _task_id(form, errors)
            if task is not None:
                call(lambda: act(task), errors, frozenset())
            return done

        return handle

    def enable(enabled: bool) -> Handler:
        def update(task: int) -> object:
            return tasks.update(task, change(enabled=enabled))

        return on(update, "task-changed")

    return {
        "task-run": on(tasks.run, "task-run"),
        "task-pause": enable(False),
        "task-resume": enable(True),
        "task-delete": on(tasks.delete, "task-deleted"),
    }


class CopiesPages(AccessPages):
    """Replication and backup, with the console's frame; ``CopiesPages(web)``."""

    def routes(self) -> list[Route]:
        return [
            Route("/console/replication/", self.replication, methods=["GET", "POST"]),
            Route("/console/backup/", self.backup, methods=["GET", "POST"]),
        ]

    # -- replication ----------------------------------------------------------------------

    async def replication(self, request: Request) -> Response:
        return await self._page_once(
            request,
            {
                "target": self._add_target,
                "target-delete": self._delete_target,
                "task": self._create_task,
                **_task_forms(self.services.replication_tasks, TaskUpdate),
                "pairing-delete": self._delete_pairing,
                "promote": self._promote,
            },
            {"accept": self._accept},
            self._show_replication,
        )

    async def _show_replication(
        self,
        request: Request,
        user: WebUser,
        errors: Errors,
        form: dict[str, Any],
        made: Any = None,
    ) -> Response:
        def load() -> dict[str, Any]:
            return {
                "targets": self.services.targets.list(),
                "tasks": self.services.replication_tasks.list(),
                "pairings": self.services.pairings.list(),
                "shares": self.services.shares.names(),
                "pools": [p.name for p in self.services.pools.list()],
            }

        return self.web.render(
            request,
            "console_replication.html",
            user,
            errors=errors,
            form=form,
            made=made,
            done=request.query_params.get("done", ""),
            **await run_in_threadpool(load),
        )

    def _accept(self, form: dict[str, Any], errors: Errors) -> Any:
        store = self.web.certificates
        data = {"name": text(form, "name"), "pool": text(form, "pool") or None}
        return self._do(
            PairingCreate,
            data,
            errors,
            lambda r: self.services.pairings.accept(r, store.show().sha256),
        )

    def _add_target(self, form: dict[str, Any], errors: Errors) -> str | None:
        data = {k: text(form, k) for k in ("name", "url", "code")}
        self._do(TargetCreate, data, errors, self.services.targets.add)
        return "repl-target"

    def _delete_target(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.targets.delete(text(form, "name")), errors, frozenset())
        return "repl-target-deleted"

    def _delete_pairing(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.pairings.delete(text(form, "name")), errors, frozenset())
        return "pairing-deleted"

    def _create_task(self, form: dict[str, Any], errors: Errors) -> str | None:
        data: dict[str, Any] = {
            k: text(form, k) for k in ("share", "target", "schedule") if text(form, k)
        }
        for k in ("keep_last", "rpo_hours", "bandwidth_mib"):
            if text(form, k):
                data[k] = text(form, k)
        data["compress"] = checked(form, "compress")
        self._do(TaskCreate, data, errors, self.services.replication_tasks.create)
        return "repl-task"

    def _promote(self, form: dict[str, Any], errors: Errors) -> str | None:
        data = {
            "share": text(form, "share"),
            "source": text(form, "source") or None,
            "name": text(form, "name") or None,
        }
        self._do(PromoteRequest, data, errors, self.services.promoter.promote)
        return "promoted"

    # -- backup ---------------------------------------------------------------------------

    async def backup(self, request: Request) -> Response:
        return await self._page_once(
            request,
            {
                "target-delete": self._delete_backup_target,
                "task": self._create_backup_task,
                **_task_forms(self.services.backup_tasks, BackupTaskUpdate),
                "restore": self._restore,
            },
            {"target": self._add_backup_target},
            self._show_backup,
        )

    async def _show_backup(
        self,
        request: Request,
        user: WebUser,
        errors: Errors,
        form: dict[str, Any],
        made: Any = None,
    ) -> Response:
        chosen = request.query_params.get("task") or form.get("task") or ""

        def load() -> dict[str, Any]:
            tasks = self.services.backup_tasks.list()
            backups, problem = [], ""
            task = next((t for t in tasks if str(t.id) == chosen), None)
            if task is not None:
                try:
                    backups = list(reversed(self.services.backup_tasks.backups(task.id)))
                except SpeicherError as exc:
                    problem = exc.message
            return {
                "targets": self.services.backup_targets.list(),
                "tasks": tasks,
                "task": task,
                "backups": backups,
                "backups_problem": problem,
                "shares": self.services.shares.names(),
            }

        return self.web.render(
            request,
            "console_backup.html",
            user,
            errors=errors,
            form=form,
            made=made,
            keep_fields=BACKUP_KEEP,
            done=request.query_params.get("done", ""),
            **await run_in_threadpool(load),
        )

    def _add_backup_target(self, form: dict[str, Any], errors: Errors) -> Any:
        kind = text(form, "kind")
        data: dict[str, Any] = {"name": text(form, "name"), "kind": kind}
        fields = {
            "local": ("path",),
            "s3": ("url", "access_key", "secret_key"),
            "sftp": ("host", "port", "user", "path"),
        }.get(kind, ())
        for k in fields:
            if text(form, k):
                data[k] = text(form, k)
        if kind == "s3" and form.get("ca_certificate", "").strip():
            data["ca_certificate"] = form["ca_certificate"].strip()
        if form.get("password"):
            data["password"] = form["password"]
        return self._do(BackupTargetCreate, data, errors, self.services.backup_targets.add)

    def _delete_backup_target(self, form: dict[str, Any], errors: Errors) -> str | None:
        call(lambda: self.services.backup_targets.delete(text(form, "name")), errors, frozenset())
        return "backup-target-deleted"

    def _create_backup_task(self, form: dict[str, Any], errors: Errors) -> str | None:
        data: dict[str, Any] = {
            k: text(form, k) for k in ("share", "target", "schedule") if text(form, k)
        }
        for k in (*BACKUP_KEEP, "alert_days"):
            if text(form, k):
                data[k] = text(form, k)
        self._do(BackupTaskCreate, data, errors, self.services.backup_tasks.create)
        return "backup-task"

    def _restore(self, form: dict[str, Any], errors: Errors) -> str | None:
        task = _task_id(form, errors)
        if task is None:
            return None
        data = {
            "snapshot": text(form, "snapshot") or "latest",
            "path": text(form, "path"),
            "to": text(form, "to"),
        }
        run = self.services.backup_tasks.restore
        self._do(BackupRestore, data, errors, lambda r: run(task, r))
        return "restore"
