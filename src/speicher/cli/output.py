"""Printing results: readable tables, or ``--json`` for scripts; progress bars for jobs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from speicher.cli.client import Client, CliError
from speicher.names import format_size

console = Console()
err = Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str | Callable[[dict[str, Any]], Any]]],
    empty: str = "nothing here",
    whole: Collection[str] = (),
) -> None:
    """Print ``rows`` as a table; each column is (heading, key or function of the row). The
    columns headed as in ``whole`` are never wrapped or cut (a fingerprint to copy); the
    others give way on a narrow terminal."""
    if not rows:
        console.print(f"[dim]{empty}[/dim]")
        return
    # cells are text, not markup: a comment such as "[/x]" must not break the table
    cells = [[escape(str(_cell(row, getter))) for _, getter in columns] for row in rows]
    t = Table(show_edge=False, header_style="bold", box=None, pad_edge=False)
    for i, (heading, _) in enumerate(columns):
        if heading in whole:
            width = max(len(heading), *(len(c[i]) for c in cells))
            t.add_column(heading, no_wrap=True, min_width=width)
        else:
            t.add_column(heading)
    for row_cells in cells:
        t.add_row(*row_cells)
    console.print(t)


def _cell(row: dict[str, Any], getter: str | Callable[[dict[str, Any]], Any]) -> Any:
    value = getter(row) if callable(getter) else row.get(getter)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def details(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print a ``key: value`` block."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        shown = "-" if value is None else escape(str(value))
        console.print(f"[bold]{key.ljust(width)}[/bold]  {shown}", soft_wrap=True)


def size(value: int | None) -> str:
    return format_size(value)


def age(seconds: float | None, never: str, days: bool = False) -> str:
    """How old something is, for people: minutes below two hours, then hours (with
    ``days``, days from two days on); ``never`` where there is nothing (None)."""
    if seconds is None:
        return never
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours / 24:.1f} days" if days and hours >= 48 else f"{hours:.1f} h"


def wait_for_job(client: Client, job: dict[str, Any], quiet: bool = False) -> dict[str, Any]:
    """Follow a job with a progress bar until it ends; raise CliError if it failed."""
    show = not quiet and console.is_terminal
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{job['kind']} {job['target']}", total=100)
        while True:
            bar.update(
                task,
                completed=job["progress"],
                description=f"{job['kind']} {job['target']}: {job['message']}",
            )
            if job["state"] != "running":
                break
            time.sleep(0.5)
            job = client.get(f"/jobs/{job['id']}")
    if job["state"] == "failed":
        raise CliError(f"job {job['id']} ({job['kind']} {job['target']}) failed: {job['error']}")
    if not show and not quiet:
        err.print(f"job {job['id']}: {job['message']}")
    return job
