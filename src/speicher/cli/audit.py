"""``speicher audit``: search and export the audit log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from speicher.cli.client import CliError
from speicher.cli.context import client
from speicher.cli.output import print_json, table
from speicher.cli.storage import JsonOpt

audit_app = typer.Typer(
    help="The audit log: file operations over every protocol, admin actions, logins.",
    no_args_is_help=True,
)

UserOpt = Annotated[str | None, typer.Option(help="Who: a user, token:NAME or root.")]
ShareOpt = Annotated[str | None, typer.Option(help="The share.")]
PathOpt = Annotated[str | None, typer.Option(help="A path in the share and everything beneath it.")]
SinceOpt = Annotated[str | None, typer.Option(help="From (2026-11-01 or 2026-11-01T08:00, UTC).")]
UntilOpt = Annotated[str | None, typer.Option(help="Up to (inclusive; UTC).")]
ProtocolOpt = Annotated[
    str | None, typer.Option(help="smb, webdav, sftp, s3, web, api, cli, console.")
]
OperationOpt = Annotated[
    str | None, typer.Option(help="create, open_write, rename, delete, login, ...")
]
CategoryOpt = Annotated[str | None, typer.Option(help="file, admin or login.")]


def _params(*values: str | None, **more: Any) -> dict[str, Any]:
    """The query of a search: the filters in FILTERS' order, then ``more``."""
    given = dict(zip(FILTERS, values, strict=True)) | more
    return {k: v for k, v in given.items() if v is not None}


FILTERS = ("user", "share", "path", "since", "until", "protocol", "operation", "category")


@audit_app.command("search")
def audit_search(
    ctx: typer.Context,
    user: UserOpt = None,
    share: ShareOpt = None,
    path: PathOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    protocol: ProtocolOpt = None,
    operation: OperationOpt = None,
    category: CategoryOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Search the audit log, newest first."""
    found = client(ctx).get(
        "/audit",
        params=_params(user, share, path, since, until, protocol, operation, category, limit=limit),
    )
    if as_json:
        print_json(found)
        return
    for entry in found:
        entry["when"] = entry["time"].replace("T", " ")[:19]
        entry["what"] = entry["operation"] + (f" -> {entry['target']}" if entry["target"] else "")
        entry["where"] = f"{entry['share']}:{entry['path']}" if entry["share"] else entry["path"]
    table(
        found,
        [
            ("TIME (UTC)", "when"),
            ("USER", "user"),
            ("ADDRESS", "address"),
            ("VIA", "protocol"),
            ("OPERATION", "what"),
            ("PATH", "where"),
            ("OUTCOME", "outcome"),
        ],
        empty="nothing matches",
    )


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    user: UserOpt = None,
    share: ShareOpt = None,
    path: PathOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    protocol: ProtocolOpt = None,
    operation: OperationOpt = None,
    category: CategoryOpt = None,
) -> None:
    """Every matching record as CSV, oldest first."""
    params = _params(user, share, path, since, until, protocol, operation, category)
    if output is None:
        client(ctx).download("/audit/export.csv", sys.stdout.buffer, params=params)
        sys.stdout.flush()
        return
    try:
        with output.open("xb") as out:
            client(ctx).download("/audit/export.csv", out, params=params)
    except FileExistsError:
        raise CliError(f"{output} exists already; choose another name", 2) from None
    except CliError:
        output.unlink(missing_ok=True)  # no half-written export stays behind
        raise
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror}", 2) from None
