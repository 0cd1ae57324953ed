"""``speicher system certificate``: the API's TLS certificate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from speicher.cli.client import CliError
from speicher.cli.context import client
from speicher.cli.output import print_json
from speicher.cli.storage import JsonOpt

system_app = typer.Typer(help="The daemon itself.", no_args_is_help=True)
certificate_app = typer.Typer(
    help="The API's TLS certificate (HTTPS port, 8443 by default).", no_args_is_help=True
)
system_app.add_typer(certificate_app, name="certificate")


def _show(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    pairs = [
        ("subject", info["subject"]),
        ("issuer", "self-signed" if info["self_signed"] else info["issuer"]),
        ("names", ", ".join(info["sans"]) or "-"),
        ("valid from", info["not_before"]),
        ("valid until", info["not_after"]),
        ("SHA-256", info["sha256"]),
    ]
    # plain lines, never wrapped: admins compare and copy the fingerprint
    for key, value in pairs:
        sys.stdout.write(f"{key.ljust(11)}  {value}\n")


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read the {what} file {path}: {exc.strerror}", 2) from None
    except UnicodeDecodeError:
        raise CliError(f"the {what} file {path} is not PEM text", 2) from None


@certificate_app.command("show")
def certificate_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the certificate: subject, names, expiry and SHA-256 fingerprint."""
    _show(client(ctx).get("/system/certificate"), as_json)


@certificate_app.command("set")
def certificate_set(
    ctx: typer.Context,
    cert: Annotated[
        Path, typer.Option("--cert", help="PEM: the certificate, then any intermediates.")
    ],
    key: Annotated[Path, typer.Option("--key", help="PEM: its private key, not encrypted.")],
    as_json: JsonOpt = False,
) -> None:
    """Replace the certificate; new connections use it at once."""
    body = {"certificate": _read(cert, "certificate"), "key": _read(key, "key")}
    _show(client(ctx).put("/system/certificate", body), as_json)


@certificate_app.command("generate")
def certificate_generate(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Replace the certificate by a new self-signed one (clients that pinned the old one
    refuse the new one until they pin it again)."""
    _show(client(ctx).post("/system/certificate/generate"), as_json)
