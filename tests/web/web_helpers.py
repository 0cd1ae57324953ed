"""A browser's conversation with the web console, with httpx: the login form's nonce, the
session cookie, the CSRF token of the pages' forms."""

from __future__ import annotations

import re

import httpx

from speicher_testing import Daemon

_FIELD = re.compile(r'name="(nonce|csrf)" value="([^"]*)"')
OPEN: list[httpx.Client] = []  # closed after each test (tests/web/conftest.py)


def field(html: str, name: str) -> str:
    for found, value in _FIELD.findall(html):
        if found == name:
            return str(value)
    raise AssertionError(f"no {name} field in the page: {html[:500]}")


def browser(daemon: Daemon, lang: str = "en") -> httpx.Client:
    """A client like a browser on the console's HTTPS port (self-signed: not verified)."""
    client = httpx.Client(
        base_url=daemon.https_url,
        verify=False,  # noqa: S501 - the daemon's own self-signed certificate
        headers={"Accept-Language": lang, "Origin": daemon.https_url},
        timeout=60,
    )
    OPEN.append(client)
    return client


def close_all() -> None:
    while OPEN:
        OPEN.pop().close()


def log_in(client: httpx.Client, user: str, password: str) -> httpx.Response:
    """Fill in and send the login form (the answer is not followed)."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    return client.post(
        "/login",
        data={"nonce": field(page.text, "nonce"), "user": user, "password": password, "next": "/"},
    )


def csrf_of(client: httpx.Client, path: str = "/files/") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return field(page.text, "csrf")


def logged_in(daemon: Daemon, user: str, password: str, lang: str = "en") -> httpx.Client:
    """A browser with ``user``'s session (the login's answer checked)."""
    client = browser(daemon, lang)
    answer = log_in(client, user, password)
    assert answer.status_code == 303, answer.text
    return client


def put_piece(
    client: httpx.Client, csrf: str, path: str, upload: str, offset: int, total: int, body: bytes
) -> httpx.Response:
    """One piece of a resumable file-manager upload (the X-Upload-* headers)."""
    return client.put(
        path,
        content=body,
        headers={
            "X-CSRF-Token": csrf,
            "X-Upload-Id": upload,
            "X-Upload-Offset": str(offset),
            "X-Upload-Total": str(total),
        },
    )
