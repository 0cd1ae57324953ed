"""LinkService's rules that need no pool (a database file only): paths below a link, the last
day, what a link says of itself, every problem of a new link at once, and the password with
its proof and throttle. The rules on real files are in tests/files/test_links.py."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from speicher.access.passwords import hash_password
from speicher.access.throttle import Policy, Throttle
from speicher.config import Settings
from speicher.db import Database, Pool, Share, User
from speicher.db.models import ShareLink
from speicher.errors import InvalidInput, NotFound
from speicher.events import EventService
from speicher.files import FsError, ShareFS
from speicher.files import links as rules
from speicher.files.links import LinkLocked, LinkService, PasswordNeeded, WrongPassword

SECRET = "correct horse battery"
TOKEN = "t" * 32


@pytest.fixture
def links(tmp_path: Path) -> Iterator[LinkService]:
    """A database with share docs and user alice, and a link of hers with a password (token
    ``TOKEN``); alice has no file access (and there is no pool), so ShareFS opens nothing."""
    db = Database(f"sqlite:///{tmp_path / 'speicher.db'}")
    db.migrate()
    with db.session() as s:
        pool = Pool(name="tank", profile="single", state="ready")
        alice = User(name="alice", file_access=False, password_hash="x", state="ready")
        share = Share(name="docs", pool=pool, state="ready")
        s.add_all([pool, alice, share])
        s.flush()
        s.add(
            ShareLink(
                token_hash=hashlib.sha256(TOKEN.encode()).hexdigest(),
                share=share,
                path="reports",
                kind="download",
                password_hash=hash_password(SECRET),
                creator=alice,
            )
        )
    settings = Settings(state_dir=tmp_path, mount_root=tmp_path / "mnt")
    throttle = Throttle(Policy(limit=2, base_lockout=30), clock=lambda: 5.0)
    try:
        yield LinkService(db, ShareFS(settings, db), EventService(db), throttle)
    finally:
        db.close()


def test_paths_below_a_link() -> None:
    assert rules.below("") == ()
    assert rules.below("/a//b/./c/") == ("a", "b", "c")
    for path in ("..", "a/..", "a/../b", "../..", "a\\..\\b", "./.."):
        with pytest.raises(FsError) as info:
            rules.below(path)
        assert info.value.code == errno.EACCES, path
    assert rules.below("%2e%2e") == ("%2e%2e",)  # a name: the web layer decodes URLs first
    with pytest.raises(FsError):
        rules.below("a\x00b")
    with pytest.raises(FsError):
        rules.below(".speicher/x")


def test_the_last_day_and_what_a_link_says_of_itself() -> None:
    assert rules.end_of(dt.date(2026, 12, 31)) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    now = dt.datetime.now(dt.UTC)
    info = rules.LinkInfo(
        id=1, share="docs", path="in/box", kind="upload", has_password=False, expires_at=None,
        max_bytes=100, bytes_received=130, created_by="alice", created_at=now, revoked_at=None,
        expired=False,
    )  # fmt: skip
    assert info.name == "box" and info.active and info.remaining == 0
    top = rules.LinkInfo(
        id=2, share="docs", path="", kind="download", has_password=False, expires_at=now,
        max_bytes=None, bytes_received=0, created_by="alice", created_at=now, revoked_at=now,
        expired=True,
    )  # fmt: skip
    assert top.name == "docs" and not top.active and top.remaining is None


def test_every_problem_of_a_new_link_at_once(links: LinkService) -> None:
    with pytest.raises(InvalidInput) as info:
        links.create(
            "alice", "docs", "a/../../b", "mirror", "password",
            dt.datetime(2020, 1, 1), 2**60,
        )  # fmt: skip
    found = {p.field: p.reason for p in info.value.problems}
    assert set(found) == {"kind", "password", "expires_at", "max_bytes", "path"}
    assert found["kind"] == rules.NO_KIND and found["expires_at"] == rules.IN_PAST
    assert "common" in found["password"]
    with pytest.raises(InvalidInput) as info:
        links.validate("alice", "docs", "reports", "upload", max_bytes=0)
    found = {p.field: p.reason for p in info.value.problems}
    # no pool: the share cannot be opened, which is said as for a share one may not open
    assert found == {"max_bytes": rules.LIMIT_RANGE, "share": rules.NO_SHARE}


def test_a_password_its_proof_and_the_throttle(links: LinkService) -> None:
    with pytest.raises(NotFound):
        links.resolve("no-such-token", SECRET)
    with pytest.raises(PasswordNeeded):
        links.resolve(TOKEN)
    with pytest.raises(WrongPassword):
        links.resolve(TOKEN, "wrong", "192.0.2.1")
    with pytest.raises(WrongPassword):
        links.resolve(TOKEN, "x" * 2000, "192.0.2.2")  # too long to be it: not even checked
    # two wrong: locked, also for the right password and from elsewhere
    with pytest.raises(LinkLocked) as locked:
        links.resolve(TOKEN, SECRET, "198.51.100.1")
    assert locked.value.retry_after == 30 and locked.value.status == 429
    links.throttle.succeeded("link:1")
    # the right password: the link opens as alice, who has no access here, so it is not there
    with pytest.raises(NotFound) as gone:
        links.resolve(TOKEN, SECRET, "198.51.100.1")
    assert gone.value.message == rules.GONE
    proof = links._proof(1, TOKEN)
    assert links._proof_left(1, TOKEN, proof) is not None
    assert links._proof_left(2, TOKEN, proof) is None  # another link's
    assert links._proof_left(1, "u" * 32, proof) is None  # another token's
    until, _, mac = proof.partition(".")
    assert links._proof_left(1, TOKEN, f"{int(until) + 1}.{mac}") is None
    assert links._proof_left(1, TOKEN, f"1.{links._mac(1, TOKEN, 1)}") is None  # expired
    for junk in ("", ".", "x.y", "9" * 40 + ".x", None):
        assert links._proof_left(1, TOKEN, junk) is None
