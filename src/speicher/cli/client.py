"""Talking to the daemon: over the local Unix socket as root, or to a URL with a token.

Over ``https://`` the server's certificate is checked before any credential is sent (see
:mod:`speicher.cli.trust`). Every request carries ``X-Speicher-Request``, which the daemon
requires of state changes that are not JSON, so that no web page can make them.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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
    ca: Path | None = None
    known_hosts: Path | None = None


class Client:
    def __init__(self, target: Target, timeout: float = 600) -> None:
        self.target = target
        self.timeout = timeout
        self.where = target.url.rstrip("/") if target.url else str(target.socket_path)
        self._client: httpx.Client | None = None

    @property
    def _http(self) -> httpx.Client:
        """Made at the first request: for HTTPS that is when the certificate is checked."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> httpx.Client:
        target = self.target
        headers = {"user-agent": "speicher-cli", "x-speicher-request": "1"}
        auth: httpx.BasicAuth | None = None
        verify: ssl.SSLContext | bool = True
        if not target.url:
            transport = httpx.HTTPTransport(uds=str(target.socket_path))
            return httpx.Client(
                base_url="http://speicher" + API,
                headers=headers,
                transport=transport,
                timeout=self.timeout,
            )
        base = target.url.rstrip("/")
        scheme = base.split("://", 1)[0].lower() if "://" in base else ""
        if scheme not in ("http", "https"):
            raise CliError(f"--url must start with https:// or http://, not {base!r}", 2)
        if scheme == "https":
            from speicher.cli import trust

            verify = trust.context_for(base, target.ca, target.known_hosts)
        if target.token:
            headers["authorization"] = f"Bearer {target.token}"
        elif target.user:
            auth = httpx.BasicAuth(target.user, target.password or "")
        return httpx.Client(
            base_url=base + API, headers=headers, auth=auth, verify=verify, timeout=self.timeout
        )

    def download(self, path: str, out: IO[bytes], **kwargs: Any) -> int:
        """GET ``path`` into ``out`` as it arrives (an export larger than memory); returns
        the bytes written."""
        self._check_socket()
        written = 0
        try:
            with self._http.stream("GET", path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CliError(_problem_text(response), 2 if response.status_code < 500 else 1)
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise CliError(f"the daemon at {self.where} broke off ({exc})") from None
        return written

    def _check_socket(self) -> None:
        if not self.target.url:
            sock = self.target.socket_path
            # the state directory is 0711, so others may see the socket but not connect (0600)
            if not os.access(sock.parent, os.X_OK) or (
                sock.exists() and not os.access(sock, os.R_OK | os.W_OK)
            ):
                raise CliError(
                    f"only root may use {sock}: run as root, or use --url https://HOST:8443 "
                    "with a token (--token-file or SPEICHER_TOKEN)",
                    2,
                )
            if not sock.exists():
                raise CliError(
                    f"no Speicher daemon listens at {sock}; start it with 'speicher serve'"
                )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self._check_socket()
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
