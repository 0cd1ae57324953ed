"""RFC 4918 over real HTTP: PROPFIND, PROPPATCH, MKCOL, GET/HEAD, PUT, DELETE, COPY, MOVE, LOCK
and UNLOCK against a running daemon, checked on the wire and on the server's disk. One daemon
and share for the module; the last test restarts the daemon."""

from __future__ import annotations

import email.utils
import os
import pwd
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dav_helpers import DAV, dav, make_pool, make_share, make_user, multistatus, propfind

from speicher_testing import Daemon

pytestmark = pytest.mark.system

LIVE = [
    "creationdate",
    "displayname",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "resourcetype",
    "supportedlock",
    "lockdiscovery",
]
LOCKINFO = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "<D:owner><D:href>mailto:tester</D:href></D:owner></D:lockinfo>"
)


def proppatch(set_props: str = "", remove_props: str = "") -> bytes:
    body = '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:speicher:test">'
    if set_props:
        body += f"<D:set><D:prop>{set_props}</D:prop></D:set>"
    if remove_props:
        body += f"<D:remove><D:prop>{remove_props}</D:prop></D:remove>"
    return (body + "</D:propertyupdate>").encode()


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    for user in ("alice", "dave"):
        make_user(daemon, user)
    docs = make_share(daemon, "docs", {"alice": "rw", "dave": "rw"})
    other = make_share(daemon, "other", {"alice": "rw"})
    return {"docs": docs, "other": other}


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> Iterator[httpx.Client]:
    with dav(daemon, "alice") as client:
        yield client


def test_propfind_depth_0_and_1_infinity_refused(alice: httpx.Client) -> None:
    assert alice.put("/docs/pf/a.txt").status_code == 409  # no folder yet
    assert alice.request("MKCOL", "/docs/pf").status_code == 201
    assert alice.put("/docs/pf/a.txt", content=b"aaa").status_code == 201
    assert alice.request("MKCOL", "/docs/pf/sub").status_code == 201
    assert alice.put("/docs/pf/sub/deep.txt", content=b"d").status_code == 201

    zero = multistatus(propfind(alice, "/docs/pf/", "0"))
    assert list(zero) == ["/dav/docs/pf/"]
    one = multistatus(propfind(alice, "/docs/pf/", "1"))
    assert set(one) == {"/dav/docs/pf/", "/dav/docs/pf/a.txt", "/dav/docs/pf/sub/"}

    for headers in ({"Depth": "infinity"}, {}):
        r = alice.request("PROPFIND", "/docs/pf/", headers=headers)
        assert r.status_code == 403, r.text
        assert "propfind-finite-depth" in r.text
        assert r.headers["content-type"].startswith("application/xml")
    r = alice.request("PROPFIND", "/docs/pf/", headers={"Depth": "2"})
    assert r.status_code == 400


def test_every_live_property(alice: httpx.Client, world: dict[str, Any]) -> None:
    assert alice.request("MKCOL", "/docs/live").status_code == 201
    put = alice.put("/docs/live/page.html", content=b"<p>hello</p>")
    assert put.status_code == 201
    found = multistatus(propfind(alice, "/docs/live/", "1"))
    folder, page = found["/dav/docs/live/"], found["/dav/docs/live/page.html"]
    for name in LIVE:
        assert f"{DAV}{name}" in page, name
    for name in set(LIVE) - {"getcontentlength", "getcontenttype"}:
        assert f"{DAV}{name}" in folder, name

    assert page[f"{DAV}getcontentlength"].text == "12"
    assert page[f"{DAV}getcontenttype"].text.startswith("text/html")
    assert page[f"{DAV}displayname"].text == "page.html"
    assert folder[f"{DAV}displayname"].text == "live"
    assert page[f"{DAV}resourcetype"].find(f"{DAV}collection") is None
    assert folder[f"{DAV}resourcetype"].find(f"{DAV}collection") is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page[f"{DAV}creationdate"].text)
    stored = world["docs"] / "live" / "page.html"
    modified = email.utils.parsedate_to_datetime(page[f"{DAV}getlastmodified"].text)
    assert abs(modified.timestamp() - stored.stat().st_mtime) < 1
    etag = page[f"{DAV}getetag"].text
    assert put.headers["etag"] == f'"{etag}"' == alice.get("/docs/live/page.html").headers["etag"]
    scopes = {
        child.tag
        for entry in page[f"{DAV}supportedlock"]
        for child in entry.find(f"{DAV}lockscope")
    }
    assert scopes == {f"{DAV}exclusive", f"{DAV}shared"}
    assert len(page[f"{DAV}lockdiscovery"]) == 0

    named = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
    named += b'<Z:nothing xmlns:Z="urn:x"/></D:prop></D:propfind>'
    only = multistatus(propfind(alice, "/docs/live/page.html", "0", named))
    props = only["/dav/docs/live/page.html"]
    assert props[f"{DAV}getetag"].text == etag
    assert "404" in props["{urn:x}nothing"]
    names = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'
    listed = multistatus(propfind(alice, "/docs/live/page.html", "0", names))
    assert {f"{DAV}{n}" for n in LIVE} <= set(listed["/dav/docs/live/page.html"])


