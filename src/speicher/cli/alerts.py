"""``speicher alert``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from speicher.cli.client import CliError
from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, table
from speicher.cli.storage import JsonOpt

alert_app = typer.Typer(help="Alerts by e-mail and webhook.", no_args_is_help=True)


def _show_settings(settings: dict[str, Any]) -> None:
    smtp = settings["smtp_host"]
    details(
        [
            ("sending by", ", ".join(settings["channels"]) or "nothing (not configured)"),
            ("minimum level", settings["min_level"]),
            ("smtp server", f"{smtp}:{settings['smtp_port']}" if smtp else "-"),
            ("starttls", "yes" if settings["smtp_starttls"] else "no"),
            ("smtp user", settings["smtp_username"] or "-"),
            ("smtp password", "set" if settings["smtp_password_set"] else "-"),
            ("from", settings["mail_from"] or "-"),
            ("to", ", ".join(settings["mail_to"]) or "-"),
            ("webhook", settings["webhook_url"] or "-"),
        ]
    )


@alert_app.command("settings")
def alert_settings(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show where alerts go (the SMTP password is never shown)."""
    settings = client(ctx).get("/alerts/settings")
    if as_json:
        print_json(settings)
    else:
        _show_settings(settings)


@alert_app.command("update")
def alert_update(
    ctx: typer.Context,
    smtp_host: Annotated[
        str | None, typer.Option(help="Mail server ('' turns e-mail off).")
    ] = None,
    smtp_port: Annotated[int | None, typer.Option(help="Mail server port (587, 25).")] = None,
    starttls: Annotated[
        bool | None,
        typer.Option("--starttls/--no-starttls", help="Use STARTTLS (certificate verified)."),
    ] = None,
    smtp_user: Annotated[str | None, typer.Option(help="SMTP login ('' for none).")] = None,
    smtp_password_stdin: Annotated[
        bool,
        typer.Option(
            "--smtp-password-stdin",
            help="Read the SMTP password from standard input (an empty line removes it).",
        ),
    ] = False,
    mail_from: Annotated[str | None, typer.Option("--from", help="Sender address.")] = None,
    mail_to: Annotated[
        list[str] | None,
        typer.Option("--to", help="Recipient (repeat); replaces the list."),
    ] = None,
    no_recipients: Annotated[
        bool, typer.Option("--no-recipients", help="Remove every recipient.")
    ] = False,
    webhook: Annotated[
        str | None, typer.Option(help="URL for JSON POSTs ('' turns the webhook off).")
    ] = None,
    min_level: Annotated[
        str | None, typer.Option(help="Send events of this level and above: info, warning, error.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change where alerts go; options left out stay as they are."""
    body: dict[str, Any] = {
        "smtp_host": smtp_host,
        "smtp_port": smtp_port,
        "smtp_starttls": starttls,
        "smtp_username": smtp_user,
        "mail_from": mail_from,
        "mail_to": [] if no_recipients else mail_to,
        "webhook_url": webhook,
        "min_level": min_level,
    }
    if smtp_password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("no password on standard input", 2)
        body["smtp_password"] = line.rstrip("\r\n")
    body = {key: value for key, value in body.items() if value is not None}
    if not body:
        raise CliError("nothing to change: give at least one option (see --help)", 2)
    settings = client(ctx).patch("/alerts/settings", body)
    if as_json:
        print_json(settings)
    else:
        _show_settings(settings)


@alert_app.command("test")
def alert_test(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Send a test message through every configured channel, now."""
    result = client(ctx).post("/alerts/test")
    if as_json:
        print_json(result)
        return
    if result["email_to"]:
        console.print(f"test mail sent to {', '.join(result['email_to'])}")
    if result["webhook_url"]:
        console.print(f"test message posted to {result['webhook_url']}")


@alert_app.command("active")
def alert_active(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the conditions that raised an alert and have not ended."""
    conditions = client(ctx).get("/alerts/active")
    if as_json:
        print_json(conditions)
        return
    table(
        conditions,
        [
            ("CONDITION", "kind"),
            ("SUBJECT", "subject"),
            ("SINCE", "since"),
            ("LAST SENT", "last_sent_at"),
        ],
        empty="no active alerts",
    )
