"""``speicher sftp``."""

from __future__ import annotations

import typer

from speicher.cli.context import client
from speicher.cli.output import console, details, print_json
from speicher.cli.storage import JsonOpt

sftp_app = typer.Typer(
    help="File transfer over SSH (SFTP, scp, sshfs, rclone).", no_args_is_help=True
)


@sftp_app.command("show")
def sftp_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The SFTP port and the host key fingerprints clients are asked to confirm."""
    info = client(ctx).get("/sftp")
    if as_json:
        print_json(info)
        return
    if not info["enabled"]:
        console.print("SFTP is off (setting sftp_port = 0).")
        return
    details(
        [
            ("running", "yes" if info["running"] else "no"),
            ("address", f"{info['host']} port {info['port']}"),
            *[(f"host key {k['algorithm']}", k["fingerprint"]) for k in info["host_keys"]],
            ("connections", info["connections"]),
            ("sessions", info["sessions"]),
            ("failed logins", info["failed_logins"]),
            ("lockouts", info["lockouts"]),
        ]
    )
    console.print(
        f"Connect: sftp -P {info['port']} USER@THIS-HOST; compare the fingerprint it shows "
        "with the one above before you answer yes."
    )
