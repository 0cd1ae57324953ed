"""``speicher snapshot`` and ``speicher policy``."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated, Any

import typer

from speicher.cli.client import CliError
from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, size, table
from speicher.cli.storage import JsonOpt, YesOpt, require_yes

snapshot_app = typer.Typer(help="Read-only snapshots of shares.", no_args_is_help=True)
policy_app = typer.Typer(help="Snapshots on a schedule, with retention.", no_args_is_help=True)


def _until(text: str | None, days: int | None) -> str | None:
    """An ISO time for --lock-until (a date, or date and time, in UTC) or --lock-days."""
    if text and days is not None:
        raise CliError("give --lock-until or --lock-days, not both", 2)
    if days is not None:
        return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat()
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--lock-until: '{text}' is not a date like 2027-01-31", 2) from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()


LockUntil = Annotated[str | None, typer.Option(help="Lock until this date (UTC), e.g. 2027-01-31.")]
LockDays = Annotated[int | None, typer.Option(help="Lock for this many days.")]


@snapshot_app.command("create")
def snapshot_create(
    ctx: typer.Context,
    share: str,
    name: Annotated[str | None, typer.Option(help="@GMT-YYYY.MM.DD-HH.MM.SS; default now.")] = None,
    lock_until: LockUntil = None,
    lock_days: LockDays = None,
    as_json: JsonOpt = False,
) -> None:
    """Take a read-only snapshot of a share, optionally locked (immutable) until a date."""
    body = {"name": name, "locked_until": _until(lock_until, lock_days)}
    snap = client(ctx).post(f"/shares/{share}/snapshots", body)
    if as_json:
        print_json(snap)
    else:
        console.print(f"snapshot {snap['name']} of {share} taken")
    if snap["locked_until"]:
        _warn_locked(share, snap["locked_until"])


def _warn_locked(share: str, until: str) -> None:
    """Say what a lock means before someone finds out by trying (in a trial, too)."""
    sys.stderr.write(
        f"warning: until {until} nobody can delete this snapshot, share {share} or its "
        "pool through Speicher, not even an admin\n"
    )


def _locked(s: dict[str, Any]) -> str:
    return s["locked_until"] or "-"


@snapshot_app.command("list")
def snapshot_list(ctx: typer.Context, share: str, as_json: JsonOpt = False) -> None:
    """List a share's snapshots, oldest first."""
    snaps = client(ctx).get(f"/shares/{share}/snapshots")
    if as_json:
        print_json(snaps)
        return
    table(
        snaps,
        [("NAME", "name"), ("POLICY", "policy"), ("LOCKED UNTIL", _locked)],
        empty="no snapshots",
    )


@snapshot_app.command("show")
def snapshot_show(ctx: typer.Context, share: str, name: str, as_json: JsonOpt = False) -> None:
    """Show a snapshot and the space only it holds."""
    snap = client(ctx).get(f"/shares/{share}/snapshots/{name}")
    if as_json:
        print_json(snap)
        return
    details(
        [
            ("share", snap["share"]),
            ("name", snap["name"]),
            ("time", snap["time"]),
            ("path", snap["path"]),
            ("policy", snap["policy"] or "-"),
            ("locked until", _locked(snap)),
            ("exclusive", size(snap["exclusive"])),
        ]
    )


@snapshot_app.command("lock")
def snapshot_lock(
    ctx: typer.Context, share: str, name: str, until: LockUntil = None, days: LockDays = None
) -> None:
    """Lock a snapshot so nobody can delete it before a date (extend only)."""
    when = _until(until, days)
    if when is None:
        raise CliError("give --until or --days", 2)
    snap = client(ctx).put(f"/shares/{share}/snapshots/{name}/lock", {"until": when})
    console.print(f"snapshot {name} of {share} locked until {snap['locked_until']}")
    _warn_locked(share, snap["locked_until"])


@snapshot_app.command("delete")
def snapshot_delete(ctx: typer.Context, share: str, name: str, yes: YesOpt = False) -> None:
    """Delete a snapshot (refused while it is locked)."""
    require_yes(
        yes, f"deleting snapshot {name} of {share} deletes that version of its files for good"
    )
    client(ctx).delete(f"/shares/{share}/snapshots/{name}")
    console.print(f"snapshot {name} of {share} deleted")


@snapshot_app.command("restore")
def snapshot_restore(
    ctx: typer.Context,
    share: str,
    name: str,
    path: str,
    to: Annotated[
        str,
        typer.Option(help="'beside' (default) or 'original' (replaces, after a safety snapshot)."),
    ] = "beside",
) -> None:
    """Restore a file or folder from a snapshot into the live share."""
    result = client(ctx).post(f"/shares/{share}/snapshots/{name}/restore", {"path": path, "to": to})
    console.print(f"restored to {result['path']}")
    if result.get("safety_snapshot"):
        console.print(f"what was there before is kept in snapshot {result['safety_snapshot']}")


