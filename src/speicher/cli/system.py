"""``speicher job`` and ``speicher event``."""

from __future__ import annotations

from typing import Annotated

import typer

from speicher.cli.context import client
from speicher.cli.output import details, print_json, table, wait_for_job
from speicher.cli.storage import JsonOpt

job_app = typer.Typer(help="Long operations and their progress.", no_args_is_help=True)
event_app = typer.Typer(help="The event log.", no_args_is_help=True)


@job_app.command("list")
def job_list(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="running, succeeded or failed.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    if state:
        params["state"] = state
    jobs = client(ctx).get("/jobs", params=params)
    if as_json:
        print_json(jobs)
        return
    table(
        jobs,
        [
            ("ID", "id"),
            ("KIND", "kind"),
            ("TARGET", "target"),
            ("STATE", "state"),
            ("PROGRESS", lambda j: f"{j['progress']:.0f}%"),
            ("MESSAGE", "message"),
            ("ERROR", "error"),
        ],
        empty="no jobs",
    )


@job_app.command("show")
def job_show(
    ctx: typer.Context,
    job_id: int,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it until it ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a job."""
    job = client(ctx).get(f"/jobs/{job_id}")
    if wait:
        job = wait_for_job(client(ctx), job, quiet=as_json)
    if as_json:
        print_json(job)
        return
    details(
        [
            ("id", job["id"]),
            ("kind", job["kind"]),
            ("target", job["target"]),
            ("state", job["state"]),
            ("progress", f"{job['progress']:.0f}%"),
            ("message", job["message"]),
            ("error", job["error"] or "-"),
            ("started", job["created_at"]),
            ("finished", job["finished_at"]),
        ]
    )


@event_app.command("list")
def event_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    kind: Annotated[str | None, typer.Option(help="Only kinds starting with this.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List events, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    if kind:
        params["kind"] = kind
    events = client(ctx).get("/events", params=params)
    if as_json:
        print_json(events)
        return
    table(
        events,
        [
            ("TIME", "time"),
            ("LEVEL", "level"),
            ("KIND", "kind"),
            ("SUBJECT", "subject"),
            ("MESSAGE", "message"),
        ],
        empty="no events",
    )
