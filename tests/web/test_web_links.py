"""Share links over HTTPS as browsers use them (httpx), on a real daemon: made with the file
manager's form, opened logged out (a folder's listing, a file's page, downloads), with a
password, expired, revoked, and upload links ("file requests") with their size limit."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import web_helpers
from sqlalchemy import update
from web_helpers import browser, csrf_of, field, log_in, logged_in

from speicher.config import Settings
from speicher.db import Database
from speicher.db.models import ShareLink
from speicher.files.paths import UPLOAD_PREFIX
from speicher_testing import ADMIN_PASSWORD, Daemon
from world import make_pool, make_share, make_user, password

pytestmark = pytest.mark.system

_TOKEN = re.compile(r'value="https://[^"/]+/s/([A-Za-z0-9_-]+)"')
_FORM_TOKEN = re.compile(r'data-csrf="([0-9a-f]+)"')


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    make_user(daemon, "bob")
    docs = make_share(daemon, "docs", {"alice": "rw", "bob": "rw"})
    (docs / "reports" / "q1").mkdir(parents=True)
    (docs / "reports" / "summary.txt").write_text("summary")
    (docs / "reports" / "q1" / "numbers.csv").write_text("1,2,3")
    (docs / "top.txt").write_text("top secret")
    (docs / "reports" / "escape").symlink_to("..")
    (docs / "reports" / "passwd").symlink_to("/etc/passwd")
    (docs / "inbox").mkdir()
    return {"docs": docs}


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> httpx.Client:
    return logged_in(daemon, "alice", password("alice"))


def make_link(client: httpx.Client, path: str, **form: str) -> str:
    """Fill in the "Share" form of ``path`` in share docs; the new link's token."""
    folder = "0" if "." in path.rsplit("/", 1)[-1] else "1"
    page = client.get("/links/new", params={"share": "docs", "path": path, "folder": folder})
    assert page.status_code == 200, page.text
    made = client.post(
        "/links/",
        data={"csrf": field(page.text, "csrf"), "share": "docs", "path": path,
              "folder": folder, "kind": "download", **form},
    )  # fmt: skip
    assert made.status_code == 200, made.text
    found = _TOKEN.search(made.text)
    assert found, made.text
    return found.group(1)


def stranger(daemon: Daemon, lang: str = "en") -> httpx.Client:
    """Someone without an account: no session, nothing but the link."""
    return browser(daemon, lang)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(UPLOAD_PREFIX)]


