"""``speicher smb``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, table
from speicher.cli.storage import JsonOpt

smb_app = typer.Typer(
    help="Windows and Mac file sharing (SMB, served by Samba).", no_args_is_help=True
)


def _show_settings(settings: dict[str, Any]) -> None:
    details(
        [
            ("running", "yes" if settings["running"] else "no"),
            ("workgroup", settings["workgroup"]),
            ("server name", settings["server_name"] or "(host name)"),
            ("port", settings["port"]),
            ("interfaces", " ".join(settings["interfaces"]) or "(all)"),
            ("lowest protocol", settings["min_protocol"]),
            ("signing", settings["signing"]),
        ]
    )


@smb_app.command("show")
def smb_show(ctx: typer.Context) -> None:
    """Print the effective smb.conf."""
    text = client(ctx).request("GET", "/smb/config")
    sys.stdout.write(text if isinstance(text, str) else str(text))


@smb_app.command("settings")
def smb_settings(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the global SMB settings."""
    settings = client(ctx).get("/smb")
    if as_json:
        print_json(settings)
    else:
        _show_settings(settings)


@smb_app.command("update")
def smb_update(
    ctx: typer.Context,
    workgroup: Annotated[str | None, typer.Option(help="Windows workgroup.")] = None,
    server_name: Annotated[
        str | None, typer.Option(help="NetBIOS name ('' for host name).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (restarts smbd).")] = None,
    interface: Annotated[
        list[str] | None, typer.Option(help="Listen only here (repeat); restarts smbd.")
    ] = None,
    all_interfaces: Annotated[
        bool, typer.Option("--all-interfaces", help="Listen on every interface again.")
    ] = False,
    signing: Annotated[
        str | None,
        typer.Option(help="required (refuse clients that do not sign) or default."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the global SMB settings."""
    interfaces = [] if all_interfaces else interface
    settings = client(ctx).patch(
        "/smb",
        {
            "workgroup": workgroup,
            "server_name": server_name,
            "port": port,
            "interfaces": interfaces,
            "signing": signing,
        },
    )
    if as_json:
        print_json(settings)
    else:
        _show_settings(settings)


@smb_app.command("status")
def smb_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List connected SMB clients and open files."""
    status = client(ctx).get("/smb/status")
    if as_json:
        print_json(status)
        return
    console.print(f"smbd is {'running' if status['running'] else 'NOT running'}")
    table(
        status["sessions"],
        [
            ("USER", "user"),
            ("CLIENT", "remote"),
            ("PROTOCOL", "protocol"),
            ("ENCRYPTION", "encryption"),
            ("PID", "pid"),
        ],
        empty="no clients connected",
    )
    if status["open_files"]:
        console.print()
        table(status["open_files"], [("USER", "user"), ("SHARE", "share_path"), ("FILE", "name")])
