"""``speicher alert``."""

from __future__ import annotations

import typer

alert_app = typer.Typer(help="Alerts by e-mail and webhook.", no_args_is_help=True)
