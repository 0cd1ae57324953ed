"""What every command gets: a client for the daemon chosen by the global options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from speicher.cli.client import Client, CliError, Target


@dataclass
class State:
    url: str | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    config: Path | None = None
    token_file: Path | None = None
    ca: Path | None = None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            from speicher.config import load_settings

            settings = load_settings(self.config)
            token = self.token or (read_token(self.token_file) if self.token_file else None)
            self._client = Client(
                Target(self.url, token, self.user, self.password, settings.socket_path, ca=self.ca)
            )
        return self._client


def read_token(path: Path) -> str:
    """A token from a file (first line), so it need not be on a command line that every
    local user can read in ``ps``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read the token file {path}: {exc.strerror}", 2) from None
    except UnicodeDecodeError:
        raise CliError(f"the token file {path} is not text", 2) from None
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise CliError(f"the token file {path} is empty", 2)
    return lines[0].strip()


def client(ctx: typer.Context) -> Client:
    state: State = ctx.find_object(State)  # type: ignore[assignment]
    return state.client()