@snapshot_app.command("rollback")
def snapshot_rollback(ctx: typer.Context, share: str, name: str, yes: YesOpt = False) -> None:
    """Roll a whole share back to a snapshot (a safety snapshot of now is taken first)."""
    require_yes(
        yes,
        f"rolling {share} back to {name} replaces every file in it with the snapshot's "
        "(a safety snapshot of the current state is taken first)",
    )
    result = client(ctx).post(f"/shares/{share}/snapshots/{name}/rollback")
    console.print(f"{share} rolled back to {name}; its state before is {result['safety_snapshot']}")


@snapshot_app.command("clone")
def snapshot_clone(ctx: typer.Context, share: str, name: str, new_share: str) -> None:
    """Make a new share from a snapshot."""
    clone = client(ctx).post(f"/shares/{share}/snapshots/{name}/clone", {"name": new_share})
    console.print(f"share {clone['name']} created from {name} of {share}")


KeepOpt = Annotated[int | None, typer.Option(min=0)]


@policy_app.command("create")
def policy_create(
    ctx: typer.Context,
    share: str,
    name: str,
    schedule: Annotated[str, typer.Option(help="Cron (UTC), e.g. '0 * * * *'.")],
    keep_last: KeepOpt = 0,
    keep_hourly: KeepOpt = 0,
    keep_daily: KeepOpt = 0,
    keep_weekly: KeepOpt = 0,
    keep_monthly: KeepOpt = 0,
    lock_days: Annotated[int, typer.Option(help="Its snapshots are immutable this long.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Take snapshots of a share on a schedule and keep them by grandfather-father-son rules."""
    policy = client(ctx).post(
        f"/shares/{share}/policies",
        {
            "name": name,
            "schedule": schedule,
            "keep_last": keep_last,
            "keep_hourly": keep_hourly,
            "keep_daily": keep_daily,
            "keep_weekly": keep_weekly,
            "keep_monthly": keep_monthly,
            "lock_days": lock_days,
        },
    )
    if as_json:
        print_json(policy)
    else:
        console.print(f"policy {name} of {share} created; next run {policy['next_run_at']}")


def _keeps(p: dict[str, Any]) -> str:
    parts = [f"{p[f'keep_{k}']} {k}" for k in ("last", "hourly", "daily", "weekly", "monthly")]
    return ", ".join(x for x in parts if not x.startswith("0 "))


@policy_app.command("list")
def policy_list(ctx: typer.Context, share: str | None = None, as_json: JsonOpt = False) -> None:
    """List snapshot policies (of one share, or all)."""
    policies = client(ctx).get(f"/shares/{share}/policies" if share else "/snapshot-policies")
    if as_json:
        print_json(policies)
        return
    table(
        policies,
        [
            ("SHARE", "share"),
            ("NAME", "name"),
            ("SCHEDULE", "schedule"),
            ("KEEP", _keeps),
            ("LOCK DAYS", "lock_days"),
            ("ENABLED", "enabled"),
            ("NEXT RUN", "next_run_at"),
        ],
        empty="no policies",
    )


@policy_app.command("show")
def policy_show(ctx: typer.Context, share: str, name: str, as_json: JsonOpt = False) -> None:
    """Show a policy."""
    p = client(ctx).get(f"/shares/{share}/policies/{name}")
    if as_json:
        print_json(p)
        return
    details(
        [
            ("share", p["share"]),
            ("name", p["name"]),
            ("schedule", p["schedule"]),
            ("keep", _keeps(p)),
            ("lock days", p["lock_days"]),
            ("enabled", p["enabled"]),
            ("last run", p["last_run_at"]),
            ("next run", p["next_run_at"]),
        ]
    )


@policy_app.command("update")
def policy_update(
    ctx: typer.Context,
    share: str,
    name: str,
    schedule: Annotated[str | None, typer.Option(help="New cron schedule.")] = None,
    keep_last: KeepOpt = None,
    keep_hourly: KeepOpt = None,
    keep_daily: KeepOpt = None,
    keep_weekly: KeepOpt = None,
    keep_monthly: KeepOpt = None,
    lock_days: KeepOpt = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
) -> None:
    """Change a policy."""
    body = {
        "schedule": schedule,
        "keep_last": keep_last,
        "keep_hourly": keep_hourly,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
        "lock_days": lock_days,
        "enabled": enabled,
    }
    client(ctx).patch(f"/shares/{share}/policies/{name}", body)
    console.print(f"policy {name} of {share} updated")


@policy_app.command("delete")
def policy_delete(ctx: typer.Context, share: str, name: str, yes: YesOpt = False) -> None:
    """Delete a policy; its snapshots stay."""
    require_yes(yes, f"deleting policy {name} of {share} stops its snapshots (those it took stay)")
    client(ctx).delete(f"/shares/{share}/policies/{name}")
    console.print(f"policy {name} of {share} deleted")


@policy_app.command("run")
def policy_run(ctx: typer.Context, share: str, name: str) -> None:
    """Run a policy now: take its snapshot and prune old ones."""
    pruned = client(ctx).post(f"/shares/{share}/policies/{name}/run")
    console.print(f"policy {name} ran; pruned {len(pruned)} snapshot(s)")
