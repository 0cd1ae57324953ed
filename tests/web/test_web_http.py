"""The web console and file manager over HTTPS as a browser talks to it (httpx): the login
with its nonce, sessions, CSRF, security headers, languages, the dashboard, and the file
manager's folders, downloads with ranges, resumable uploads and forms, on a real daemon."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import re
import socket
import ssl
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_helpers import browser, csrf_of, field, log_in, logged_in, put_piece

from speicher.files.paths import UPLOAD_PREFIX
from speicher_testing import ADMIN_PASSWORD, Daemon
from world import make_pool, make_share, make_user, password

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    make_user(daemon, "rita")
    docs = make_share(daemon, "docs", {"alice": "rw", "rita": "ro"})
    make_share(daemon, "private", {})
    return {"docs": docs}


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> httpx.Client:
    return logged_in(daemon, "alice", password("alice"))


def test_plain_http_redirects_and_pages_carry_strict_headers(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    r = httpx.get(f"{daemon.url}/files/docs/?q=a", follow_redirects=False)
    assert r.status_code == 308
    assert r.headers["location"] == f"https://127.0.0.1:{daemon.https_port}/files/docs/?q=a"
    # the API stays on plain HTTP for the CLI on this machine
    assert daemon.api.get("/pools").status_code == 200
    page = browser(daemon).get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert '<script src="/static/app.js"' in page.text and "style=" not in page.text
    css = browser(daemon).get("/static/app.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_login_needs_the_forms_nonce_and_the_right_password(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    client = browser(daemon, "de")
    page = client.get("/login")
    assert "Bei Speicher anmelden" in page.text and page.headers["content-language"] == "de"
    nonce = field(page.text, "nonce")
    wrong = client.post("/login", data={"nonce": nonce, "user": "alice", "password": "nope"})
    assert wrong.status_code == 401 and "Falscher Benutzername" in wrong.text
    # a form from elsewhere: no nonce of this browser
    stranger = browser(daemon)
    r = stranger.post("/login", data={"nonce": nonce, "user": "alice", "password": "x"})
    assert r.status_code == 403
    foreign = client.post(
        "/login",
        data={"nonce": field(client.get("/login").text, "nonce"), "user": "alice",
              "password": password("alice")},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    assert foreign.status_code == 403
    good = log_in(client, "Alice", password("alice"))
    assert good.status_code == 303 and good.headers["location"] == "/"
    cookie = good.headers["set-cookie"]
    assert cookie.startswith("__Host-speicher=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert client.get("/").headers["location"] == "/files/"  # not an admin


def test_the_admin_sees_the_dashboard_and_logs_out_with_the_csrf_token(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    client = browser(daemon)
    assert log_in(client, "admin", ADMIN_PASSWORD).status_code == 303
    assert client.get("/").headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200
    for text in ("Pools", "tank", "Services", "SMB", "Disks", "d1", "Recent events"):
        assert text in page.text, text
    jobs = client.get("/console/jobs.json")
    assert jobs.status_code == 200 and isinstance(jobs.json(), list)
    # the live figures: server-sent events with the pools' throughput and capacity
    with client.stream("GET", "/console/stream") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        data = next(line for line in events.iter_lines() if line.startswith("data: "))
    figures = json.loads(data.removeprefix("data: "))
    assert figures["read"] >= 0 and figures["write"] >= 0
    assert [p["name"] for p in figures["pools"]] == ["tank"]
    csrf = field(page.text, "csrf")
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/console/").status_code == 200  # still logged in
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/console/").status_code == 303  # to the login page
    # the old cookie is worth nothing now, also when replayed
    assert client.get("/console/jobs.json").status_code == 403


def test_a_user_is_no_admin_and_sees_only_their_shares(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    assert alice.get("/console/").status_code == 403
    assert alice.get("/console/jobs.json").status_code == 403
    page = alice.get("/files/")
    assert "/files/docs/" in page.text and "/files/private/" not in page.text
    assert alice.get("/files/private/").status_code == 404


def test_folders_downloads_and_ranges(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    folder: Path = world["docs"] / "reports"
    folder.mkdir()
    body = os.urandom(1_000_003)
    (folder / "q4 (final).bin").write_bytes(body)
    for i in range(5):
        (folder / f"note-{i}.txt").write_text(f"note {i}\n")
    page = alice.get("/files/docs/reports/", params={"sort": "size", "order": "desc"})
    assert page.status_code == 200
    assert page.text.index("q4 (final).bin") < page.text.index("note-0.txt")
    filtered = alice.get("/files/docs/reports/", params={"q": "NOTE-3"})
    assert "note-3.txt" in filtered.text and "note-2.txt" not in filtered.text
    whole = alice.get("/files/docs/reports/q4%20(final).bin")
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["content-disposition"].startswith("attachment;")
    assert whole.headers["content-security-policy"] == "sandbox"
    part = alice.get("/files/docs/reports/q4%20(final).bin", headers={"Range": "bytes=999990-"})
    assert part.status_code == 206 and part.content == body[999_990:]
    assert part.headers["content-range"] == f"bytes 999990-1000002/{len(body)}"
    tail = alice.get("/files/docs/reports/q4%20(final).bin", headers={"Range": "bytes=-5"})
    assert tail.content == body[-5:]
    beyond = alice.get("/files/docs/reports/q4%20(final).bin", headers={"Range": "bytes=2000000-"})
    assert beyond.status_code == 416


def test_paths_that_leave_the_share_and_links_get_nothing(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    (world["docs"] / "etc-link").symlink_to("/etc")
    (world["docs"] / "passwd-link").symlink_to("/etc/passwd")
    for path in (
        "/files/docs/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/files/docs/etc-link/passwd",
        "/files/docs/passwd-link",
        "/files/docs/a%00b",
    ):
        r = alice.get(path)
        assert r.status_code in (403, 404, 422), (path, r.status_code)
        assert "root:" not in r.text
    listing = alice.get("/files/docs/")
    assert "etc-link" not in listing.text and "passwd-link" not in listing.text


def test_a_resumable_upload_in_pieces(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    csrf = csrf_of(alice, "/files/docs/")
    body = os.urandom(3 * 1024 * 1024 + 17)
    path = "/files/docs/big%20upload.bin"
    first = put_piece(alice, csrf, path, "upload-0001", 0, len(body), body[:1_000_000])
    assert first.status_code == 200 and first.json() == {"offset": 1_000_000, "done": False}
    assert not (world["docs"] / "big upload.bin").exists()  # not visible before the end
    # a browser whose connection dropped asks again from the wrong place: told where to go on
    again = put_piece(alice, csrf, path, "upload-0001", 500, len(body), body[500:900])
    assert again.status_code == 409 and again.json()["offset"] == 1_000_000
    # without the CSRF token nothing is written
    forged = put_piece(alice, "x", path, "upload-0001", 1_000_000, len(body), body[1_000_000:])
    assert forged.status_code == 403
    last = put_piece(alice, csrf, path, "upload-0001", 1_000_000, len(body), body[1_000_000:])
    assert last.status_code == 200 and last.json()["done"] is True
    stored = world["docs"] / "big upload.bin"
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(body).digest()
    assert stored.stat().st_uid == daemon_uid(daemon, "alice")
    assert not [p for p in world["docs"].iterdir() if p.name.startswith(".speicher-upload")]
    # more bytes than announced: refused, nothing left
    over = put_piece(alice, csrf, "/files/docs/over.bin", "upload-0002", 0, 10, b"x" * 11)
    assert over.status_code == 413
    assert not (world["docs"] / "over.bin").exists()
    assert not [p for p in world["docs"].iterdir() if p.name.startswith(UPLOAD_PREFIX)]
    again = put_piece(alice, csrf, "/files/docs/over.bin", "upload-0002", 0, 10, b"x" * 10)
    assert again.status_code == 200 and again.json()["done"] is True  # it started anew


def daemon_uid(daemon: Daemon, user: str) -> int:
    return pwd.getpwnam(daemon.unix_name(user)).pw_uid


def test_folder_forms_and_a_read_only_user(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    csrf = csrf_of(alice, "/files/docs/")
    made = alice.post("/files/docs/", data={"csrf": csrf, "action": "mkdir", "name": "Ablage"})
    assert made.status_code == 303 and (world["docs"] / "Ablage").is_dir()
    (world["docs"] / "Ablage" / "a.txt").write_text("a")
    renamed = alice.post(
        "/files/docs/Ablage/",
        data={"csrf": csrf, "action": "rename", "name": "a.txt", "to": "b.txt"},
    )
    assert renamed.status_code == 303 and (world["docs"] / "Ablage" / "b.txt").exists()
    clash = alice.post("/files/docs/", data={"csrf": csrf, "action": "mkdir", "name": "Ablage"})
    assert clash.status_code == 409
    bad = alice.post("/files/docs/", data={"csrf": csrf, "action": "mkdir", "name": "../x"})
    assert bad.status_code == 400 and not (world["docs"].parent / "x").exists()
    gone = alice.post("/files/docs/", data={"csrf": csrf, "action": "delete", "name": "Ablage"})
    assert gone.status_code == 303 and not (world["docs"] / "Ablage").exists()
    rita = browser(daemon)
    assert log_in(rita, "rita", password("rita")).status_code == 303
    page = rita.get("/files/docs/")
    assert page.status_code == 200 and 'id="drop"' not in page.text  # no upload for ro
    rita_csrf = field(page.text, "csrf")
    refused = rita.post("/files/docs/", data={"csrf": rita_csrf, "action": "mkdir", "name": "r"})
    assert refused.status_code == 403 and not (world["docs"] / "r").exists()
    upload = put_piece(rita, rita_csrf, "/files/docs/r.bin", "upload-0003", 0, 1, b"r")
    assert upload.status_code == 403 and not (world["docs"] / "r.bin").exists()


def test_previous_versions_from_the_snapshots_and_a_restore(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    report: Path = world["docs"] / "plan.txt"
    report.write_bytes(b"first plan\n")
    os.chown(report, daemon_uid(daemon, "alice"), -1)
    first = daemon.api.post("/shares/docs/snapshots", json={})
    assert first.status_code == 201, first.text
    report.write_bytes(b"second, longer plan\n")
    second = daemon.api.post("/shares/docs/snapshots", json={})
    assert second.status_code == 201, second.text
    report.write_bytes(b"third and current plan\n")
    page = alice.get("/files/docs/plan.txt", params={"versions": ""})
    assert page.status_code == 200
    snaps = re.findall(r"<td>(@GMT-[^<]+)</td>", page.text)
    assert len(snaps) == 2 and snaps == sorted(snaps, reverse=True)  # newest first
    old = alice.get(f"/files/docs/.snapshots/{snaps[1]}/plan.txt")
    assert old.status_code == 200 and old.content == b"first plan\n"
    csrf = field(page.text, "csrf")
    form = {"csrf": csrf, "action": "restore", "name": "plan.txt", "snapshot": snaps[1]}
    assert alice.post("/files/docs/", data=form).status_code == 303
    assert report.read_bytes() == b"first plan\n"
    assert report.stat().st_uid == daemon_uid(daemon, "alice")
    # a snapshot's files are read only, also through the file manager's forms
    form = {"csrf": csrf, "action": "delete", "name": "plan.txt"}
    assert alice.post(f"/files/docs/.snapshots/{snaps[1]}/", data=form).status_code == 403
    bad = {"csrf": csrf, "action": "restore", "name": "plan.txt", "snapshot": "../../etc"}
    assert alice.post("/files/docs/", data=bad).status_code in (403, 404, 422)


def test_a_folder_downloads_as_a_zip_made_while_it_is_sent(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    top: Path = world["docs"] / "Projekt Ä"
    (top / "sub" / "deeper").mkdir(parents=True)
    files = {
        "a.bin": os.urandom(3 * 1024 * 1024 + 5),
        "sub/b.txt": b"b\n",
        "sub/deeper/empty.dat": b"",
    }
    for rel, body in files.items():
        (top / rel).write_bytes(body)
    (top / "outside").symlink_to("/etc")  # a link is not in the share, nor in the zip
    r = alice.get("/files/docs/Projekt%20%C3%84/", params={"zip": ""})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert "Projekt%20%C3%84.zip" in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        assert names == {
            "Projekt Ä/a.bin", "Projekt Ä/sub/", "Projekt Ä/sub/b.txt", "Projekt Ä/sub/deeper/",
            "Projekt Ä/sub/deeper/empty.dat",
        }  # fmt: skip
        for rel, body in files.items():
            assert archive.read(f"Projekt Ä/{rel}") == body


def test_delete_goes_into_the_recycle_bin_where_the_share_has_one(
    daemon: Daemon, world: dict[str, Any]
) -> None:
    folder = make_share(daemon, "bin", {"alice": "rw"}, smb={"enabled": True, "recycle": True})
    client = browser(daemon)
    assert log_in(client, "alice", password("alice")).status_code == 303
    page = client.get("/files/bin/")
    assert "Move a to the recycle bin?" not in page.text  # nothing listed yet
    uid = daemon_uid(daemon, "alice")
    for body in (b"one\n", b"two\n"):
        (folder / "a").mkdir(exist_ok=True)
        (folder / "a" / "b.txt").write_bytes(body)
        os.chown(folder / "a", uid, -1)
        os.chown(folder / "a" / "b.txt", uid, -1)
        csrf = field(client.get("/files/bin/a/").text, "csrf")
        form = {"csrf": csrf, "action": "delete", "name": "b.txt"}
        assert client.post("/files/bin/a/", data=form).status_code == 303
        assert not (folder / "a" / "b.txt").exists()
    kept = folder / "#recycle" / "a"
    assert (kept / "b.txt").read_bytes() == b"one\n"
    assert (kept / "b (2).txt").read_bytes() == b"two\n"  # the second of that name
    assert time.time() - (kept / "b (2).txt").stat().st_mtime < 60  # the purge counts from now
    page = client.get("/files/bin/")
    assert "Move a to the recycle bin?" in page.text


def test_a_piece_cut_off_midway_keeps_what_came_and_the_upload_goes_on(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    csrf = csrf_of(alice, "/files/docs/")
    body = os.urandom(2_000_003)
    path = "/files/docs/cut.bin"
    cookie = "; ".join(f"{k}={v}" for k, v in alice.cookies.items())
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{daemon.https_port}\r\n"
        f"Origin: {daemon.https_url}\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n"
        f"X-Upload-Id: upload-cut-1\r\nX-Upload-Offset: 0\r\nX-Upload-Total: {len(body)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    raw = socket.create_connection(("127.0.0.1", daemon.https_port))
    with raw, context.wrap_socket(raw) as tls:
        tls.sendall(head.encode() + body[:700_000])
        # the connection breaks once the server has written what came (bytes still in the
        # socket when it breaks are lost, as they would be on a real network)
        for _ in range(300):
            temps = [p for p in world["docs"].iterdir() if p.name.startswith(UPLOAD_PREFIX)]
            if any(t.stat().st_size == 700_000 for t in temps):
                break
            time.sleep(0.1)
        else:
            sizes = {t.name: t.stat().st_size for t in temps}
            raise AssertionError(f"the server never wrote the first 700,000 bytes: {sizes}")
    seen: list[int | None] = []
    for _ in range(100):  # the server sees the end of the connection, and keeps what came
        probe = put_piece(alice, csrf, path, "upload-cut-1", len(body) + 1, len(body), b"")
        assert probe.status_code == 409
        seen.append(probe.json()["offset"])  # None while the cut piece is still busy
        if seen[-1] is not None:
            break
        time.sleep(0.1)
    stood = seen[-1]
    assert stood == 700_000  # what reached the server, kept
    assert not (world["docs"] / "cut.bin").exists()
    rest = put_piece(alice, csrf, path, "upload-cut-1", stood, len(body), body[stood:])
    assert rest.status_code == 200 and rest.json()["done"] is True
    assert (world["docs"] / "cut.bin").read_bytes() == body
