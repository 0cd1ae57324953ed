"""What every command gets: a client for the daemon chosen by the global options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from speicher.cli.client import Client, Target


@dataclass
class State:
    url: str | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    config: Path | None = None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            from speicher.config import load_settings

            settings = load_settings(self.config)
            self._client = Client(
                Target(self.url, self.token, self.user, self.password, settings.socket_path)
            )
        return self._client


def client(ctx: typer.Context) -> Client:
    state: State = ctx.find_object(State)  # type: ignore[assignment]
    return state.client()
