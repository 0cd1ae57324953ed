"""``speicher replication``: pairing this box with another (docs/replication.md)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, table
from speicher.cli.storage import JsonOpt, NoWaitOpt, run_job
from speicher.cli.tasks import (
    EnabledOpt,
    Tasks,
    delete_task,
    given,
    list_tasks,
    run_task,
    show_task,
    update_task,
)

replication_app = typer.Typer(
    help="Replication of shares to another Speicher box.", no_args_is_help=True
)
target_app = typer.Typer(help="Boxes this one replicates to (source side).", no_args_is_help=True)
pairing_app = typer.Typer(
    help="Boxes that may replicate to this one (target side).", no_args_is_help=True
)
replication_app.add_typer(target_app, name="target")
replication_app.add_typer(pairing_app, name="pairing")


@replication_app.command("accept")
def accept(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="A name for the source box.")],
    pool: Annotated[
        str | None, typer.Option("--pool", help="The pool replicas go to (default: the only one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """On the target: a one-time pairing code (good for an hour) for the source box."""
    made = client(ctx).post("/replication/pairings", {"name": name, "pool": pool})
    if as_json:
        print_json(made)
        return
    details([("pairing", made["name"]), ("pool", made["pool"]), ("expires", made["expires_at"])])
    console.print(
        f"On the source box run:\n  speicher replication target add NAME "
        f"https://THIS-HOST:8443 --code {made['code']}",
        highlight=False,
    )


@pairing_app.command("list")
def pairing_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Sources that may send replicas to this box."""
    rows = client(ctx).get("/replication/pairings")
    if as_json:
        print_json(rows)
        return
    table(
        rows,
        [
            ("name", "name"),
            ("pool", "pool"),
            ("state", "state"),
            ("source", "source"),
            ("keeps", lambda r: r["keep_last"] or "all"),
        ],
        empty="no pairings",
    )


@pairing_app.command("delete")
def pairing_delete(ctx: typer.Context, name: str) -> None:
    """Forget a source: its credential stops working at once (its replicas stay)."""
    client(ctx).delete(f"/replication/pairings/{quote(name, safe='')}")
    console.print(f"pairing {name} deleted")


@target_app.command("add")
def target_add(
    ctx: typer.Context,
    name: str,
    url: Annotated[str, typer.Argument(help="The target's API, https://host:8443.")],
    code: Annotated[str, typer.Option("--code", help="What 'replication accept' printed.")],
    as_json: JsonOpt = False,
) -> None:
    """On the source: pair with a target, its certificate checked against the code."""
    made = client(ctx).post("/replication/targets", {"name": name, "url": url, "code": code})
    if as_json:
        print_json(made)
        return
    details([("target", made["name"]), ("url", made["url"]), ("certificate", made["fingerprint"])])


@target_app.command("list")
def target_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Boxes this one replicates to."""
    rows = client(ctx).get("/replication/targets")
    if as_json:
        print_json(rows)
        return
    table(
        rows, [("name", "name"), ("url", "url"), ("paired as", "remote_name")], empty="no targets"
    )


@target_app.command("delete")
def target_delete(ctx: typer.Context, name: str) -> None:
    """Forget a target."""
    client(ctx).delete(f"/replication/targets/{quote(name, safe='')}")
    console.print(f"replication target {name} deleted")


CompressOpt = Annotated[bool, typer.Option("--compress/--no-compress", help="zstd on the wire.")]
BandwidthOpt = Annotated[
    float | None, typer.Option("--bandwidth-mib", help="At most this many MiB/s (0: no limit).")
]


@replication_app.command("send")
def send(
    ctx: typer.Context,
    share: str,
    target: Annotated[str, typer.Option("--target", help="The target to send to.")],
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="Which snapshot (default: the newest).")
    ] = None,
    compress: CompressOpt = True,
    bandwidth_mib: BandwidthOpt = None,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Send a share's snapshot now: incremental against the newest one the target holds."""
    body: dict[str, object] = {"share": share, "snapshot": snapshot, "compress": compress}
    if bandwidth_mib is not None:
        body["bandwidth_mib"] = bandwidth_mib
    job = client(ctx).post(f"/replication/targets/{quote(target, safe='')}/send", body)
    run_job(ctx, job, no_wait, as_json)


task_app = typer.Typer(help="Shares replicated on a schedule.", no_args_is_help=True)
replication_app.add_typer(task_app, name="task")

KeepLastOpt = Annotated[
    int | None, typer.Option("--keep-last", help="The task's snapshots kept here (0: all).")
]
RpoOpt = Annotated[
    float | None,
    typer.Option("--rpo-hours", help="Alert when the newest replica is older (0: never)."),
]
AlertAfterOpt = Annotated[
    int | None, typer.Option("--alert-after", help="Alert after this many failures in a row.")
]


TASKS = Tasks("/replication/tasks", "replication task", "replica", "no replica yet")


