"""What ``speicher replication task`` and ``speicher backup task`` share: both kinds of task
are listed, shown, changed, run and deleted alike, each at its own API path and with its own
words for the copy it makes (a replica, a backup). The commands, with their options and help,
stay in speicher.cli.replication and speicher.cli.backup."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from speicher.cli.context import client
from speicher.cli.output import age, console, details, print_json, table
from speicher.cli.storage import run_job

EnabledOpt = Annotated[
    bool | None, typer.Option("--enabled/--paused", help="Run on schedule, or not.")
]


@dataclass(frozen=True)
class Tasks:
    """One kind of task: ``path`` its API (``/backup/tasks``), ``noun`` its name in what is
    printed (``backup task``); each task's newest copy is ``copy`` (``backup``) with its age
    in ``<copy>_age_seconds``, ``never`` before the first one, in days when it is old with
    ``days``."""

    path: str
    noun: str
    copy: str
    never: str
    days: bool = False

    def age(self, info: dict[str, Any]) -> str:
        return age(info[f"{self.copy}_age_seconds"], self.never, self.days)


def given(**options: object) -> dict[str, object]:
    """The options that were given (not None), in their order: a request's body."""
    return {k: v for k, v in options.items() if v is not None}


def list_tasks(ctx: typer.Context, tasks: Tasks, as_json: bool) -> None:
    rows = client(ctx).get(tasks.path)
    if as_json:
        print_json(rows)
        return
    table(
        rows,
        [
            ("id", "id"),
            ("share", "share"),
            ("target", "target"),
            ("schedule", "schedule"),
            (f"{tasks.copy} age", tasks.age),
            ("failures", "failures"),
        ],
        empty=f"no {tasks.noun}s",
    )


def show_task(
    ctx: typer.Context,
    tasks: Tasks,
    task_id: int,
    as_json: bool,
    rows: Callable[[dict[str, Any]], list[tuple[str, Any]]],
) -> None:
    """A task, with the ``rows`` of its kind between its schedule and its failures."""
    info = client(ctx).get(f"{tasks.path}/{task_id}")
    if as_json:
        print_json(info)
        return
    details(
        [
            ("task", info["id"]),
            ("share", info["share"]),
            ("target", info["target"]),
            ("schedule", info["schedule"] + ("" if info["enabled"] else " (paused)")),
            *rows(info),
            ("failures in a row", info["failures"]),
            ("last error", info["last_error"] or "-"),
            ("next run", info["next_run_at"] or "-"),
        ]
    )


def update_task(ctx: typer.Context, tasks: Tasks, task_id: int, body: dict[str, object]) -> None:
    client(ctx).patch(f"{tasks.path}/{task_id}", body)
    console.print(f"{tasks.noun} {task_id} changed")


def run_task(ctx: typer.Context, tasks: Tasks, task_id: int, no_wait: bool, as_json: bool) -> None:
    run_job(ctx, client(ctx).post(f"{tasks.path}/{task_id}/run", None), no_wait, as_json)


def delete_task(ctx: typer.Context, tasks: Tasks, task_id: int) -> None:
    client(ctx).delete(f"{tasks.path}/{task_id}")
    console.print(f"{tasks.noun} {task_id} deleted")