def test_a_folder_link_made_in_the_file_manager_opens_logged_out(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    files = alice.get("/files/docs/")
    assert "/links/new?share=docs&amp;path=reports&amp;folder=1" in files.text
    token = make_link(alice, "reports")
    listed = alice.get("/links/")
    assert "docs/reports" in listed.text and "active" in listed.text
    guest = stranger(daemon)
    page = guest.get(f"/s/{token}")
    assert page.status_code == 200, page.text
    assert "summary.txt" in page.text and "q1/" in page.text
    assert "escape" not in page.text and "passwd" not in page.text
    assert "__Host-speicher" not in page.headers.get("set-cookie", "")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-robots-tag"].startswith("noindex")
    sub = guest.get(f"/s/{token}/q1/")
    assert sub.status_code == 200 and "numbers.csv" in sub.text
    assert f'href="/s/{token}/q1/numbers.csv"' in sub.text
    got = guest.get(f"/s/{token}/q1/numbers.csv")
    assert got.status_code == 200 and got.content == b"1,2,3"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["content-security-policy"] == "sandbox"
    part = guest.get(f"/s/{token}/summary.txt", headers={"Range": "bytes=2-"})
    assert part.status_code == 206 and part.content == b"mmary"
    for path in (
        f"/s/{token}/%2e%2e/top.txt",
        f"/s/{token}/q1/%2e%2e/%2e%2e/top.txt",
        f"/s/{token}/%2F..%2Ftop.txt",
        f"/s/{token}/..%5Ctop.txt",
        f"/s/{token}//etc/passwd",
        f"/s/{token}/escape/top.txt",
        f"/s/{token}/passwd",
        f"/s/{token}/a%00b",
    ):
        r = guest.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "top secret" not in r.text and "root:" not in r.text
    # a link cannot be used to change anything
    csrf = field(alice.get("/files/docs/").text, "csrf")
    assert guest.post(f"/s/{token}/", data={"action": "mkdir", "name": "x"}).status_code == 405
    assert guest.put(f"/s/{token}/new.txt", content=b"x").status_code == 403
    refused = guest.put(f"/s/{token}/new.txt", content=b"x", headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403 and not (world["docs"] / "reports" / "new.txt").exists()


def test_a_file_link_shows_that_file_and_nothing_else(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    token = make_link(alice, "reports/summary.txt")
    guest = stranger(daemon, "de")
    page = guest.get(f"/s/{token}")
    assert page.status_code == 200 and "summary.txt" in page.text
    assert "Herunterladen" in page.text and f'href="/s/{token}/summary.txt"' in page.text
    got = guest.get(f"/s/{token}/summary.txt")
    assert got.content == b"summary" and got.headers["content-security-policy"] == "sandbox"
    for path in ("q1/numbers.csv", "other.txt", "summary.txt/x", "%2e%2e/top.txt"):
        assert guest.get(f"/s/{token}/{path}").status_code == 404, path


def test_a_link_with_a_password(daemon: Daemon, world: dict[str, Any], alice: httpx.Client) -> None:
    secret = "correct horse battery"
    short = alice.get("/links/new", params={"share": "docs", "path": "reports", "folder": "1"})
    refused = alice.post(
        "/links/",
        data={"csrf": field(short.text, "csrf"), "share": "docs", "path": "reports",
              "folder": "1", "kind": "download", "password": "short",
              "expires": "not a date"},
    )  # fmt: skip
    assert refused.status_code == 422
    assert "at least 8 characters" in refused.text and "must be a date" in refused.text
    token = make_link(alice, "reports", password=secret)
    guest = stranger(daemon)
    for path in (f"/s/{token}", f"/s/{token}/summary.txt"):
        asked = guest.get(path)
        assert asked.status_code == 200 and 'type="password"' in asked.text
        assert "summary" not in asked.text.replace("summary.txt", "")
    form = field(guest.get(f"/s/{token}").text, "csrf")
    wrong = guest.post(f"/s/{token}", data={"csrf": form, "password": "nope"})
    assert wrong.status_code == 401 and "Wrong password" in wrong.text
    assert "set-cookie" not in wrong.headers
    forged = guest.post(f"/s/{token}", data={"csrf": "x", "password": secret})
    assert forged.status_code == 403
    foreign = guest.post(
        f"/s/{token}",
        data={"csrf": form, "password": secret},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    right = guest.post(f"/s/{token}", data={"csrf": form, "password": secret})
    assert right.status_code == 303 and right.headers["location"] == f"/s/{token}/"
    cookie = right.headers["set-cookie"]
    assert cookie.startswith("__Secure-speicher-link=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", f"Path=/s/{token}"):
        assert attribute.lower() in cookie.lower(), cookie
    assert secret not in cookie
    got = guest.get(f"/s/{token}/summary.txt")
    assert got.status_code == 200 and got.content == b"summary"
    # the proof is this browser's, for this link only
    assert 'type="password"' in stranger(daemon).get(f"/s/{token}/").text
    other = make_link(alice, "top.txt", password=secret)
    assert 'type="password"' in guest.get(f"/s/{other}").text


def link_db(daemon: Daemon) -> Database:
    settings = Settings(
        state_dir=daemon.state_dir, mount_root=daemon.mount_root, account_prefix=daemon.prefix
    )
    return Database(settings.db_url)


def test_expired_revoked_and_unknown_links_are_the_same_404(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    expiring = make_link(alice, "top.txt", expires=tomorrow)
    revoked = make_link(alice, "top.txt")
    guest = stranger(daemon)
    assert guest.get(f"/s/{expiring}").status_code == 200
    past = alice.post(
        "/links/",
        data={"csrf": csrf_of(alice), "share": "docs", "path": "top.txt", "kind": "download",
              "expires": "2020-01-01"},
    )  # fmt: skip
    assert past.status_code == 422 and "must be in the future" in past.text
    db = link_db(daemon)
    try:
        with db.session() as s:
            s.execute(
                update(ShareLink)
                .where(ShareLink.expires_at.is_not(None))
                .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
            )
    finally:
        db.close()
    listing = alice.get("/links/")
    link_id = re.findall(r'action="/links/(\d+)/revoke"', listing.text)[0]  # the newest
    assert alice.post(f"/links/{link_id}/revoke", data={"csrf": "x"}).status_code == 403
    assert guest.get(f"/s/{revoked}").status_code == 200
    done = alice.post(f"/links/{link_id}/revoke", data={"csrf": csrf_of(alice, "/links/")})
    assert done.status_code == 303 and done.headers["location"] == "/links/"
    answers = set()
    for token in (expiring, revoked, "A" * 32, expiring[:-2]):
        for path in (f"/s/{token}", f"/s/{token}/top.txt"):
            r = guest.get(path)
            assert r.status_code == 404, (path, r.status_code)
            answers.add(re.sub(r'href="/lang[^"]*"', "", r.text))  # it leads back here
    assert len(answers) == 1 and "top secret" not in answers.pop()
    german = stranger(daemon, "de").get(f"/s/{revoked}")
    assert german.status_code == 404 and "Link nicht gefunden" in german.text
    states = alice.get("/links/").text
    assert "revoked" in states and "expired" in states


def test_only_the_creator_or_an_admin_revokes(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    token = make_link(alice, "reports")
    link_id = re.findall(r'action="/links/(\d+)/revoke"', alice.get("/links/").text)[0]
    bob = browser(daemon)
    assert log_in(bob, "bob", password("bob")).status_code == 303
    assert f"/links/{link_id}/revoke" not in bob.get("/links/").text
    r = bob.post(f"/links/{link_id}/revoke", data={"csrf": csrf_of(bob, "/links/")})
    assert r.status_code == 404
    assert stranger(daemon).get(f"/s/{token}").status_code == 200
    admin = browser(daemon)
    assert log_in(admin, "admin", ADMIN_PASSWORD).status_code == 303
    everyone = admin.get("/links/")
    assert f"/links/{link_id}/revoke" in everyone.text and "alice" in everyone.text
    r = admin.post(f"/links/{link_id}/revoke", data={"csrf": csrf_of(admin, "/links/")})
    assert r.status_code == 303
    assert stranger(daemon).get(f"/s/{token}").status_code == 404


def put_piece(
    client: httpx.Client, token: str, name: str, form: str, upload: str, offset: int,
    total: int, body: bytes,
) -> httpx.Response:  # fmt: skip
    return web_helpers.put_piece(client, form, f"/s/{token}/{name}", upload, offset, total, body)


def test_an_upload_link_with_a_size_limit(
    daemon: Daemon, world: dict[str, Any], alice: httpx.Client
) -> None:
    inbox: Path = world["docs"] / "inbox"
    (inbox / "offer.pdf").write_bytes(b"the old offer")
    folder_only = alice.post(
        "/links/",
        data={"csrf": csrf_of(alice), "share": "docs", "path": "top.txt", "kind": "upload"},
    )
    assert folder_only.status_code == 422 and "needs a folder" in folder_only.text
    token = make_link(alice, "inbox", kind="upload", max_mb="0,5")  # 500,000 bytes
    guest = stranger(daemon)
    page = guest.get(f"/s/{token}")
    assert page.status_code == 200 and 'id="drop"' in page.text
    assert "offer.pdf" not in page.text and "500 kB" in page.text
    found = _FORM_TOKEN.search(page.text)
    assert found
    form = found.group(1)
    assert guest.get(f"/s/{token}/offer.pdf").status_code == 404  # shows nothing
    assert put_piece(guest, token, "a.bin", "x", "up-00001", 0, 1, b"a").status_code == 403
    # over the limit: refused before a byte is written
    over = put_piece(guest, token, "big.bin", form, "up-00002", 0, 600_000, b"b" * 1000)
    assert over.status_code == 413
    assert not (inbox / "big.bin").exists() and leftovers(inbox) == []
    # more bytes than announced: refused, and the part that came is gone
    liar = put_piece(guest, token, "liar.bin", form, "up-00003", 0, 10, b"l" * 11)
    assert liar.status_code == 413
    assert not (inbox / "liar.bin").exists() and leftovers(inbox) == []
    # a file in two pieces, with the name of one that is there: the old one stays
    body = os.urandom(300_000)
    first = put_piece(guest, token, "offer.pdf", form, "up-00004", 0, len(body), body[:100_000])
    assert first.status_code == 200 and first.json() == {"offset": 100_000, "done": False}
    again = put_piece(guest, token, "offer.pdf", form, "up-00004", 5, len(body), body[5:10])
    assert again.status_code == 409 and again.json()["offset"] == 100_000
    last = put_piece(
        guest, token, "offer.pdf", form, "up-00004", 100_000, len(body), body[100_000:]
    )
    assert last.status_code == 200 and last.json()["done"] is True
    assert (inbox / "offer.pdf").read_bytes() == b"the old offer"
    assert (inbox / "offer (2).pdf").read_bytes() == body
    # 300,000 of 500,000 are in: 300,000 more are too many, 200,000 are not
    more = put_piece(guest, token, "more.bin", form, "up-00005", 0, 300_000, b"m")
    assert more.status_code == 413 and leftovers(inbox) == []
    rest = put_piece(guest, token, "rest.bin", form, "up-00006", 0, 200_000, b"r" * 200_000)
    assert rest.status_code == 200 and rest.json()["done"] is True
    full = guest.get(f"/s/{token}")
    assert 'id="drop"' not in full.text and "size limit is reached" in full.text
    nested = put_piece(guest, token, "sub/x.bin", form, "up-00007", 0, 0, b"")
    assert nested.status_code in (413, 422)
    assert sorted(p.name for p in inbox.iterdir()) == ["offer (2).pdf", "offer.pdf", "rest.bin"]
    listed = alice.get("/links/").text
    assert "500 kB" in listed
    # the creator's link list says what came, and the events say who made and got what
    events = daemon.api.get("/events", params={"kind": "link."}).json()
    kinds = [e["kind"] for e in events]
    assert "link.created" in kinds and kinds.count("link.received") == 2
