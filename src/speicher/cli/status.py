"""``speicher status`` and ``speicher version``: the box on one screen."""

from __future__ import annotations

from typing import Any

import typer

from speicher import __version__
from speicher.cli.context import client
from speicher.cli.output import console, print_json, size
from speicher.cli.storage import JsonOpt


def _percent(pool: dict[str, Any]) -> str:
    return f"{100 * pool['used'] / pool['size']:.0f}%" if pool["size"] else "-"


def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Version, pools and their health, services and their addresses, alerts, jobs."""
    info = client(ctx).get("/system/status")
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]Speicher {info['version']}[/bold]")
    console.print("[bold]pools[/bold]")
    if not info["pools"]:
        console.print("  none yet: speicher pool create NAME --profile raid1 --disk ... ")
    for pool in info["pools"]:
        line = (
            f"  {pool['name']}: {pool['health']}, {size(pool['used'])} of "
            f"{size(pool['size'])} used ({_percent(pool)})"
        )
        console.print(line + (f" - {pool['problem']}" if pool["problem"] else ""), markup=False)
    console.print("[bold]services[/bold]")
    for service in info["services"]:
        state = "up" if service["running"] else "DOWN"
        console.print(f"  {service['name']}: {state} ({', '.join(service['addresses'])})")
    console.print("[bold]alerts[/bold]")
    if not info["alerts"]:
        console.print("  none")
    for alert in info["alerts"]:
        console.print(f"  {alert['key']} since {alert['since']}", markup=False)
    if info["running_jobs"]:
        console.print("[bold]running jobs[/bold]")
        for job in info["running_jobs"]:
            console.print(
                f"  {job['id']} {job['kind']} {job['target']}: {job['progress']:.0f}% "
                f"{job['message']}",
                markup=False,
            )


def version(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The CLI's version and, when the daemon answers, the daemon's."""
    daemon: str | None = None
    try:
        daemon = client(ctx).get("/system")["version"]
    except Exception as exc:
        reason = str(getattr(exc, "message", exc))
    if as_json:
        print_json({"cli": __version__, "daemon": daemon})
        return
    console.print(f"speicher (CLI) {__version__}")
    console.print(f"daemon {daemon}" if daemon else f"daemon: not reached ({reason})")