@task_app.command("create")
def task_create(
    ctx: typer.Context,
    share: str,
    target: Annotated[str, typer.Option("--target", help="The paired target.")],
    schedule: Annotated[str, typer.Option("--schedule", help="Cron (UTC), e.g. '*/15 * * * *'.")],
    keep_last: KeepLastOpt = None,
    rpo_hours: RpoOpt = None,
    alert_after: AlertAfterOpt = None,
    compress: CompressOpt = True,
    bandwidth_mib: BandwidthOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replicate SHARE to a target on a schedule: each run takes a snapshot and sends it."""
    body: dict[str, object] = {
        "share": share,
        "target": target,
        "schedule": schedule,
        "compress": compress,
        **given(
            keep_last=keep_last,
            rpo_hours=rpo_hours,
            alert_after=alert_after,
            bandwidth_mib=bandwidth_mib,
        ),
    }
    made = client(ctx).post(TASKS.path, body)
    if as_json:
        print_json(made)
        return
    console.print(f"replication task {made['id']}: {share} to {target}, '{schedule}'")


@task_app.command("list")
def task_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Replication tasks, with the age of each one's newest replica."""
    list_tasks(ctx, TASKS, as_json)


def _shown(info: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("keeps", info["keep_last"] or "all its snapshots"),
        ("replica age", TASKS.age(info)),
        ("last snapshot", info["last_snapshot"] or "-"),
        ("last run", f"{info['last_bytes']:,} bytes in {info['last_seconds']:.1f} s"),
    ]


@task_app.command("show")
def task_show(ctx: typer.Context, task_id: int, as_json: JsonOpt = False) -> None:
    """A task: its schedule, its last run and how old the newest replica is."""
    show_task(ctx, TASKS, task_id, as_json, _shown)


@task_app.command("update")
def task_update(
    ctx: typer.Context,
    task_id: int,
    schedule: Annotated[str | None, typer.Option("--schedule", help="Cron (UTC).")] = None,
    keep_last: KeepLastOpt = None,
    rpo_hours: RpoOpt = None,
    alert_after: AlertAfterOpt = None,
    bandwidth_mib: BandwidthOpt = None,
    compress: Annotated[
        bool | None, typer.Option("--compress/--no-compress", help="zstd on the wire.")
    ] = None,
    enabled: EnabledOpt = None,
) -> None:
    """Change a task."""
    body = given(
        schedule=schedule,
        keep_last=keep_last,
        rpo_hours=rpo_hours,
        alert_after=alert_after,
        bandwidth_mib=bandwidth_mib,
        compress=compress,
        enabled=enabled,
    )
    update_task(ctx, TASKS, task_id, body)


@task_app.command("run")
def task_run(
    ctx: typer.Context, task_id: int, no_wait: NoWaitOpt = False, as_json: JsonOpt = False
) -> None:
    """Run a task now: a snapshot, sent with a progress bar."""
    run_task(ctx, TASKS, task_id, no_wait, as_json)


@task_app.command("delete")
def task_delete(ctx: typer.Context, task_id: int) -> None:
    """Delete a task; its snapshots and the replicas stay."""
    delete_task(ctx, TASKS, task_id)


@replication_app.command("promote")
def promote(
    ctx: typer.Context,
    share: str,
    source: Annotated[
        str | None, typer.Option("--from", help="The pairing it came from (when several).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The new share's name.")] = None,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="Which replica (default: the newest).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """On the target: make a writable share of the newest replica of SHARE."""
    body = {"share": share, "source": source, "name": name, "snapshot": snapshot}
    made = client(ctx).post("/replication/promote", body)
    if as_json:
        print_json(made)
        return
    console.print(f"share {made['share']} made from replica {made['replica']} ({made['source']})")
    for skipped in made["skipped"]:
        console.print(f"not granted, no such user or group here: {skipped}")


@pairing_app.command("update")
def pairing_update(
    ctx: typer.Context,
    name: str,
    keep_last: Annotated[
        int | None,
        typer.Option("--keep-last", help="Replicas of each share kept here (0: all)."),
    ] = None,
) -> None:
    """This box's retention for a source's replicas (the source cannot change it)."""
    client(ctx).patch(f"/replication/pairings/{quote(name, safe='')}", {"keep_last": keep_last})
    console.print(f"pairing {name} changed")


@task_app.command("reverse")
def task_reverse(
    ctx: typer.Context,
    share: str,
    target: Annotated[str, typer.Option("--target", help="The repaired box, paired as a target.")],
    schedule: Annotated[
        str | None,
        typer.Option("--schedule", help="Cron (UTC) to keep going; default: this once, paused."),
    ] = None,
    no_wait: NoWaitOpt = False,
) -> None:
    """After a promote: send SHARE back to the original box, against the replica it was
    promoted from (no full re-send while that box still holds it)."""
    body: dict[str, object] = {
        "share": share,
        "target": target,
        "schedule": schedule or "0 * * * *",
        "enabled": schedule is not None,
    }
    made = client(ctx).post("/replication/tasks", body)
    console.print(f"replication task {made['id']}: {share} back to {target}")
    run_job(ctx, client(ctx).post(f"/replication/tasks/{made['id']}/run", None), no_wait)
