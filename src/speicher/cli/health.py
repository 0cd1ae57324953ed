"""``speicher pool scrub``, ``speicher pool scrubs`` and ``speicher disk health``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from speicher.cli.context import client
from speicher.cli.output import console, details, err, print_json, size, table, wait_for_job
from speicher.cli.storage import JsonOpt, NoWaitOpt, disk_app, pool_app, run_job


def _when(value: str | None, zone: bool = True) -> str:
    if not value:
        return "-"
    return value.replace("T", " ")[:16] + (" UTC" if zone else "")


def _scrub_details(scrub: dict[str, Any]) -> None:
    details(
        [
            ("scrub", scrub["id"]),
            ("state", scrub["state"]),
            ("started", _when(scrub["started_at"])),
            ("finished", _when(scrub["finished_at"])),
            ("checked", size(scrub["bytes_checked"])),
            ("errors found", scrub["errors_found"]),
            ("corrected", scrub["errors_corrected"]),
            ("uncorrectable", scrub["errors_uncorrectable"]),
        ]
    )
    if scrub["uncorrectable_files"]:
        err.print("[bold red]data is lost in these files[/bold red] (restore them):")
        for path in scrub["uncorrectable_files"]:
            err.print(f"  {path}", soft_wrap=True)


@pool_app.command("scrub")
def pool_scrub(
    ctx: typer.Context, name: str, no_wait: NoWaitOpt = False, as_json: JsonOpt = False
) -> None:
    """Scrub a pool: read every block, check it against its checksum, repair bad copies."""
    job = client(ctx).post(f"/pools/{name}/scrub")
    if no_wait:
        run_job(ctx, job, no_wait, as_json)
        return
    wait_for_job(client(ctx), job, quiet=as_json)
    scrubs = client(ctx).get(f"/pools/{name}/scrubs", params={"limit": 5})
    scrub = next((s for s in scrubs if s["job_id"] == job["id"]), None)
    if scrub is None:
        return
    if as_json:
        print_json(scrub)
    else:
        _scrub_details(scrub)


@pool_app.command("scrubs")
def pool_scrubs(
    ctx: typer.Context,
    name: str,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List a pool's scrubs and what they found, newest first."""
    scrubs = client(ctx).get(f"/pools/{name}/scrubs", params={"limit": limit})
    if as_json:
        print_json(scrubs)
        return
    table(
        scrubs,
        [
            ("ID", "id"),
            ("STARTED (UTC)", lambda s: _when(s["started_at"], zone=False)),
            ("STATE", "state"),
            ("CHECKED", lambda s: size(s["bytes_checked"])),
            ("ERRORS", "errors_found"),
            ("CORRECTED", "errors_corrected"),
            ("UNCORRECTABLE", "errors_uncorrectable"),
        ],
        empty=f"pool {name} has not been scrubbed yet",
    )
    damaged = next((s for s in scrubs if s["uncorrectable_files"]), None)
    if damaged is not None:
        console.print(f"\ndata is lost in these files (scrub {damaged['id']}):")
        for path in damaged["uncorrectable_files"]:
            console.print(f"  {path}", soft_wrap=True)


@pool_app.command("scrub-schedule")
def pool_scrub_schedule(
    ctx: typer.Context,
    name: str,
    cron: Annotated[
        str | None,
        typer.Argument(
            help="Cron expression, UTC, e.g. '0 3 1 * *' (monthly, the default); 'off' for "
            "no scheduled scrubs. Leave out to show the schedule."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or set when a pool is scrubbed."""
    if cron is None:
        info = client(ctx).get(f"/pools/{name}/scrub-schedule")
    else:
        schedule = "" if cron.strip().lower() in ("off", "none", "never") else cron
        info = client(ctx).put(f"/pools/{name}/scrub-schedule", {"schedule": schedule})
    if as_json:
        print_json(info)
        return
    details(
        [
            ("pool", info["pool"]),
            ("schedule", info["schedule"] or "off"),
            ("last scrub", _when(info["last_scrub_at"])),
            ("next scrub", _when(info["next_scrub_at"])),
        ]
    )


def _counter(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda d: d["counters"][name] if d["counters"] else None


@disk_app.command("health")
def disk_health(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Health of every pool disk: btrfs error counters and SMART."""
    disks = client(ctx).get("/disks/health")
    if as_json:
        print_json(disks)
        return
    table(
        disks,
        [
            ("POOL", "pool"),
            ("DISK", "disk"),
            ("DEVICE", "device"),
            ("STATE", "state"),
            ("WRITE", _counter("write_io_errs")),
            ("READ", _counter("read_io_errs")),
            ("FLUSH", _counter("flush_io_errs")),
            ("CSUM", _counter("corruption_errs")),
            ("GEN", _counter("generation_errs")),
            ("SMART", "smart"),
        ],
        empty="no pool disks",
    )
    for d in disks:
        if d["state"] == "failing":
            console.print(
                f"[bold red]{d['disk']} of {d['pool']} is failing: {d['problem']}[/bold red]",
                soft_wrap=True,
            )
