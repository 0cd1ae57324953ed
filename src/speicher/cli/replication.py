"""``speicher replication``: pairing this box with another (docs/replication.md)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, table
from speicher.cli.storage import JsonOpt, NoWaitOpt, run_job

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
        [("name", "name"), ("pool", "pool"), ("state", "state"), ("source", "source")],
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


@replication_app.command("send")
def send(
    ctx: typer.Context,
    share: str,
    target: Annotated[str, typer.Option("--target", help="The target to send to.")],
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="Which snapshot (default: the newest).")
    ] = None,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Send a share's snapshot now: incremental against the newest one the target holds."""
    job = client(ctx).post(
        f"/replication/targets/{quote(target, safe='')}/send",
        {"share": share, "snapshot": snapshot},
    )
    run_job(ctx, job, no_wait, as_json)
