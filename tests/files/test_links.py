"""LinkService's rules, in this process, on a real daemon's pool and database: what a link
may point at, its token kept as a hash only, expiry, revocation by whom, passwords with the
throttle, a link dying with its creator's grant, confinement to its file or folder (``..``,
``%2e%2e``, absolute paths, a symbolic link inside pointing out, snapshots, Speicher's own
files) and upload links' names and size limit."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from speicher.access.throttle import Policy, Throttle
from speicher.config import Settings
from speicher.db import Database
from speicher.db.models import ShareLink
from speicher.errors import InvalidInput, NotFound
from speicher.events import EventService
from speicher.files import FsError, ShareFS
from speicher.files import links as rules
from speicher.files.links import (
    LinkLocked,
    LinkService,
    PasswordNeeded,
    ResolvedLink,
    TooLarge,
    WrongPassword,
)
from speicher.files.paths import UPLOAD_PREFIX
from speicher.protocols.s3.workers import generations_path
from speicher_testing import Daemon

pytestmark = pytest.mark.system

SECRET = "correct horse battery"


@dataclass
class World:
    daemon: Daemon
    db: Database
    links: LinkService
    clock: list[float]

    @property
    def docs(self) -> Path:
        return self.daemon.mount_root / "tank" / "docs"


def post(daemon: Daemon, path: str, body: dict[str, object], status: int = 201) -> None:
    r = daemon.api.post(path, json=body)
    assert r.status_code == status, r.text


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> Iterator[World]:
    """Share ``docs`` (alice rw, rita ro, bob rw) with a folder ``reports`` holding a file and
    a sub-folder, and a LinkService on the daemon's database with a throttle on a clock of
    our own (3 wrong passwords lock for 60 s)."""
    post(daemon, "/disks/virtual", {"name": "l1", "size": "1G"})
    r = daemon.api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["l1"]})
    assert daemon.wait_job(r.json())["state"] == "succeeded"
    for user in ("alice", "rita", "bob"):
        post(daemon, "/users", {"name": user, "password": f"{user}-secret-pass-1"})
    post(daemon, "/shares", {"name": "docs", "pool": "tank"})
    post(daemon, "/shares", {"name": "private", "pool": "tank"})
    for user, access in (("alice", "rw"), ("rita", "ro"), ("bob", "rw")):
        post(daemon, "/shares/docs/grants", {"user": user, "access": access}, 200)
    docs = daemon.mount_root / "tank" / "docs"
    (docs / "reports" / "q1").mkdir(parents=True)
    (docs / "reports" / "summary.txt").write_text("summary")
    (docs / "reports" / "q1" / "numbers.csv").write_text("1,2,3")
    (docs / "top.txt").write_text("top")
    (daemon.base / "outside.txt").write_text("outside")
    (docs / "reports" / "escape").symlink_to(daemon.base)
    (docs / "reports" / "passwd").symlink_to("/etc/passwd")
    settings = Settings(
        state_dir=daemon.state_dir, mount_root=daemon.mount_root, account_prefix=daemon.prefix
    )
    db = Database(settings.db_url)
    db.share_generations(generations_path(settings))  # sees the daemon's changes of grants
    clock = [1000.0]
    throttle = Throttle(Policy(limit=3, base_lockout=60), clock=lambda: clock[0])
    try:
        yield World(
            daemon, db, LinkService(db, ShareFS(settings, db), EventService(db), throttle), clock
        )
    finally:
        db.close()


def problems(call: object, *args: object, **kwargs: object) -> dict[str, str]:
    with pytest.raises(InvalidInput) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return {p.field: p.reason for p in info.value.problems}


def fs_code(call: object, *args: object) -> int:
    with pytest.raises(FsError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.code


def test_what_a_link_may_point_at_every_problem_at_once(world: World) -> None:
    links = world.links
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    found = problems(links.create, "alice", "docs", "reports", "share", "short", past, 10)
    assert found == {
        "kind": rules.NO_KIND,
        "password": "must be at least 8 characters",
        "expires_at": rules.IN_PAST,
        "max_bytes": rules.LIMIT_FOR_UPLOADS,
    }
    found = problems(links.create, "alice", "docs", "top.txt", "download", max_bytes=5)
    assert found == {"max_bytes": rules.LIMIT_FOR_UPLOADS}
    assert problems(links.create, "alice", "docs", "reports", "upload", max_bytes=0) == {
        "max_bytes": rules.LIMIT_RANGE
    }
    assert problems(links.create, "alice", "docs", "nothing-here", "download") == {
        "path": rules.NO_PATH
    }
    assert problems(links.create, "alice", "docs", "top.txt", "upload") == {
        "path": rules.NEEDS_FOLDER
    }
    assert problems(links.create, "rita", "docs", "reports", "upload") == {
        "kind": rules.NEEDS_WRITE
    }
    for share in ("private", "no-such-share"):
        assert problems(links.create, "alice", share, "", "download") == {"share": rules.NO_SHARE}
    assert problems(links.create, "alice", "docs", "../..", "download")["path"]
    assert problems(links.create, "alice", "docs", ".snapshots", "download") == {
        "path": rules.NO_SNAPSHOTS
    }
    assert problems(links.create, "alice", "docs", "reports/escape", "download") == {
        "path": rules.NO_PATH  # a symbolic link is not there for a link either
    }
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 101)
    assert problems(links.create, "alice", "docs", "reports", "download", None, far) == {
        "expires_at": rules.TOO_LATE
    }
    # what validate finds is what create would
    assert problems(links.validate, "alice", "docs", "top.txt", "upload") == {
        "path": rules.NEEDS_FOLDER
    }
    links.validate("alice", "docs", "reports", "upload", SECRET, max_bytes=10)
    assert links.list("alice", admin=False) == []  # nothing was made


def test_the_token_is_shown_once_and_kept_as_a_hash(world: World) -> None:
    info, token = world.links.create("alice", "docs", "/reports/", "download", SECRET)
    assert info.path == "reports" and info.name == "reports" and info.has_password
    assert len(token) >= 32
    with world.db.session() as s:
        row = s.scalars(select(ShareLink).where(ShareLink.id == info.id)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
    with world.db.engine.connect() as c:
        dump = "\n".join(str(tuple(r)) for r in c.execute(text("SELECT * FROM share_links")))
    assert token not in dump and SECRET not in dump
    with world.links.resolve(token, SECRET) as link:
        assert link.info.id == info.id and link.is_dir


def test_unknown_expired_and_revoked_are_the_same_answer(world: World) -> None:
    links = world.links
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    expiring, expiring_token = links.create("alice", "docs", "top.txt", "download", None, soon)
    revoked, revoked_token = links.create("alice", "docs", "top.txt", "download")
    with links.resolve(expiring_token) as link:
        assert not link.is_dir
    with world.db.session() as s:
        s.execute(
            update(ShareLink)
            .where(ShareLink.id == expiring.id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    links.revoke(revoked.id, "alice", admin=False)
    answers = []
    for token in (expiring_token, revoked_token, "x" * 32, "", expiring_token[:-1]):
        with pytest.raises(NotFound) as info:
            links.resolve(token, SECRET)
        answers.append(info.value.message)
    assert set(answers) == {rules.GONE}
    states = {i.id: (i.expired, i.revoked_at is not None) for i in links.list("alice", False)}
    assert states[expiring.id] == (True, False) and states[revoked.id] == (False, True)
    # the end of a day: a link valid until 2 December expires at its midnight
    assert rules.end_of(dt.date(2026, 12, 2)) == dt.datetime(2026, 12, 3, tzinfo=dt.UTC)


def test_links_are_listed_and_revoked_by_their_creator_or_an_admin(world: World) -> None:
    links = world.links
    mine, token = links.create("alice", "docs", "reports/summary.txt", "download")
    bobs, _ = links.create("bob", "docs", "top.txt", "download")
    assert mine.id in [i.id for i in links.list("alice", admin=False)]
    assert bobs.id not in [i.id for i in links.list("alice", admin=False)]
    everyone = {i.id: i.created_by for i in links.list("admin", admin=True)}
    assert everyone[mine.id] == "alice" and everyone[bobs.id] == "bob"
    with pytest.raises(NotFound):
        links.revoke(mine.id, "bob", admin=False)  # another user's link: not there for bob
    with pytest.raises(NotFound):
        links.revoke(999_999, "alice", admin=False)
    with links.resolve(token):
        pass  # still open
    assert links.revoke(bobs.id, "admin", admin=True).revoked_at is not None
    again = links.revoke(mine.id, "alice", admin=False)
    assert links.revoke(mine.id, "alice", admin=False).revoked_at == again.revoked_at
    with pytest.raises(NotFound):
        links.resolve(token)


def test_a_password_a_proof_and_the_throttle(world: World) -> None:
    links = world.links
    info, token = links.create("alice", "docs", "reports", "download", SECRET)
    with pytest.raises(PasswordNeeded):
        links.resolve(token)
    with pytest.raises(WrongPassword):
        links.resolve(token, "wrong password")
    with links.resolve(token, SECRET, "192.0.2.1") as link:
        proof = link.proof
    assert proof
    with links.resolve(token, None, "192.0.2.1", proof) as link:
        assert link.proof is None  # the proof is fresh: nothing new to keep
    until, _, mac = proof.partition(".")
    for forged in (f"{int(until) + 3600}.{mac}", f"{until}.{'0' * 64}", "garbage", ""):
        with pytest.raises(PasswordNeeded):
            links.resolve(token, None, "192.0.2.1", forged)
    other, other_token = links.create("alice", "docs", "top.txt", "download", SECRET)
    with pytest.raises(PasswordNeeded):
        links.resolve(other_token, None, None, proof)  # one link's proof opens no other
    # three wrong passwords lock the link (from anywhere), even for the right one
    for address in ("192.0.2.7", "192.0.2.8", "192.0.2.9"):
        with pytest.raises(WrongPassword):
            links.resolve(token, "guess", address)
    with pytest.raises(LinkLocked) as locked:
        links.resolve(token, SECRET, "198.51.100.1")
    assert locked.value.retry_after == 60
    with links.resolve(other_token, SECRET, "198.51.100.1"):
        pass  # other links are not locked
    with links.resolve(token, None, "198.51.100.1", proof):
        pass  # a browser that had the password keeps its proof
    world.clock[0] += 61
    with links.resolve(token, SECRET, "198.51.100.1"):
        pass
    events = world.daemon.api.get("/events", params={"kind": "link."}).json()
    assert any(e["kind"] == "link.lockout" and f"link {info.id}" in e["message"] for e in events), (
        events
    )
    assert other.id != info.id


def test_a_link_acts_as_its_creator_and_dies_with_the_grant(world: World) -> None:
    links = world.links
    download, token = links.create("bob", "docs", "reports", "download")
    upload, upload_token = links.create("bob", "docs", "reports", "upload")
    with links.resolve(token) as link:
        assert link.view.principal.name == "bob" and not link.view.writable
        assert fs_code(link.view.mkdir, "reports/new") == errno.EACCES
    r = world.daemon.api.delete("/shares/docs/grants/user/bob")
    assert r.status_code in (200, 204), r.text
    try:
        for dead in (token, upload_token):
            with pytest.raises(NotFound):
                links.resolve(dead)
        post(world.daemon, "/shares/docs/grants", {"user": "bob", "access": "ro"}, 200)
        with links.resolve(token):
            pass  # reading is enough for a download link
        with pytest.raises(NotFound):
            links.resolve(upload_token)  # an upload link needs the creator's write access
    finally:
        post(world.daemon, "/shares/docs/grants", {"user": "bob", "access": "rw"}, 200)
    with links.resolve(upload_token):
        pass
    assert download.kind == "download" and upload.kind == "upload"


def contents(link: ResolvedLink, rel: str) -> bytes:
    with link.view.open_read(link.target(rel)) as f:
        return f.read(0, 100)


def test_a_folder_link_never_reaches_outside_its_folder(world: World) -> None:
    _info, token = world.links.create("alice", "docs", "reports", "download")
    with world.links.resolve(token) as link:
        assert contents(link, "summary.txt") == b"summary"
        assert contents(link, "q1/numbers.csv") == b"1,2,3"
        assert contents(link, "/q1//numbers.csv") == b"1,2,3"  # absolute: below the link
        assert contents(link, "./q1/./numbers.csv") == b"1,2,3"
        names = [e.name for e in link.view.list(link.target(""))]
        assert names == ["q1", "summary.txt"]  # no symbolic links
        for rel in ("..", "../top.txt", "q1/../..", "q1/../summary.txt", "..\\top.txt"):
            assert fs_code(link.target, rel) == errno.EACCES, rel
        for rel in ("%2e%2e/top.txt", "/etc/passwd", "escape/outside.txt", "passwd", "nope"):
            assert fs_code(link.view.stat, link.target(rel)) == errno.ENOENT, rel
        assert fs_code(link.target, "a\x00b") == errno.EINVAL
        assert fs_code(link.upload, "new.txt", 1) == errno.EACCES  # a download link


def test_a_file_link_is_that_file_only(world: World) -> None:
    _info, token = world.links.create("alice", "docs", "reports/summary.txt", "download")
    with world.links.resolve(token) as link:
        assert not link.is_dir and link.target("") == "reports/summary.txt"
        assert contents(link, "summary.txt") == b"summary"
        for rel in ("q1", "other.txt", "summary.txt/x", "../top.txt"):
            assert fs_code(link.target, rel) in (errno.ENOENT, errno.EACCES), rel


def test_a_link_to_the_share_shows_no_snapshots_and_nothing_of_speicher(world: World) -> None:
    r = world.daemon.api.post("/shares/docs/snapshots", json={})
    assert r.status_code in (200, 201, 202), r.text
    _info, token = world.links.create("alice", "docs", "", "download")
    with world.links.resolve(token) as link:
        assert link.info.name == "docs"
        assert contents(link, "top.txt") == b"top"
        names = [e.name for e in link.view.list(link.target(""))]
        assert ".snapshots" not in names and ".speicher" not in names and "reports" in names
        assert fs_code(link.target, ".snapshots") == errno.ENOENT
        assert fs_code(link.target, ".snapshots/anything/top.txt") == errno.ENOENT
        assert fs_code(link.target, ".speicher") == errno.ENOENT


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(UPLOAD_PREFIX)]


def test_an_upload_link_takes_files_up_to_its_limit(world: World) -> None:
    inbox = world.docs / "inbox"
    inbox.mkdir()
    (inbox / "report.pdf").write_text("already here")
    info, token = world.links.create("alice", "docs", "inbox", "upload", max_bytes=100)
    with world.links.resolve(token) as link:
        assert fs_code(link.target, "") == errno.EACCES  # shows nothing
        first = link.upload("report.pdf", 60)
        with pytest.raises(TooLarge):
            link.upload("more.bin", 41)  # 60 are held by the upload in progress
        first.write(b"x" * 60)
        entry = first.commit()
        assert entry.name == "report (2).pdf"  # the file that was there stays
        assert (inbox / "report.pdf").read_text() == "already here"
        assert (inbox / "report (2).pdf").read_bytes() == b"x" * 60
        with pytest.raises(TooLarge):
            link.upload("more.bin", 41)  # 60 of 100 are in
        assert leftovers(inbox) == [] and not (inbox / "more.bin").exists()
        liar = link.upload("liar.bin", 10)
        with pytest.raises(TooLarge):
            liar.write(b"y" * 11)  # more than it announced
        assert leftovers(inbox) == [] and not (inbox / "liar.bin").exists()
        dropped = link.upload("dropped.bin", 40)
        dropped.write(b"z" * 5)
        dropped.abort()
        assert leftovers(inbox) == []
        last = link.upload("last.bin", 40)  # what the failed ones held is free again
        last.write(b"w" * 40)
        last.commit()
        with pytest.raises(TooLarge):
            link.upload("empty-but-over.bin", 1)
        for name in ("sub/file.txt", "../file.txt", "..", ".speicher-upload-x", ""):
            with pytest.raises(FsError):
                link.upload(name, 1)
    assert world.links.get(info.id, "alice", admin=False).bytes_received == 100
    assert sorted(p.name for p in inbox.iterdir()) == ["last.bin", "report (2).pdf", "report.pdf"]


def test_links_go_with_their_creator(world: World) -> None:
    post(world.daemon, "/users", {"name": "carol", "password": "carol-secret-pass-1"})
    post(world.daemon, "/shares/docs/grants", {"user": "carol", "access": "ro"}, 200)
    info, token = world.links.create("carol", "docs", "top.txt", "download")
    with world.links.resolve(token):
        pass
    r = world.daemon.api.patch("/users/carol", json={"enabled": False})
    assert r.status_code == 200, r.text
    with pytest.raises(NotFound):
        world.links.resolve(token)  # a disabled creator: the link is not there
    r = world.daemon.api.delete("/users/carol")
    assert r.status_code in (200, 202, 204), r.text
    if r.status_code == 202:
        assert world.daemon.wait_job(r.json())["state"] == "succeeded"
    assert info.id not in [i.id for i in world.links.list("admin", admin=True)]
    with pytest.raises(NotFound):
        world.links.resolve(token)
