"""``speicher ransomware``: incidents, resolving them, and each share's policy."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from speicher.cli.client import CliError
from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, table
from speicher.cli.storage import JsonOpt

ransomware_app = typer.Typer(
    help="Ransomware detection: incidents, restoring what they touched, share policies.",
    no_args_is_help=True,
)


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "-"


@ransomware_app.command("incidents")
def incidents(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="open or resolved.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Incidents, newest first."""
    found = client(ctx).get("/ransomware/incidents", params={"state": state} if state else None)
    if as_json:
        print_json(found)
        return
    table(
        found,
        [
            ("ID", "id"),
            ("DETECTED (UTC)", lambda i: _when(i["detected_at"])),
            ("USER", "user"),
            ("ADDRESS", "address"),
            ("VIA", "protocol"),
            ("SHARE", "share"),
            ("SIGNAL", "detail"),
            ("STATE", "state"),
            ("RESTORED", lambda i: "yes" if i["restored_at"] else "no"),
        ],
        empty="no incidents",
    )


@ransomware_app.command("show")
def show(ctx: typer.Context, incident_id: int, as_json: JsonOpt = False) -> None:
    """One incident: what was seen, what was done, what a restore did."""
    i = client(ctx).get(f"/ransomware/incidents/{incident_id}")
    if as_json:
        print_json(i)
        return
    _details(i)


def _details(i: dict[str, Any]) -> None:
    pairs: list[tuple[str, Any]] = [
        ("incident", i["id"]),
        ("state", i["state"]),
        ("user", i["user"] + (" (disabled)" if i["user_disabled"] else "")),
        ("client", i["address"] or "-"),
        ("protocol", i["protocol"]),
        ("share", i["share"]),
        ("signal", i["detail"]),
        ("first change", _when(i["first_seen"])),
        ("detected", _when(i["detected_at"])),
        ("files", ", ".join(i["paths"]) or "-"),
        ("snapshots", ", ".join(f"{k} {v}" for k, v in i["snapshots"].items()) or "-"),
        ("read-only", ", ".join(i["read_only"]) or "-"),
        ("response", "; ".join(i["response"]) or "-"),
        ("restored", _when(i["restored_at"])),
        ("released", _when(i["released_at"])),
    ]
    for r in i["restore"]:
        text = f"{r['restored']} restored, {r['removed']} removed from {r['snapshot'] or '-'}"
        if r["kept"]:
            text += f"; kept (changed later by others): {', '.join(r['kept'])}"
        if r["missing"]:
            text += f"; not in the snapshot: {', '.join(r['missing'])}"
        pairs.append((f"restore {r['share']}", text))
    details(pairs)


@ransomware_app.command("resolve")
def resolve(
    ctx: typer.Context,
    incident_id: int,
    restore: Annotated[
        bool,
        typer.Option(
            "--restore",
            help="Put back every file the incident touched from the snapshot before it; "
            "remove the files it made.",
        ),
    ] = False,
    release: Annotated[
        bool, typer.Option("--release", help="Enable the user again and close the incident.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore what an incident touched (--restore), release the user (--release), or both."""
    if not restore and not release:
        raise CliError("say --restore, --release or both", 2)
    i = client(ctx).post(
        f"/ransomware/incidents/{incident_id}/resolve", {"restore": restore, "release": release}
    )
    if as_json:
        print_json(i)
        return
    _details(i)


@ransomware_app.command("policy")
def policy(
    ctx: typer.Context,
    share: str,
    detect: Annotated[
        bool | None, typer.Option("--detect/--no-detect", help="Watch the share at all.")
    ] = None,
    canary: Annotated[
        bool | None,
        typer.Option("--canary/--no-canary", help="Keep canary files in its top folder."),
    ] = None,
    window: Annotated[
        float | None, typer.Option(help="Seconds the signals are counted over.")
    ] = None,
    renames: Annotated[int | None, typer.Option(help="Renames to one new extension.")] = None,
    overwrites: Annotated[
        int | None, typer.Option(help="Overwrites with random-looking content.")
    ] = None,
    deletes: Annotated[
        int | None, typer.Option(help="Deletes after a copy with a new extension.")
    ] = None,
    disable_user: Annotated[
        bool | None,
        typer.Option("--disable-user/--keep-user", help="Disable the user on an incident."),
    ] = None,
    read_only: Annotated[
        bool | None,
        typer.Option(
            "--read-only/--writable",
            help="Make the user's shares read-only for everyone on an incident.",
        ),
    ] = None,
    lock_days: Annotated[
        int | None, typer.Option(help="Days the incident's snapshot is locked.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a share's ransomware policy; with options, change it."""
    changes = {
        "detect": detect,
        "canary": canary,
        "window": window,
        "renames": renames,
        "overwrites": overwrites,
        "deletes": deletes,
        "disable_user": disable_user,
        "read_only": read_only,
        "lock_days": lock_days,
    }
    path = f"/ransomware/shares/{share}"
    given = {k: v for k, v in changes.items() if v is not None}
    p = client(ctx).patch(path, given) if given else client(ctx).get(path)
    if as_json:
        print_json(p)
        return
    if given:
        console.print(f"ransomware policy of {share} changed")
    details([(k.replace("_", " "), v) for k, v in p.items()])
