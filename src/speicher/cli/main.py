"""The ``speicher`` command line."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import Abort, Exit, TyperException

from speicher import __version__
from speicher.cli import health as _health  # noqa: F401 - adds pool scrub, disk health
from speicher.cli import status as _status
from speicher.cli.access import group_app, token_app, user_app
from speicher.cli.alerts import alert_app
from speicher.cli.audit import audit_app
from speicher.cli.backup import backup_app
from speicher.cli.certificate import system_app
from speicher.cli.client import CliError
from speicher.cli.context import State
from speicher.cli.protection import policy_app, snapshot_app
from speicher.cli.ransomware import ransomware_app
from speicher.cli.replication import replication_app
from speicher.cli.sftp import sftp_app
from speicher.cli.smb import smb_app
from speicher.cli.storage import disk_app, pool_app, share_app
from speicher.cli.system import event_app, job_app
from speicher.errors import SpeicherError

app = typer.Typer(
    help="Speicher: an open-source NAS server. As root the CLI talks to the local daemon; "
    "elsewhere give --url https://HOST:8443 and a token (--token-file or SPEICHER_TOKEN).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for sub, name in (
    (disk_app, "disk"),
    (pool_app, "pool"),
    (share_app, "share"),
    (user_app, "user"),
    (group_app, "group"),
    (token_app, "token"),
    (job_app, "job"),
    (event_app, "event"),
    (smb_app, "smb"),
    (sftp_app, "sftp"),
    (snapshot_app, "snapshot"),
    (policy_app, "policy"),
    (alert_app, "alert"),
    (system_app, "system"),
    (replication_app, "replication"),
    (backup_app, "backup"),
    (audit_app, "audit"),
    (ransomware_app, "ransomware"),
):
    app.add_typer(sub, name=name)


def _version(value: bool) -> None:
    if value:
        print(f"speicher {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="SPEICHER_URL",
            help="The daemon's URL, e.g. https://nas:8443 (default: local socket). A "
            "self-signed certificate is pinned on first use (~/.config/speicher/known_hosts).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SPEICHER_TOKEN",
            help="An admin API token for --url (other local users can read a command line: "
            "prefer SPEICHER_TOKEN or --token-file).",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            envvar="SPEICHER_TOKEN_FILE",
            help="Read the API token from this file.",
        ),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            envvar="SPEICHER_CA",
            help="Accept only server certificates this CA certificate (PEM) signed, "
            "e.g. a copy of the server's <state_dir>/tls/cert.pem.",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            envvar="SPEICHER_USER",
            help="An admin's name for --url (password in SPEICHER_PASSWORD).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="SPEICHER_CONFIG", help="Settings file (TOML)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    import os

    ctx.obj = State(
        url=url,
        token=token,
        user=user,
        password=os.environ.get("SPEICHER_PASSWORD"),
        config=config,
        token_file=token_file,
        ca=ca,
    )


app.command("status")(_status.status)
app.command("version")(_status.version)


@app.command()
def serve(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="SPEICHER_CONFIG", help="Settings file (TOML)."),
    ] = None,
) -> None:
    """Run the Speicher daemon in the foreground (as root)."""
    from speicher.config import load_settings
    from speicher.daemon import serve as run_daemon

    state = ctx.find_object(State)
    settings = load_settings(config or (state.config if state else None))
    run_daemon(settings)


def main() -> None:
    """Entry point: every error becomes one line on stderr and an exit code."""
    try:
        result = app(standalone_mode=False)
    except Exit as exc:
        sys.exit(exc.exit_code)
    except TyperException as exc:  # usage errors: unknown option, missing argument...
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stderr.write(exc.format_message() + "\n")
        else:
            _fail(_suggest(exc))
        sys.exit(exc.exit_code)
    except (Abort, KeyboardInterrupt):
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except (CliError, SpeicherError) as exc:
        _fail(exc.message)
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


# words people type for our verbs; click only suggests names that look alike ('remove' got
# 'revoke', which takes access away instead of deleting)
SYNONYMS = {
    "delete": ("remove", "rm", "del", "destroy", "drop", "erase"),
    "create": ("add", "new", "make", "mk"),
    "list": ("ls", "all"),
    "show": ("info", "get", "describe", "details", "inspect"),
    "update": ("edit", "set", "change", "modify"),
    "destroy": ("remove", "rm", "delete", "del"),
}


def _suggest(exc: TyperException) -> str:
    """The usage error's text, with the command a synonym means suggested."""
    message: str = exc.format_message()
    match = re.match(r"No such command '([^']+)'", message)
    ctx = getattr(exc, "ctx", None)
    if match is None or ctx is None or not hasattr(ctx.command, "list_commands"):
        return message
    typed = match.group(1).lower()
    commands = ctx.command.list_commands(ctx)
    for verb, words in SYNONYMS.items():
        if typed in words and verb in commands:
            return f"No such command '{match.group(1)}'. Did you mean '{verb}'?"
    return message


def _fail(message: str) -> None:
    """One readable line on stderr, however long."""
    sys.stderr.write("error: " + " ".join(message.split()) + "\n")


if __name__ == "__main__":
    main()
