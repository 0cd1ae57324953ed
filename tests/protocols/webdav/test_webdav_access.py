"""Who may do what over WebDAV, and what no request can do: logins, grants, snapshots, the
internal folder, limits on what a request may be, answers without tracebacks, and the raw
attack paths sent with curl exactly as typed."""

from __future__ import annotations

import concurrent.futures
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dav_helpers import (
    dav,
    make_pool,
    make_share,
    make_user,
    multistatus,
    password,
    propfind,
    set_enabled,
)

from speicher_testing import Daemon

pytestmark = pytest.mark.system

LOCKINFO = (
    b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
    b"</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
)
PATCH = (
    b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
    b'<Z:a xmlns:Z="urn:z">1</Z:a></D:prop></D:set></D:propertyupdate>'
)


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    """``docs``: alice rw, bob ro; carol has no grant; ``small`` has a 16 MiB quota."""
    make_pool(daemon)
    for user in ("alice", "bob", "carol"):
        make_user(daemon, user)
    return {
        "docs": make_share(daemon, "docs", {"alice": "rw", "bob": "ro"}),
        "small": make_share(daemon, "small", {"alice": "rw"}, quota="16M"),
    }


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> Iterator[httpx.Client]:
    with dav(daemon, "alice") as client:
        yield client


def curl(daemon: Daemon, *args: str, user: str = "alice") -> tuple[int, str]:
    """curl with the path exactly as given (``--path-as-is``): status and body."""
    result = subprocess.run(
        [
            "curl",
            "-s",
            "--path-as-is",
            "-u",
            f"{user}:{password(user)}",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            *args,
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    body, _, code = result.stdout.decode(errors="replace").rpartition("\n")
    return int(code), body


def short_and_plain(response: httpx.Response) -> None:
    """An error answer: a short text or XML body, never a traceback or an HTML page."""
    kind = response.headers.get("content-type", "")
    assert kind.startswith(("text/plain", "application/xml")), (response.status_code, kind)
    assert len(response.content) < 600, response.text
    for word in ("Traceback", 'File "', "Exception", "<html", "wsgidav", "/tmp/"):
        assert word not in response.text, response.text


def test_logins(daemon: Daemon, world: dict[str, Any]) -> None:
    with dav(daemon, None) as anonymous:
        r = anonymous.request("PROPFIND", "/docs/", headers={"Depth": "0"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('Basic realm="Speicher"')
        short_and_plain(r)
    with dav(daemon, "alice", "wrong-password") as wrong:
        r = wrong.get("/docs/")
        assert r.status_code == 401 and "www-authenticate" in r.headers
    with dav(daemon, "nobody") as stranger:
        assert stranger.get("/").status_code == 401
    r = httpx.get(f"{daemon.url}/dav/", headers={"Authorization": "Basic !!!"})
    assert r.status_code == 401
    # admins of the API are no file users: they log in but see no share
    with httpx.Client(base_url=f"{daemon.url}/dav", auth=("admin", "admin-secret-1")) as admin:
        assert set(multistatus(propfind(admin, "/", "1"))) == {"/dav/"}
        assert admin.get("/docs/").status_code == 404


def test_a_new_password_ends_remembered_logins(daemon: Daemon, world: dict[str, Any]) -> None:
    make_user(daemon, "erin")
    r = daemon.api.post("/shares/docs/grants", json={"user": "erin", "access": "ro"})
    assert r.status_code == 200
    with dav(daemon, "erin") as erin:
        assert erin.get("/docs/").status_code == 200
        assert erin.get("/docs/").status_code == 200  # remembered: no second Argon2 check
        r = daemon.api.put("/users/erin/password", json={"password": "a-new-secret-9"})
        assert r.status_code == 204, r.text
        assert erin.get("/docs/").status_code == 401
    with dav(daemon, "erin", "a-new-secret-9") as erin:
        assert erin.get("/docs/").status_code == 200
        set_enabled(daemon, "erin", False)
        assert erin.get("/docs/").status_code == 401


def test_read_only_grant_gets_403_on_every_write(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    assert alice.request("MKCOL", "/docs/ro").status_code == 201
    assert alice.put("/docs/ro/file.txt", content=b"alice's").status_code == 201
    dest = {"Destination": f"{daemon.url}/dav/docs/ro/copy.txt"}
    with dav(daemon, "bob") as bob:
        assert bob.get("/docs/ro/file.txt").content == b"alice's"
        assert "/dav/docs/ro/file.txt" in multistatus(propfind(bob, "/docs/ro/"))
        writes = {
            "PUT new": bob.put("/docs/ro/new.txt", content=b"x"),
            "PUT over": bob.put("/docs/ro/file.txt", content=b"x"),
            "DELETE": bob.delete("/docs/ro/file.txt"),
            "DELETE folder": bob.delete("/docs/ro"),
            "MKCOL": bob.request("MKCOL", "/docs/ro/dir"),
            "PROPPATCH": bob.request("PROPPATCH", "/docs/ro/file.txt", content=PATCH),
            "COPY": bob.request("COPY", "/docs/ro/file.txt", headers=dest),
            "MOVE": bob.request("MOVE", "/docs/ro/file.txt", headers=dest),
            "LOCK": bob.request("LOCK", "/docs/ro/file.txt", content=LOCKINFO),
            "LOCK new": bob.request("LOCK", "/docs/ro/null.txt", content=LOCKINFO),
            "UNLOCK": bob.request("UNLOCK", "/docs/ro/file.txt", headers={"Lock-Token": "<x>"}),
        }
        for what, r in writes.items():
            assert r.status_code == 403, f"{what}: {r.status_code} {r.text}"
            short_and_plain(r)
    assert sorted(os.listdir(world["docs"] / "ro")) == ["file.txt"]
    assert (world["docs"] / "ro" / "file.txt").read_bytes() == b"alice's"


def test_no_grant_no_share(daemon: Daemon, world: dict[str, Any]) -> None:
    with dav(daemon, "carol") as carol:
        assert set(multistatus(propfind(carol, "/", "1"))) == {"/dav/"}
        for r in (
            carol.get("/docs/"),
            carol.request("PROPFIND", "/docs/", headers={"Depth": "0"}),
        ):
            assert r.status_code == 404, r.text
            assert "docs" not in r.text or "/docs/" in r.text  # no more than what was asked
        assert carol.put("/docs/carol.txt", content=b"x").status_code in (404, 409)
        assert carol.put("/missing-share/x", content=b"x").status_code in (403, 404, 409)
    assert not (world["docs"] / "carol.txt").exists()
    with dav(daemon, "bob") as bob:
        assert set(multistatus(propfind(bob, "/", "1"))) == {"/dav/", "/dav/docs/"}


def test_webdav_switched_off_hides_the_share(daemon: Daemon, world: dict[str, Any]) -> None:
    r = daemon.api.post("/shares", json={"name": "smbonly", "pool": "tank"})
    assert r.status_code == 201 and r.json()["webdav"] is False  # off unless asked for
    daemon.api.post("/shares/smbonly/grants", json={"user": "alice", "access": "rw"})
    with dav(daemon, "alice") as alice:
        assert alice.get("/smbonly/").status_code == 404
        assert alice.put("/smbonly/x.txt", content=b"x").status_code in (404, 409)
        r = daemon.api.patch("/shares/docs", json={"webdav": False})
        assert r.status_code == 200 and r.json()["webdav"] is False, r.text
        try:
            assert alice.get("/docs/").status_code == 404
            assert alice.request("PROPFIND", "/docs/", headers={"Depth": "0"}).status_code == 404
            assert set(multistatus(propfind(alice, "/", "1"))) == {"/dav/", "/dav/small/"}
        finally:
            r = daemon.api.patch("/shares/docs", json={"webdav": True})
            assert r.status_code == 200, r.text
        assert alice.get("/docs/").status_code == 200


def test_snapshots_are_readable_not_writable(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    assert alice.put("/docs/snapped.txt", content=b"before").status_code in (201, 204)
    r = daemon.api.post("/shares/docs/snapshots", json={})
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    assert alice.put("/docs/snapped.txt", content=b"after").status_code == 204
    assert ".snapshots" not in str(list(multistatus(propfind(alice, "/docs/"))))
    listed = multistatus(propfind(alice, "/docs/.snapshots/"))
    assert f"/dav/docs/.snapshots/{name}/" in listed
    base = f"/docs/.snapshots/{name}"
    assert alice.get(f"{base}/snapped.txt").content == b"before"
    assert f"/dav{base}/snapped.txt" in multistatus(propfind(alice, f"{base}/"))
    dest = {"Destination": f"{daemon.url}/dav{base}/copy.txt"}
    writes = {
        "PUT": alice.put(f"{base}/snapped.txt", content=b"x"),
        "PUT new": alice.put(f"{base}/new.txt", content=b"x"),
        "DELETE": alice.delete(f"{base}/snapped.txt"),
        "DELETE snapshot": alice.delete(f"{base}/"),
        "MKCOL": alice.request("MKCOL", f"{base}/dir"),
        "PROPPATCH": alice.request("PROPPATCH", f"{base}/snapped.txt", content=PATCH),
        "LOCK": alice.request("LOCK", f"{base}/snapped.txt", content=LOCKINFO),
        "COPY into": alice.request("COPY", "/docs/snapped.txt", headers=dest),
        "MOVE out": alice.request(
            "MOVE",
            f"{base}/snapped.txt",
            headers={"Destination": f"{daemon.url}/dav/docs/out.txt"},
        ),
    }
    for what, r in writes.items():
        assert r.status_code == 403, f"{what}: {r.status_code} {r.text}"
    copy_out = alice.request(
        "COPY",
        f"{base}/snapped.txt",
        headers={"Destination": f"{daemon.url}/dav/docs/restored.txt"},
    )
    assert copy_out.status_code == 201  # restoring a file is a copy out of the snapshot
    assert alice.get("/docs/restored.txt").content == b"before"


def test_internal_files_are_invisible(alice: httpx.Client, world: dict[str, Any]) -> None:
    top: Path = world["docs"]
    (top / ".speicher").mkdir(exist_ok=True)
    (top / ".speicher" / "state").write_text("internal")
    (top / ".speicher-upload-0123456789abcdef").write_text("half an upload")
    listed = multistatus(propfind(alice, "/docs/"))
    assert not any(".speicher" in href for href in listed), listed
    for path in (
        "/docs/.speicher/state",
        "/docs/.speicher/",
        "/docs/.speicher-upload-0123456789abcdef",
    ):
        assert alice.get(path).status_code == 404, path
        assert alice.delete(path).status_code == 404, path
    assert alice.put("/docs/.speicher-upload-x", content=b"x").status_code == 404
    assert alice.request("MKCOL", "/docs/.speicher").status_code in (403, 404, 405)
    assert (top / ".speicher" / "state").read_text() == "internal"


def test_quota_full_is_507_and_keeps_what_was_there(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    kept = os.urandom(1024 * 1024)
    assert alice.put("/small/kept.bin", content=kept).status_code == 201
    r = alice.put("/small/big.bin", content=os.urandom(24 * 1024 * 1024))
    assert r.status_code == 507, r.text
    short_and_plain(r)
    r = alice.put("/small/kept.bin", content=os.urandom(24 * 1024 * 1024))
    assert r.status_code == 507
    assert alice.get("/small/kept.bin").content == kept
    assert sorted(os.listdir(world["small"])) == ["kept.bin"]


def test_limits_on_requests(daemon: Daemon, alice: httpx.Client) -> None:
    bad = {
        "truncated": b"<D:propfind xmlns:D='DAV:'><D:prop>",
        "not xml": b"hello",
        "wrong root": b"<D:lockinfo xmlns:D='DAV:'/>",
        "entity bomb": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><D:propfind xmlns:D="DAV:">&b;</D:propfind>',
    }
    for what, body in bad.items():
        r = propfind(alice, "/docs/", "0", body)
        assert r.status_code == 400, f"{what}: {r.status_code}"
        short_and_plain(r)
    assert alice.request("PROPPATCH", "/docs/", content=b"<x").status_code == 400
    assert alice.request("LOCK", "/docs/x", content=b"<x").status_code == 400

    huge = b"<D:propfind xmlns:D='DAV:'><D:prop>" + b"<D:x/>" * 200_000 + b"</D:prop></D:propfind>"
    assert len(huge) > 1024 * 1024
    r = propfind(alice, "/docs/", "0", huge)
    assert r.status_code == 413
    short_and_plain(r)
    r = propfind(alice, "/docs/", "0", iter([huge[:600_000], huge[600_000:]]))  # chunked
    assert r.status_code == 413

    deep = "/docs/" + "a/" * 10_000
    r = alice.get(deep)
    assert r.status_code == 414
    short_and_plain(r)
    long_name = "n" * 256
    for r in (alice.get(f"/docs/{long_name}"), alice.put(f"/docs/{long_name}", content=b"x")):
        assert r.status_code in (400, 404, 414), r.status_code
        short_and_plain(r)
    medium = "/docs/" + "d/" * 2100  # under the URL limit, over ShareFS's 4096 bytes
    r = alice.request("MKCOL", medium)
    assert r.status_code in (400, 404, 409, 414)
    short_and_plain(r)


def test_errors_are_short_and_plain(daemon: Daemon, alice: httpx.Client) -> None:
    answers = [
        alice.get("/docs/missing"),
        alice.request("PROPFIND", "/docs/", headers={"Depth": "infinity"}),
        alice.request("MKCOL", "/docs/a/b/c"),
        alice.request("BREW", "/docs/"),
        alice.request("MOVE", "/docs/missing", headers={"Destination": "/dav/docs/x"}),
        alice.request("UNLOCK", "/docs/", headers={"Lock-Token": "<nope>"}),
        alice.get("/docs/%00"),
        alice.request("COPY", "/docs/"),
    ]
    for r in answers:
        assert r.status_code >= 400, r
        short_and_plain(r)
    assert "Traceback" not in daemon.log()


def test_attack_paths_sent_as_typed(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    assert alice.put("/docs/inside.txt", content=b"inside").status_code in (201, 204)
    base = f"{daemon.url}/dav/docs/"
    outside = world["docs"].parent / "outside.txt"
    for path in (
        "../../etc/passwd",
        "../../../../../../../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%252e%252e/%252e%252e/etc/passwd",
        "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        "..%5c..%5cetc%5cpasswd",
        "..\\..\\etc\\passwd",
        "/etc/passwd",
        "etc/passwd%00",
        "%00",
        ".snapshots/../../etc/passwd",
        ".snapshots/%2e%2e/%2e%2e/etc/passwd",
    ):
        code, body = curl(daemon, base + path)
        assert "root:x:0:0" not in body, path
        assert code in (400, 403, 404), (path, code, body)
        assert "Traceback" not in body
    for path in ("../outside.txt", "%2e%2e/outside.txt", "..%2foutside.txt", "..%5coutside.txt"):
        code, _ = curl(daemon, "-T", "/etc/hostname", base + path)
        assert not outside.exists(), path
    code, _ = curl(
        daemon, "-X", "MOVE", "-H", f"Destination: {base}../../etc/evil", base + "inside.txt"
    )
    assert code in (400, 403, 502) and not Path("/etc/evil").exists()
    code, _ = curl(
        daemon, "-X", "COPY", "-H", "Destination: /dav/docs/%2e%2e/%2e%2e/x", base + "inside.txt"
    )
    assert code in (400, 403, 404, 409, 502)
    assert (world["docs"] / "inside.txt").read_bytes() == b"inside"


def test_cross_site_requests_are_refused(daemon: Daemon, alice: httpx.Client) -> None:
    r = alice.request("DELETE", "/docs/inside.txt", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    short_and_plain(r)
    assert alice.get("/docs/inside.txt").status_code == 200
    same = alice.get("/docs/inside.txt", headers={"Origin": daemon.url})
    assert same.status_code == 200
    r = alice.get("/docs/inside.txt")
    assert r.headers["content-security-policy"] == "sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_https_serves_webdav_too(daemon: Daemon, world: dict[str, Any]) -> None:
    ca = ssl.create_default_context(cafile=str(daemon.state_dir / "tls" / "cert.pem"))
    with httpx.Client(
        base_url=f"{daemon.https_url}/dav", auth=("alice", password("alice")), verify=ca
    ) as client:
        assert client.put("/docs/over-tls.txt", content=b"tls").status_code in (201, 204)
        assert client.get("/docs/over-tls.txt").content == b"tls"
    # the API stays where it was
    assert daemon.api.get("/system").status_code == 200


def test_remembered_logins_and_the_cap_on_checks(daemon: Daemon, world: dict[str, Any]) -> None:
    """Twenty requests at once with new credentials cost one Argon2 check, not twenty."""
    make_user(daemon, "frank")
    daemon.api.post("/shares/docs/grants", json={"user": "frank", "access": "ro"})
    with httpx.Client(
        base_url=f"{daemon.url}/dav", auth=("frank", password("frank")), timeout=60
    ) as frank:
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(lambda _: frank.get("/docs/").status_code, range(20)))
        assert codes == [200] * 20, codes
        assert time.monotonic() - start < 10
