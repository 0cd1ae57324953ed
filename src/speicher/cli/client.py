"""Talking to the daemon: over the local Unix socket as root, or to a URL with a token."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

API = "/api/v1"


class CliError(Exception):
    """An error to show as one line, with the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass
class Target:
    url: str | None
    token: str | None
    user: str | None
    password: str | None
    socket_path: Path


class Client:
    def __init__(self, target: Target, timeout: float = 600) -> None:
        self.target = target
        headers = {"user-agent": "speicher-cli"}
        auth: httpx.BasicAuth | None = None
        if target.url:
            base = target.url.rstrip("/")
            transport = None
            if target.token:
                headers["authorization"] = f"Bearer {target.token}"
            elif target.user:
                auth = httpx.BasicAuth(target.user, target.password or "")
            self.where = base
        else:
            base = "http://speicher"
            transport = httpx.HTTPTransport(uds=str(target.socket_path))
            self.where = str(target.socket_path)
        self._http = httpx.Client(
            base_url=base + API, headers=headers, auth=auth, transport=transport, timeout=timeout
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if not self.target.url:
            sock = self.target.socket_path
            if not os.access(sock.parent, os.X_OK) or (
                sock.exists() and not os.access(sock, os.R_OK | os.W_OK)
            ):
                raise CliError(
                    f"permission denied for {sock}: run as root, or use --url with a token"
                )
            if not sock.exists():
                raise CliError(
                    f"no Speicher daemon listens at {sock}; start it with 'speicher serve'"
                )
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the Speicher daemon at {self.where} ({exc}); "
                "is 'speicher serve' running?"
            ) from None
        if response.status_code >= 400:
            raise CliError(_problem_text(response), 2 if response.status_code < 500 else 1)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("text/plain"):
            return response.text
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"the daemon answered {response.status_code}"
    errors = body.get("errors") or []
    if errors:
        return "; ".join(
            f"{e['field']}: {e['reason']}" if e.get("field") else e["reason"] for e in errors
        )
    return str(body.get("detail") or body.get("title") or response.status_code)
