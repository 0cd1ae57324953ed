"""WebDAV for the system tests: building the world through the API, and a small client on
httpx that speaks the protocol-neutral interface of tests/files/conformance.py.

Requests go to the daemon's plain HTTP port on 127.0.0.1 (the HTTPS port serves the same app;
one test checks it)."""

from __future__ import annotations

import email.utils
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from conformance import Refused, Stat

import world
from speicher_testing import Daemon
from world import make_pool, make_user, password

# the world-building helpers, for the protocol's tests to import from here
__all__ = ["make_pool", "make_user", "password"]

# the world-building helpers, for the protocol's tests to import from here
__all__ = ["make_pool", "make_user", "password"]

DAV = "{DAV:}"
PROPFIND_ALL = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'


def make_share(daemon: Daemon, name: str, grants: dict[str, str], quota: str | None = None) -> Path:
    """A share offered over WebDAV with ``grants`` (user -> rw/ro); returns its folder."""
    return world.make_share(daemon, name, grants, quota, webdav=True)


def set_enabled(daemon: Daemon, user: str, enabled: bool) -> None:
    r = daemon.api.patch(f"/users/{user}", json={"enabled": enabled})
    assert r.status_code == 200, r.text


# -- raw HTTP ---------------------------------------------------------------------------------


def dav(daemon: Daemon, user: str | None = "alice", secret: str | None = None) -> httpx.Client:
    """An httpx client for ``/dav`` logged in as ``user`` (None: no credentials)."""
    auth = (user, secret if secret is not None else password(user)) if user else None
    return httpx.Client(base_url=f"{daemon.url}/dav", auth=auth, timeout=60)


def multistatus(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """href (unquoted) -> {property name in Clark notation: element, "status": ...}."""
    assert response.status_code == 207, (response.status_code, response.text)
    root = ET.fromstring(response.content)  # noqa: S314 - our own server's answer
    found: dict[str, dict[str, Any]] = {}
    for resp in root.findall(f"{DAV}response"):
        href_el = resp.find(f"{DAV}href")
        assert href_el is not None and href_el.text
        props: dict[str, Any] = {}
        status = resp.find(f"{DAV}status")
        if status is not None:
            props["status"] = status.text
        for propstat in resp.findall(f"{DAV}propstat"):
            code = propstat.findtext(f"{DAV}status", "")
            for prop in propstat.findall(f"{DAV}prop/*"):
                props[prop.tag] = prop if " 200 " in code else code
        found[unquote(href_el.text)] = props
    return found


def propfind(
    client: httpx.Client, path: str, depth: str = "1", body: bytes | Iterator[bytes] = PROPFIND_ALL
) -> httpx.Response:
    return client.request("PROPFIND", path, headers={"Depth": depth}, content=body)


# -- the conformance client -------------------------------------------------------------------


def _refusal(response: httpx.Response, op: str) -> Refused:
    code = response.status_code
    detail = f"{op} -> {code} {response.text[:200]}"
    if code == 404:
        return Refused("not_found", detail)
    if code in (401, 403):
        return Refused("denied", detail)
    if code in (405, 412):
        return Refused("exists", detail)
    if code == 409:
        return Refused("not_found", detail)  # a missing parent folder
    if code == 507:
        return Refused("no_space", detail)
    if code in (400, 414):
        return Refused("invalid", detail)
    raise AssertionError(f"unexpected answer: {detail}")


class DavFiles:
    """A user's share over WebDAV, as the conformance suite's FileClient. Paths are sent as
    typed: only characters a URL cannot carry are percent-encoded (``%`` is not, so encoded
    attacks reach the server as written)."""

    def __init__(self, daemon: Daemon, user: str, share: str) -> None:
        self.base = f"/dav/{quote(share)}/"
        self.http = httpx.Client(base_url=daemon.url, auth=(user, password(user)), timeout=120)

    def _url(self, path: str) -> str:
        return self.base + quote(path.lstrip("/"), safe="/%:@!$&'()*+,;=")

    def _check(self, response: httpx.Response, op: str, *ok: int) -> httpx.Response:
        if response.status_code not in ok:
            raise _refusal(response, op)
        return response

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        url = self._url(path)
        # httpx would normalize "../" and "%2e%2e" away: send the target exactly as built
        request = self.http.build_request(method, url, **kw)
        request.url = request.url.copy_with(raw_path=url.encode("utf-8", "surrogateescape"))
        return self.http.send(request)

    def put(self, path: str, data: bytes) -> None:
        self._check(self._send("PUT", path, content=data), "PUT", 201, 204)

    def get(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        headers = {}
        if start is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        r = self._check(self._send("GET", path, headers=headers), "GET", 200, 206)
        if r.headers.get("content-type", "").startswith("text/plain") and r.text.startswith(
            "Index of"
        ):
            raise Refused("invalid", "a folder")
        return r.content

    def _props(self, path: str, depth: str) -> dict[str, dict[str, Any]]:
        r = self._send("PROPFIND", path, headers={"Depth": depth}, content=PROPFIND_ALL)
        self._check(r, "PROPFIND", 207)
        return multistatus(r)

    @staticmethod
    def _stat(href: str, props: dict[str, Any]) -> Stat:
        kind = props.get(f"{DAV}resourcetype")
        is_dir = (
            kind is not None
            and not isinstance(kind, str)
            and kind.find(f"{DAV}collection") is not None
        )
        size_el = props.get(f"{DAV}getcontentlength")
        size = int(size_el.text) if size_el is not None and not isinstance(size_el, str) else 0
        stamp = props[f"{DAV}getlastmodified"].text
        mtime = email.utils.parsedate_to_datetime(stamp).timestamp()
        return Stat(href.rstrip("/").rsplit("/", 1)[-1], is_dir, size, mtime)

    def stat(self, path: str) -> Stat:
        found = self._props(path, "0")
        ((href, props),) = found.items()
        return self._stat(href, props)

    def list(self, path: str) -> dict[str, Stat]:
        found = self._props(path, "1")
        here = urlsplit(self._url(path)).path.rstrip("/")
        out = {}
        for href, props in found.items():
            if href.rstrip("/") == unquote(here):
                continue
            entry = self._stat(href, props)
            out[entry.name] = entry
        return out

    def mkdir(self, path: str) -> None:
        self._check(self._send("MKCOL", path), "MKCOL", 201)

    def rmdir(self, path: str) -> None:
        # WebDAV has no rmdir: DELETE removes a whole tree. Clients (davfs2, rclone) look
        # first, as this does; the server's own refusal of non-folders is what is tested.
        if not self.stat(path).is_dir:
            raise Refused("invalid", "not a folder")
        if self.list(path):
            raise Refused("not_empty", path)
        self._check(self._send("DELETE", path), "DELETE", 204)

    def delete(self, path: str) -> None:
        if self.stat(path).is_dir:
            raise Refused("invalid", "a folder")
        self._check(self._send("DELETE", path), "DELETE", 204)

    def rename(self, src: str, dst: str) -> None:
        headers = {"Destination": self._url(dst), "Overwrite": "T"}
        self._check(self._send("MOVE", src, headers=headers), "MOVE", 201, 204)

    def close(self) -> None:
        self.http.close()


def wait_for(what: str, check: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.25)