def test_proppatch_keeps_dead_properties(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    assert alice.put("/docs/props.txt", content=b"p").status_code == 201
    body = proppatch('<Z:colour>blue</Z:colour><Z:tags><Z:t n="1">a</Z:t></Z:tags>')
    r = alice.request("PROPPATCH", "/docs/props.txt", content=body)
    result = multistatus(r)["/dav/docs/props.txt"]
    assert result["{urn:speicher:test}colour"].text is None  # set: empty element, 200
    named = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:speicher:test">'
    named += b"<D:prop><Z:colour/><Z:tags/></D:prop></D:propfind>"

    def read(path: str) -> dict[str, Any]:
        return multistatus(propfind(alice, path, "0", named))[f"/dav{path}"]

    props = read("/docs/props.txt")
    assert props["{urn:speicher:test}colour"].text == "blue"
    assert props["{urn:speicher:test}tags"][0].get("n") == "1"
    # kept in the file's own extended attributes
    attrs = os.listxattr(world["docs"] / "props.txt")
    assert any(a.startswith("user.speicher.meta.dav.") for a in attrs), attrs

    # a PUT over the file keeps them, MOVE and COPY take them along
    assert alice.put("/docs/props.txt", content=b"new").status_code == 204
    assert read("/docs/props.txt")["{urn:speicher:test}colour"].text == "blue"
    move = {"Destination": f"{daemon.url}/dav/docs/moved-props.txt"}
    assert alice.request("MOVE", "/docs/props.txt", headers=move).status_code == 201
    assert read("/docs/moved-props.txt")["{urn:speicher:test}colour"].text == "blue"
    copy = {"Destination": f"{daemon.url}/dav/docs/copied-props.txt"}
    assert alice.request("COPY", "/docs/moved-props.txt", headers=copy).status_code == 201
    assert read("/docs/copied-props.txt")["{urn:speicher:test}colour"].text == "blue"

    # remove one; protected live properties cannot be set (and fail the whole update)
    r = alice.request("PROPPATCH", "/docs/copied-props.txt", content=proppatch("", "<Z:colour/>"))
    assert r.status_code == 207
    assert "404" in read("/docs/copied-props.txt")["{urn:speicher:test}colour"]
    r = alice.request(
        "PROPPATCH",
        "/docs/copied-props.txt",
        content=proppatch("<D:getetag>x</D:getetag><Z:other>1</Z:other>"),
    )
    statuses = multistatus(r)["/dav/docs/copied-props.txt"]
    assert "403" in statuses[f"{DAV}getetag"] and "424" in statuses["{urn:speicher:test}other"]
    assert alice.request("PROPPATCH", "/docs/copied-props.txt", content=b"<bad").status_code == 400


def test_mkcol(alice: httpx.Client, world: dict[str, Any]) -> None:
    assert alice.request("MKCOL", "/docs/mk/child").status_code == 409
    assert alice.request("MKCOL", "/docs/mk").status_code == 201
    assert (world["docs"] / "mk").is_dir()
    assert alice.request("MKCOL", "/docs/mk").status_code == 405
    assert alice.put("/docs/mk/file", content=b"x").status_code == 201
    assert alice.request("MKCOL", "/docs/mk/file").status_code == 405
    assert alice.request("MKCOL", "/docs/mk/file/below").status_code == 409
    r = alice.request("MKCOL", "/docs/mk/body", content=b"<x/>")
    assert r.status_code == 415
    assert not (world["docs"] / "mk" / "body").exists()
    assert alice.request("MKCOL", "/newshare").status_code == 403


def test_get_head_ranges_and_conditions(alice: httpx.Client) -> None:
    data = bytes(range(256)) * 16
    put = alice.put("/docs/range.bin", content=data)
    etag = put.headers["etag"]
    full = alice.get("/docs/range.bin")
    assert full.status_code == 200 and full.content == data
    assert full.headers["accept-ranges"] == "bytes"
    # small files come by a path of their own (no wsgidav): the same answer as wsgidav's
    slow = alice.get("/docs/range.bin", headers={"Depth": "0"})
    for name in ("etag", "last-modified", "content-type", "content-length", "accept-ranges"):
        assert full.headers[name] == slow.headers[name], name
    assert slow.content == full.content
    head = alice.head("/docs/range.bin")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data)) and head.headers["etag"] == etag

    part = alice.get("/docs/range.bin", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = alice.get("/docs/range.bin", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    assert alice.get("/docs/range.bin", headers={"Range": "bytes=99999-"}).status_code == 416

    assert alice.get("/docs/range.bin", headers={"If-None-Match": etag}).status_code == 304
    assert alice.get("/docs/range.bin", headers={"If-None-Match": '"other"'}).status_code == 200
    assert alice.get("/docs/range.bin", headers={"If-Match": '"other"'}).status_code == 412
    assert alice.get("/docs/range.bin", headers={"If-Match": etag}).status_code == 200
    since = full.headers["last-modified"]
    assert alice.get("/docs/range.bin", headers={"If-Modified-Since": since}).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert alice.get("/docs/range.bin", headers={"If-Modified-Since": old}).status_code == 200
    # a conditional PUT: only over the version the client knows
    r = alice.put("/docs/range.bin", content=b"lost update", headers={"If-Match": '"stale"'})
    assert r.status_code == 412
    assert alice.get("/docs/range.bin").content == data
    r = alice.put("/docs/range.bin", content=b"v2", headers={"If-Match": etag})
    assert r.status_code == 204 and r.headers["etag"] != etag
    assert (
        alice.put("/docs/range.bin", content=b"v3", headers={"If-None-Match": "*"}).status_code
        == 412
    )
    assert alice.get("/docs/range.bin").content == b"v2"


def test_several_ranges_get_the_whole_file(alice: httpx.Client) -> None:
    body = bytes(range(256)) * 40
    assert alice.put("/docs/ranges.bin", content=body).status_code == 201
    for ranges in ("bytes=0-3,10-13", "bytes=-5, 0-1", "bytes=0-1,2-3,4-5"):
        r = alice.get("/docs/ranges.bin", headers={"Range": ranges})
        assert (r.status_code, r.content) == (200, body), ranges
        assert "content-range" not in r.headers
    r = alice.get("/docs/ranges.bin", headers={"Range": "bytes=10-13"})
    assert (r.status_code, r.content, r.headers["content-range"]) == (
        206,
        body[10:14],
        f"bytes 10-13/{len(body)}",
    )


def test_put_creates_replaces_atomically(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    r = alice.put("/docs/put.txt", content=b"one")
    assert r.status_code == 201 and r.headers["etag"]
    inode = (world["docs"] / "put.txt").stat().st_ino
    r = alice.put("/docs/put.txt", content=b"two, longer")
    assert r.status_code == 204
    stored = world["docs"] / "put.txt"
    assert stored.read_bytes() == b"two, longer"
    assert stored.stat().st_ino != inode  # a new file renamed over the old one
    # written as alice's own account, as Samba would, and no temp file is left
    uid = pwd.getpwnam(daemon.unix_name("alice")).pw_uid
    assert stored.stat().st_uid == uid
    assert alice.request("MKCOL", "/docs/owned").status_code == 201
    assert (world["docs"] / "owned").stat().st_uid == uid
    assert not [n for n in os.listdir(world["docs"]) if n.startswith(".speicher-upload-")]
    assert alice.put("/docs/", content=b"x").status_code == 405
    chunked = alice.put("/docs/chunked.txt", content=iter([b"a" * 1000, b"b" * 1000]))
    assert chunked.status_code == 201
    assert alice.get("/docs/chunked.txt").content == b"a" * 1000 + b"b" * 1000


def _put_both_ways(client: httpx.Client, path: str, body: bytes) -> list[httpx.Response]:
    """The same PUT twice: with a Content-Length (small: the front writes it itself) and
    chunked (wsgidav writes it)."""
    return [
        client.put(path, content=body),
        client.put(path, content=iter([body[:1], body[1:]])),
    ]


def _answer(r: httpx.Response) -> tuple[int, str, str, bool]:
    return (r.status_code, r.headers.get("content-type", ""), r.text, "etag" in r.headers)


def test_small_puts_answer_as_wsgidav_does(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    assert alice.request("MKCOL", "/docs/fast").status_code == 201
    new = [_answer(r) for r in _put_both_ways(alice, "/docs/fast/new-a.txt", b"abc")]
    assert alice.delete("/docs/fast/new-a.txt").status_code == 204
    new += [_answer(alice.put("/docs/fast/new-a.txt", content=iter([b"a", b"bc"])))]
    assert new[0] == new[2] == (201, "text/plain; charset=utf-8", "201 Created\n", True)
    assert new[1][0] == 204  # the second PUT replaced the first one's file
    assert alice.get("/docs/fast/new-a.txt").content == b"abc"
    for path, status in (
        ("/docs/fast/no/such/folder.txt", 409),  # no parent
        ("/docs/fast", 405),  # a folder
        ("/docs/.snapshots/x.txt", 403),  # snapshots are read only
        ("/docs/.speicher/x.txt", 409),  # internal: no such folder
        ("/nosuchshare/x.txt", 409),  # no such folder either
    ):
        fast, chunked = (_answer(r) for r in _put_both_ways(alice, path, b"xyz"))
        assert fast == chunked and fast[0] == status, (path, fast, chunked)
    with dav(daemon, "dave") as dave:  # dave has no grant on "other"
        fast, chunked = (_answer(r) for r in _put_both_ways(dave, "/other/x.txt", b"x"))
        assert fast == chunked and fast[0] == 409
    stored = world["docs"] / "fast" / "new-a.txt"
    assert stored.stat().st_uid == pwd.getpwnam(daemon.unix_name("alice")).pw_uid
    assert not [n for n in os.listdir(stored.parent) if n.startswith(".speicher-upload-")]


def test_standard_sync_writes_the_same(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    r = daemon.api.patch("/shares/other", json={"sync": "standard"})
    assert r.status_code == 200 and r.json()["sync"] == "standard"
    try:
        body = os.urandom(100_003)
        assert alice.put("/other/std.bin", content=body).status_code == 201
        assert alice.put("/other/std.bin", content=body[::-1]).status_code == 204
        assert alice.request("MKCOL", "/other/std").status_code == 201
        r = alice.request(
            "MOVE", "/other/std.bin", headers={"Destination": f"{daemon.url}/dav/other/std/m.bin"}
        )
        assert r.status_code == 201
        assert (world["other"] / "std" / "m.bin").read_bytes() == body[::-1]
        assert alice.get("/other/std/m.bin").content == body[::-1]
        assert not [n for n in os.listdir(world["other"]) if n.startswith(".speicher-upload-")]
    finally:
        r = daemon.api.patch("/shares/other", json={"sync": "always"})
        assert r.status_code == 200


def _abandoned_put(daemon: Daemon, path: str, announced: int, sent: bytes) -> None:
    """A client that announces ``announced`` bytes, sends ``sent`` and goes away."""
    auth = httpx.BasicAuth("alice", "alice-password-1")
    request = httpx.Request("PUT", f"{daemon.url}{path}")
    header = next(auth.auth_flow(request)).headers["authorization"]
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        sock.sendall(
            (
                f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {header}\r\n"
                f"Content-Length: {announced}\r\n\r\n"
            ).encode()
            + sent
        )
        time.sleep(0.5)


def test_client_gone_mid_upload_leaves_old_file(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    assert alice.request("MKCOL", "/docs/up").status_code == 201
    assert alice.put("/docs/up/kept.bin", content=b"the old version").status_code == 201
    _abandoned_put(daemon, "/dav/docs/up/kept.bin", 10_000_000, os.urandom(300_000))
    _abandoned_put(daemon, "/dav/docs/up/new.bin", 10_000_000, os.urandom(300_000))
    folder = world["docs"] / "up"
    deadline = time.monotonic() + 15
    while any(n.startswith(".speicher-upload-") for n in os.listdir(folder)):
        assert time.monotonic() < deadline, os.listdir(folder)
        time.sleep(0.2)
    assert sorted(os.listdir(folder)) == ["kept.bin"]
    assert alice.get("/docs/up/kept.bin").content == b"the old version"


def test_delete_trees_partial_failure_and_share_root(
    alice: httpx.Client, world: dict[str, Any]
) -> None:
    for path in ("/docs/tree", "/docs/tree/a", "/docs/tree/a/b"):
        assert alice.request("MKCOL", path).status_code == 201
    for path in ("/docs/tree/1.txt", "/docs/tree/a/2.txt", "/docs/tree/a/b/3.txt"):
        assert alice.put(path, content=b"x").status_code == 201
    assert alice.delete("/docs/tree").status_code == 204
    assert not (world["docs"] / "tree").exists()
    assert alice.delete("/docs/tree").status_code == 404

    # a file the server does not serve (a hard link, planted by root) stays: 207
    top = world["docs"]
    for path in ("/docs/part", "/docs/part/stuck", "/docs/part/free"):
        assert alice.request("MKCOL", path).status_code == 201
    assert alice.put("/docs/part/free/f.txt", content=b"x").status_code == 201
    internal = top / ".speicher"
    internal.mkdir(exist_ok=True)
    (internal / "linked").write_bytes(b"internal")
    os.link(internal / "linked", top / "part" / "stuck" / "hard")
    r = alice.delete("/docs/part")
    assert r.status_code == 207, r.text
    failed = multistatus(r)
    assert set(failed) == {"/dav/docs/part/stuck/"}, failed
    assert "409" in failed["/dav/docs/part/stuck/"]["status"]
    assert not (top / "part" / "free").exists()
    assert (internal / "linked").read_bytes() == b"internal"

    for root in ("/docs/", "/docs"):
        assert alice.delete(root).status_code == 403
    assert alice.delete("/").status_code == 403


def test_copy_and_move(daemon: Daemon, alice: httpx.Client, world: dict[str, Any]) -> None:
    def dest(path: str, overwrite: str | None = None, depth: str | None = None) -> dict[str, str]:
        headers = {"Destination": f"{daemon.url}/dav{path}"}
        if overwrite:
            headers["Overwrite"] = overwrite
        if depth:
            headers["Depth"] = depth
        return headers

    for path in ("/docs/cm", "/docs/cm/src", "/docs/cm/src/sub"):
        assert alice.request("MKCOL", path).status_code == 201
    assert alice.put("/docs/cm/src/a.txt", content=b"A").status_code == 201
    assert alice.put("/docs/cm/src/sub/b.txt", content=b"B").status_code == 201
    assert alice.put("/docs/cm/b.txt", content=b"old").status_code == 201

    assert (
        alice.request("COPY", "/docs/cm/src/a.txt", headers=dest("/docs/cm/a2.txt")).status_code
        == 201
    )
    r = alice.request("COPY", "/docs/cm/src/a.txt", headers=dest("/docs/cm/b.txt", "F"))
    assert r.status_code == 412 and alice.get("/docs/cm/b.txt").content == b"old"
    r = alice.request("COPY", "/docs/cm/src/a.txt", headers=dest("/docs/cm/b.txt", "T"))
    assert r.status_code == 204 and alice.get("/docs/cm/b.txt").content == b"A"

    r = alice.request("COPY", "/docs/cm/src", headers=dest("/docs/cm/shallow", depth="0"))
    assert r.status_code == 201
    assert os.listdir(world["docs"] / "cm" / "shallow") == []
    r = alice.request("COPY", "/docs/cm/src", headers=dest("/docs/cm/deep", depth="infinity"))
    assert r.status_code == 201
    assert alice.get("/docs/cm/deep/sub/b.txt").content == b"B"
    r = alice.request("COPY", "/docs/cm/src", headers=dest("/docs/cm/src/inner"))
    assert r.status_code == 403

    # MOVE of a folder over an existing one needs Overwrite: T and replaces it whole
    r = alice.request("MOVE", "/docs/cm/deep", headers=dest("/docs/cm/shallow", "F"))
    assert r.status_code == 412
    r = alice.request("MOVE", "/docs/cm/deep", headers=dest("/docs/cm/shallow", "T"))
    assert r.status_code == 204
    assert not (world["docs"] / "cm" / "deep").exists()
    assert alice.get("/docs/cm/shallow/sub/b.txt").content == b"B"
    r = alice.request("MOVE", "/docs/cm/shallow", headers=dest("/docs/cm/renamed"))
    assert r.status_code == 201
    r = alice.request("MOVE", "/docs/cm/renamed/a.txt", headers=dest("/docs/cm/b.txt"))
    assert r.status_code == 204 and alice.get("/docs/cm/b.txt").content == b"A"
    r = alice.request("MOVE", "/docs/cm/b.txt", headers=dest("/docs/cm/missing/b.txt"))
    assert r.status_code == 409

    # between shares: refused, nothing happens
    r = alice.request("COPY", "/docs/cm/b.txt", headers=dest("/other/b.txt"))
    assert r.status_code == 502 and not (world["other"] / "b.txt").exists()
    r = alice.request("MOVE", "/docs/cm/b.txt", headers=dest("/other/b.txt"))
    assert r.status_code == 502 and (world["docs"] / "cm" / "b.txt").exists()
    r = alice.request(
        "MOVE", "/docs/cm/b.txt", headers={"Destination": "http://elsewhere/dav/docs/x"}
    )
    assert r.status_code == 502
    assert alice.request("MOVE", "/docs/cm/b.txt").status_code == 400


def _lock(
    client: httpx.Client, path: str, scope: str = "exclusive", **headers: str
) -> httpx.Response:
    return client.request(
        "LOCK", path, content=LOCKINFO.format(scope=scope).encode(), headers=headers
    )


def test_locks(daemon: Daemon, alice: httpx.Client, world: dict[str, Any]) -> None:
    assert alice.put("/docs/locked.txt", content=b"v1").status_code == 201
    r = _lock(alice, "/docs/locked.txt", Timeout="Second-600")
    assert r.status_code == 200, r.text
    token = r.headers["lock-token"].strip("<>")
    assert token.startswith("opaquelocktoken:")
    assert "Second-" in r.text and "mailto:tester" in r.text
    with dav(daemon, "dave") as dave:
        r = dave.put("/docs/locked.txt", content=b"dave's")
        assert r.status_code == 423 and "no-conflicting-lock" in r.text
        assert dave.delete("/docs/locked.txt").status_code == 423
        assert _lock(dave, "/docs/locked.txt").status_code == 423
        assert _lock(dave, "/docs/locked.txt", "shared").status_code == 423
        # a token belongs to who took the lock
        r = dave.put("/docs/locked.txt", content=b"x", headers={"If": f"(<{token}>)"})
        assert r.status_code in (412, 423)  # the token is no state of dave's
        r = dave.request("UNLOCK", "/docs/locked.txt", headers={"Lock-Token": f"<{token}>"})
        assert r.status_code == 403
    assert alice.put("/docs/locked.txt", content=b"v2").status_code == 423  # no token sent
    r = alice.put("/docs/locked.txt", content=b"v2", headers={"If": f"(<{token}>)"})
    assert r.status_code == 204
    r = alice.put("/docs/locked.txt", content=b"v3", headers={"If": "(<opaquelocktoken:nope>)"})
    assert r.status_code == 412
    found = multistatus(propfind(alice, "/docs/locked.txt", "0"))["/dav/docs/locked.txt"]
    discovered = found[f"{DAV}lockdiscovery"]
    assert discovered.find(f".//{DAV}locktoken/{DAV}href").text == token
    r = alice.request("UNLOCK", "/docs/locked.txt", headers={"Lock-Token": "<opaquelocktoken:x>"})
    assert r.status_code == 409
    r = alice.request("UNLOCK", "/docs/locked.txt", headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204
    with dav(daemon, "dave") as dave:
        assert dave.put("/docs/locked.txt", content=b"dave's").status_code == 204

    # shared locks: both hold one, an exclusive one then conflicts
    r1 = _lock(alice, "/docs/locked.txt", "shared")
    with dav(daemon, "dave") as dave:
        r2 = _lock(dave, "/docs/locked.txt", "shared")
        assert (r1.status_code, r2.status_code) == (200, 200)
        assert _lock(dave, "/docs/locked.txt").status_code == 423
    for r, who in ((r1, "alice"), (r2, "dave")):
        with dav(daemon, who) as client:
            headers = {"Lock-Token": r.headers["lock-token"]}
            assert client.request("UNLOCK", "/docs/locked.txt", headers=headers).status_code == 204

    # a lock on an unmapped URL makes an empty file (RFC 4918's locked empty resource)
    r = _lock(alice, "/docs/lock-null.txt")
    assert r.status_code == 201
    assert (world["docs"] / "lock-null.txt").read_bytes() == b""
    null_token = r.headers["lock-token"]
    headers = {"If": f"({null_token})"}
    assert alice.put("/docs/lock-null.txt", content=b"filled", headers=headers).status_code == 204
    assert (
        alice.request(
            "UNLOCK", "/docs/lock-null.txt", headers={"Lock-Token": null_token}
        ).status_code
        == 204
    )

    # a folder lock covers what is below it, and moves nowhere with MOVE
    assert alice.request("MKCOL", "/docs/lockdir").status_code == 201
    r = _lock(alice, "/docs/lockdir", Depth="infinity")
    folder_token = r.headers["lock-token"]
    with dav(daemon, "dave") as dave:
        assert dave.put("/docs/lockdir/inside.txt", content=b"x").status_code == 423
        assert dave.request("MKCOL", "/docs/lockdir/sub").status_code == 423
    headers = {"If": f"({folder_token})"}
    assert alice.put("/docs/lockdir/inside.txt", content=b"x", headers=headers).status_code == 201
    assert alice.delete("/docs/lockdir").status_code == 423
    assert alice.delete("/docs/lockdir", headers=headers).status_code == 204

    # timeouts: a short lock ends by itself; an endless one is made an hour
    r = _lock(alice, "/docs/locked.txt", Timeout="Second-2")
    assert "Second-" in r.text
    with dav(daemon, "dave") as dave:
        assert dave.put("/docs/locked.txt", content=b"x").status_code == 423
        time.sleep(3)
        assert dave.put("/docs/locked.txt", content=b"after").status_code == 204
    r = _lock(alice, "/docs/locked.txt", Timeout="Infinite")
    seconds = int(re.search(r"Second-(\d+)", r.text).group(1))  # type: ignore[union-attr]
    assert 3500 < seconds <= 3600
    r = alice.request(
        "LOCK",
        "/docs/locked.txt",
        headers={"If": f"({r.headers['lock-token']})", "Timeout": "Second-120"},
    )
    assert r.status_code == 200 and re.search(r"Second-1[01]\d", r.text), r.text


def test_options_and_windows_headers(alice: httpx.Client) -> None:
    r = alice.options("/docs/")
    assert r.status_code == 200
    assert r.headers["dav"].replace(" ", "") == "1,2"
    assert r.headers["ms-author-via"] == "DAV"
    for method in ("PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "COPY", "MOVE", "DELETE"):
        assert method in r.headers["allow"]
    root = httpx.options(alice.base_url.copy_with(path="/"))  # Windows asks before mapping
    assert root.status_code == 200 and "2" in root.headers["dav"]
    assert root.headers["ms-author-via"] == "DAV"
    unmapped = alice.options("/docs/not-there-yet")
    assert {"PUT", "MKCOL"} <= set(unmapped.headers["allow"].replace(" ", "").split(","))
    assert alice.put("/docs/win.txt", content=b"windows").status_code == 201
    r = alice.get(
        "/docs/win.txt",
        headers={"Translate": "f", "User-Agent": "Microsoft-WebDAV-MiniRedir/10.0.19045"},
    )
    assert r.status_code == 200 and r.content == b"windows"
    assert r.headers["ms-author-via"] == "DAV"
    # macOS keeps resource forks in ._ files beside the real ones
    assert alice.put("/docs/._win.txt", content=b"\x00\x05\x16\x07").status_code == 201
    listed = multistatus(propfind(alice, "/docs/", "1"))
    assert "/dav/docs/._win.txt" in listed
    assert alice.delete("/docs/._win.txt").status_code == 204


def test_the_share_list(daemon: Daemon, alice: httpx.Client) -> None:
    found = multistatus(propfind(alice, "/", "1"))
    assert set(found) == {"/dav/", "/dav/docs/", "/dav/other/"}
    with dav(daemon, "dave") as dave:
        assert set(multistatus(propfind(dave, "/", "1"))) == {"/dav/", "/dav/docs/"}
        assert dave.get("/other/").status_code == 404
    listing = alice.get("/")
    assert listing.status_code == 200 and "docs/" in listing.text
    assert listing.headers["content-type"].startswith("text/plain")
    assert alice.get("/docs").status_code == 200
    assert alice.request("PROPPATCH", "/", content=proppatch("<Z:a>1</Z:a>")).status_code == 403
    assert _lock(alice, "/").status_code == 403
    assert alice.put("/file-at-top", content=b"x").status_code == 403


def test_properties_survive_a_restart_locks_do_not(daemon: Daemon, world: dict[str, Any]) -> None:
    with dav(daemon, "alice") as alice:
        assert alice.put("/docs/restart.txt", content=b"r").status_code == 201
        r = alice.request(
            "PROPPATCH", "/docs/restart.txt", content=proppatch("<Z:kept>yes</Z:kept>")
        )
        assert r.status_code == 207
        token = _lock(alice, "/docs/restart.txt").headers["lock-token"]
        assert alice.put("/docs/restart.txt", content=b"x").status_code == 423
    daemon.stop()
    daemon.start()
    with dav(daemon, "alice") as alice:
        named = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:speicher:test">'
        named += b"<D:prop><Z:kept/><D:lockdiscovery/></D:prop></D:propfind>"
        props = multistatus(propfind(alice, "/docs/restart.txt", "0", named))[
            "/dav/docs/restart.txt"
        ]
        assert props["{urn:speicher:test}kept"].text == "yes"
        assert len(props[f"{DAV}lockdiscovery"]) == 0
        assert alice.put("/docs/restart.txt", content=b"x").status_code == 204
        r = alice.request("UNLOCK", "/docs/restart.txt", headers={"Lock-Token": token})
        assert r.status_code == 409
    assert Path(world["docs"] / "restart.txt").read_bytes() == b"x"


def test_trees_thousands_of_levels_deep(
    daemon: Daemon, alice: httpx.Client, world: dict[str, Any]
) -> None:
    """Clients can make folders 2,000 levels deep (4 KiB paths): copying and deleting them
    must not need a stack as deep (Python's ends at 1,000)."""
    levels = 1500
    fd = os.open(world["docs"], os.O_RDONLY)
    for name in ["deep"] + ["d"] * levels:  # made by root, one level at a time
        os.mkdir(name, dir_fd=fd)
        below = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = below
    with open(os.open("bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as fh:
        fh.write("found")
    os.close(fd)
    bottom = "/docs/deep/" + "d/" * levels + "bottom.txt"
    assert alice.get(bottom).text == "found"
    headers = {"Destination": f"{daemon.url}/dav/docs/deep-copy"}
    r = alice.request("COPY", "/docs/deep", headers=headers)
    assert r.status_code == 201, r.text
    assert alice.get(bottom.replace("/docs/deep/", "/docs/deep-copy/")).text == "found"
    for top in ("/docs/deep", "/docs/deep-copy"):
        r = alice.delete(top)
        assert r.status_code == 204, r.text
    assert not (world["docs"] / "deep").exists() and not (world["docs"] / "deep-copy").exists()
