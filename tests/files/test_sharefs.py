"""ShareFS itself, in this process, on a real daemon's pool and database: who may open what,
paths that try to leave, links, ownership and ACLs of new files, atomic uploads, quota,
snapshots, leftovers and events. The adapters (WebDAV, SFTP) are tested through their real
clients in tests/protocols; this is the layer they share."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from speicher.config import Settings
from speicher.db import Database
from speicher.files import FileEvent, FsError, ShareFS
from speicher.files.paths import UPLOAD_PREFIX
from speicher.system import acl, attrs
from speicher_testing import Daemon

pytestmark = pytest.mark.system


def post(daemon: Daemon, path: str, body: dict[str, object], status: int = 201) -> None:
    r = daemon.api.post(path, json=body)
    assert r.status_code == status, r.text


@pytest.fixture(scope="module")
def fs(daemon: Daemon) -> Iterator[ShareFS]:
    """Share ``team`` (alice and bob rw, carol ro, dave rw but disabled, erin nothing) and
    share ``small`` (alice rw, 3 MiB quota), and a ShareFS on the daemon's database."""
    post(daemon, "/disks/virtual", {"name": "f1", "size": "1G"})
    r = daemon.api.post("/pools", json={"name": "tank", "profile": "single", "disks": ["f1"]})
    assert daemon.wait_job(r.json())["state"] == "succeeded"
    for user in ("alice", "bob", "carol", "dave", "erin"):
        post(daemon, "/users", {"name": user, "password": f"{user}-secret-pass-1"})
    post(daemon, "/groups", {"name": "editors"})
    r = daemon.api.put("/groups/editors/members/bob")
    assert r.status_code in (200, 204), r.text
    post(daemon, "/shares", {"name": "team", "pool": "tank", "sftp": True})
    post(daemon, "/shares", {"name": "small", "pool": "tank", "quota": "3M"})
    post(daemon, "/shares/team/grants", {"user": "alice", "access": "rw"}, 200)
    post(daemon, "/shares/team/grants", {"group": "editors", "access": "rw"}, 200)
    post(daemon, "/shares/team/grants", {"user": "carol", "access": "ro"}, 200)
    post(daemon, "/shares/team/grants", {"user": "dave", "access": "rw"}, 200)
    post(daemon, "/shares/small/grants", {"user": "alice", "access": "rw"}, 200)
    r = daemon.api.patch("/users/dave", json={"enabled": False})
    assert r.status_code == 200, r.text
    settings = Settings(
        state_dir=daemon.state_dir, mount_root=daemon.mount_root, account_prefix=daemon.prefix
    )
    db = Database(settings.db_url)
    try:
        yield ShareFS(settings, db)
    finally:
        db.close()


def team(daemon: Daemon) -> Path:
    return daemon.mount_root / "tank" / "team"


def access_acl(path: Path) -> acl.Acl:
    return acl.decode(os.getxattr(path, acl.ACCESS, follow_symlinks=False))


def refused(code: int, call: object, *args: object) -> FsError:
    with pytest.raises(FsError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.code == code, (info.value.code, info.value.message)
    return info.value


def test_access_follows_the_grants_as_samba_does(fs: ShareFS) -> None:
    assert fs.access("alice", "team")[1] == "rw"
    assert fs.access("bob", "team")[1] == "rw"  # through the group
    assert fs.access("carol", "team")[1] == "ro"
    assert fs.access("dave", "team")[0] is None  # disabled: nothing at all
    assert fs.access("erin", "team")[1] is None
    assert fs.access("admin", "team")[0] is None  # no file access
    assert fs.shares("alice") == [("small", "rw"), ("team", "rw")]
    assert fs.shares("erin") == []
    for user in ("dave", "erin", "admin", "nobody-at-all"):
        refused(errno.ENOENT, fs.open, user, "team", "test")
    refused(errno.ENOENT, fs.open, "alice", "no-such-share", "test")


def test_new_files_belong_to_the_writer_with_the_shares_acl(daemon: Daemon, fs: ShareFS) -> None:
    with fs.open("alice", "team", "test", "127.0.0.1") as view:
        view.mkdir("reports")
        entry = view.write("reports/q1.txt", [b"x" * 1000, b"y" * 3])
        assert entry.size == 1003
    path = team(daemon) / "reports" / "q1.txt"
    alice = pwd.getpwnam(f"{daemon.prefix}alice")
    st = path.stat()
    assert (st.st_uid, st.st_gid) == (alice.pw_uid, alice.pw_gid)
    assert (path.parent.stat().st_uid, path.parent.stat().st_gid) == (alice.pw_uid, alice.pw_gid)
    made = access_acl(path)
    assert acl.named(made), "the share's default ACL was not inherited"
    # Samba's create mask 0764 / directory mask 0775: grantees may edit each other's work
    assert made[(acl.MASK, acl.UNDEFINED_ID)] == 6
    assert access_acl(path.parent)[(acl.MASK, acl.UNDEFINED_ID)] == 7
    # bob (rw through the group) replaces it: content new, owner and ACL kept as over SMB
    with fs.open("bob", "team", "test") as view:
        view.write("reports/q1.txt", [b"bob was here"])
        with view.open_read("reports/q1.txt") as f:
            assert f.read(0, 100) == b"bob was here"
    st2 = path.stat()
    assert (st2.st_uid, st2.st_gid) == (alice.pw_uid, alice.pw_gid)
    assert access_acl(path) == made


def test_paths_that_try_to_leave_are_refused(daemon: Daemon, fs: ShareFS) -> None:
    secret = daemon.base / "outside.txt"
    secret.write_text("outside")
    (team(daemon) / "to-etc").symlink_to("/etc")
    (team(daemon) / "passwd-link").symlink_to("/etc/passwd")
    (team(daemon) / "to-small").symlink_to(daemon.mount_root / "tank" / "small")
    # a share is a btrfs subvolume: a hard link to a file outside it cannot even be made
    with pytest.raises(OSError) as cross:
        os.link(secret, team(daemon) / "hardlink.txt")
    assert cross.value.errno == errno.EXDEV
    # one made inside is not served either (nlink > 1: it could be anything's other name)
    (team(daemon) / "linked.txt").write_text("inside")
    os.link(team(daemon) / "linked.txt", team(daemon) / "hardlink.txt")
    with fs.open("alice", "team", "test") as view:
        for bad in ("../small", "a/../../small", "../../../etc/passwd"):
            refused(errno.EACCES, view.stat, bad)
        refused(errno.EINVAL, view.stat, "a\x00b")
        refused(errno.EINVAL, view.stat, b"\xff\xfe")
        refused(errno.ENAMETOOLONG, view.stat, "n" * 256)
        refused(errno.ENAMETOOLONG, view.stat, "/".join(["d"] * 2100))
        for link in ("to-etc/passwd", "passwd-link", "to-small", "to-small/x"):
            with pytest.raises(FsError) as info:
                view.open_read(link)
            assert info.value.code in (errno.ENOENT, errno.ENOTDIR), link
        refused(errno.ENOENT, view.list, "to-etc")
        refused(errno.EACCES, view.open_read, "hardlink.txt")
        names = {e.name for e in view.list("")}
        assert not names & {"to-etc", "passwd-link", "to-small", "hardlink.txt", ".speicher"}
        refused(errno.ENOENT, view.list, ".speicher")
        # an absolute path is a path inside the share, never the server's
        assert view.stat("/reports").is_dir
        refused(errno.EINVAL, view.mkdir, "back\\slash")
        refused(errno.EINVAL, view.write, "new\nline", [b""])
        refused(errno.ENOENT, view.write, "to-etc/evil", [b"x"])
    assert secret.read_text() == "outside"
    assert not (Path("/etc") / "evil").exists()


def test_read_only_and_snapshots(daemon: Daemon, fs: ShareFS) -> None:
    with fs.open("carol", "team", "test") as view:
        assert view.access == "ro"
        refused(errno.EACCES, view.write, "carol.txt", [b"no"])
        refused(errno.EACCES, view.mkdir, "carol")
        refused(errno.EACCES, view.delete, "reports/q1.txt")
        assert view.stat("reports/q1.txt").size > 0
    with fs.open("alice", "team", "test") as view:
        view.write("versioned.txt", [b"old"])
    r = daemon.api.post("/shares/team/snapshots", json={})
    assert r.status_code == 201, r.text
    snap = r.json()["name"]
    with fs.open("alice", "team", "test") as view:
        view.write("versioned.txt", [b"new"])
        assert [e.name for e in view.list("/.snapshots")] == [snap]
        with view.open_read(f"/.snapshots/{snap}/versioned.txt") as f:
            assert f.read(0, 10) == b"old"
        refused(errno.EROFS, view.write, f"/.snapshots/{snap}/versioned.txt", [b"x"])
        refused(errno.EROFS, view.delete, f"/.snapshots/{snap}/versioned.txt")
        refused(errno.ENOENT, view.open_read, "/.snapshots/@GMT-2001.01.01-00.00.00/versioned.txt")
        assert ".snapshots" not in {e.name for e in view.list("")}


def test_interrupted_and_overfull_uploads_change_nothing(daemon: Daemon, fs: ShareFS) -> None:
    small = daemon.mount_root / "tank" / "small"
    with fs.open("alice", "small", "test") as view:
        view.write("keep.bin", [b"k" * 100_001])
        upload = view.upload("keep.bin")
        upload.write(b"partial")
        upload.abort()
        assert (small / "keep.bin").read_bytes() == b"k" * 100_001
        with pytest.raises(FsError) as info:
            view.write("keep.bin", (b"z" * 1024 * 1024 for _ in range(8)))
        assert info.value.no_space, info.value.message
        assert (small / "keep.bin").read_bytes() == b"k" * 100_001
    assert not [p for p in small.rglob("*") if p.name.startswith(UPLOAD_PREFIX)]


def test_rename_delete_tree_and_copy(fs: ShareFS) -> None:
    with fs.open("alice", "team", "test") as view:
        view.mkdir("tree")
        view.mkdir("tree/sub")
        for i in range(5):
            view.write(f"tree/sub/f{i}.txt", [str(i).encode() * (i + 1)])
        refused(errno.ENOTEMPTY, view.rmdir, "tree")
        assert view.copy("tree", "tree-copy") == []
        assert [e.size for e in view.list("tree-copy/sub")] == [1, 2, 3, 4, 5]
        view.write("a.txt", [b"a"])
        view.write("b.txt", [b"b"])
        refused(errno.EEXIST, view.rename, "a.txt", "b.txt", False)
        view.rename("a.txt", "b.txt", True)
        with view.open_read("b.txt") as f:
            assert f.read(0, 5) == b"a"
        refused(errno.EINVAL, view.rename, "tree", "tree/sub/inside")
        assert view.delete_tree("tree") == []
        refused(errno.ENOENT, view.stat, "tree")
        refused(errno.EACCES, view.delete_tree, "/")


def test_events_and_leftovers(daemon: Daemon, fs: ShareFS) -> None:
    seen: list[FileEvent] = []
    unsubscribe = fs.events.subscribe(seen.append)
    try:
        with fs.open("alice", "team", "sftp", "192.0.2.7") as view:
            view.write("ev.txt", [b"12345"])
            view.rename("ev.txt", "ev2.txt")
            view.delete("ev2.txt")
    finally:
        unsubscribe()
    assert [(e.kind, e.path, e.size) for e in seen] == [
        ("create", "/ev.txt", 5),
        ("rename", "/ev.txt", 0),
        ("delete", "/ev2.txt", 0),
    ]
    assert seen[1].target == "/ev2.txt"
    assert {(e.user, e.protocol, e.address, e.share) for e in seen} == {
        ("alice", "sftp", "192.0.2.7", "team")
    }
    assert all(abs(e.time - time.time()) < 60 for e in seen)
    leftover = team(daemon) / "reports" / f"{UPLOAD_PREFIX}deadbeef"
    leftover.write_bytes(b"torn")
    assert fs.remove_leftovers(team(daemon)) == 1
    assert not leftover.exists()


def test_reads_that_must_not_wait_and_metadata_of_an_open_file(fs: ShareFS) -> None:
    """``read_cached`` gives what the page cache holds and None where the disk would have to
    be read; ``ReadFile.get_meta`` is the file's metadata, as the view gives it by path."""
    body = os.urandom(300_001)
    with fs.open("alice", "team", "test") as view:
        view.write("cached.bin", [body])
        view.set_meta("cached.bin", "colour", b"blue")
        with view.open_read("cached.bin") as f:
            os.fsync(f.fd)
            os.posix_fadvise(f.fd, 0, 0, os.POSIX_FADV_DONTNEED)
            assert f.read_cached(0, 4096) is None
            assert f.read(0, len(body)) == body  # now it is in the page cache
            assert f.read_cached(100_000, 300_000) == body[100_000:]  # up to the end
            assert f.read_cached(len(body), 10) == b""
            assert f.get_meta() == view.get_meta("cached.bin") == {"colour": b"blue"}
        view.delete("cached.bin")


def test_versions_come_from_the_snapshots_a_page_at_a_time(daemon: Daemon, fs: ShareFS) -> None:
    """Each change of a file between snapshots is one version, newest first; a page ends at
    ``limit`` and the next starts ``before`` its last snapshot, with the same answer."""
    snaps = daemon.mount_root / "tank" / ".snapshots" / "team"
    states = {  # snapshot -> the file's bytes and time there (None: not there)
        "@GMT-2026.01.01-00.00.00": (b"a", 1_000),
        "@GMT-2026.01.02-00.00.00": (b"a", 1_000),  # unchanged: no version of its own
        "@GMT-2026.01.03-00.00.00": (b"bb", 2_000),
        "@GMT-2026.01.04-00.00.00": None,  # deleted in between
        "@GMT-2026.01.05-00.00.00": (b"ccc", 3_000),
    }
    try:
        for name, state in states.items():
            (snaps / name).mkdir(parents=True)
            if state is not None:
                path = snaps / name / "paged.txt"
                path.write_bytes(state[0])
                os.utime(path, ns=(state[1] * 10**9, state[1] * 10**9))
        with fs.open("alice", "team", "test") as view:
            view.write("paged.txt", [b"dddd"])
            every = view.versions("paged.txt")
            # each state in the newest snapshot that has it
            assert [(n[-19:-9], e.size) for n, e in every] == [
                ("2026.01.05", 3), ("2026.01.03", 2), ("2026.01.02", 1)
            ]  # fmt: skip
            first = view.versions("paged.txt", limit=2)
            assert first == every[:2]
            rest = view.versions("paged.txt", before=first[-1][0], limit=2)
            assert rest == every[2:]
            view.delete("paged.txt")
            assert view.versions("paged.txt") == every  # a deleted file keeps its versions
    finally:
        for name in states:  # ours only: the module's real snapshots stay
            shutil.rmtree(snaps / name, ignore_errors=True)


def _sealed(path: Path) -> bool:
    fd = os.open(path, attrs.OPEN_FLAGS)
    try:
        return attrs.append_only(fd)
    finally:
        os.close(fd)


def test_sealed_folders_above_a_locked_file(daemon: Daemon, fs: ShareFS) -> None:
    """``protect`` locks a file in place and seals the folders above it; other views can add
    files there (no temp name left) but neither replace, remove nor rename anything; a view
    that ``seals`` (S3 with Object Lock) changes the unlocked files; ``settle`` unseals."""
    top = team(daemon)
    with fs.open("alice", "team", "test") as view:
        view.mkdir("vault")
        view.mkdir("vault/inner")
        view.write("vault/inner/locked.bin", [b"keep"])
        view.write("vault/inner/other.bin", [b"other"])
        view.protect("vault/inner/locked.bin")
        assert _sealed(top / "vault") and _sealed(top / "vault/inner")
        for change in (
            lambda: view.rename("vault", "moved"),
            lambda: view.rename("vault/inner", "vault/moved"),
            lambda: view.delete("vault/inner/other.bin"),
            lambda: view.write("vault/inner/other.bin", [b"replaced"]),
        ):
            with pytest.raises(FsError) as exc:
                change()
            assert exc.value.code == errno.EPERM
        view.write("vault/inner/new.bin", [b"new"])  # an unnamed file, linked in
        assert (top / "vault/inner/new.bin").read_bytes() == b"new"
        assert not [p for p in (top / "vault/inner").iterdir() if p.name.startswith(UPLOAD_PREFIX)]
    with fs.open("alice", "team", "test") as s3:
        s3.seals = True
        s3.write("vault/inner/other.bin", [b"replaced by S3"])
        s3.delete("vault/inner/new.bin")
        assert (top / "vault/inner/other.bin").read_bytes() == b"replaced by S3"
        assert _sealed(top / "vault/inner")  # set again after each change
        # a crash's temp file in a sealed folder is still removed at start
        fd = os.open(top / "vault/inner", os.O_RDONLY | os.O_DIRECTORY)
        try:
            attrs.set_append_only(fd, False)
            (top / "vault/inner" / f"{UPLOAD_PREFIX}torn").write_bytes(b"torn")
            attrs.set_append_only(fd, True)
        finally:
            os.close(fd)
        assert fs.remove_leftovers(top) == 1
        s3.settle("vault/inner/locked.bin")  # still locked: nothing to lift
        assert _sealed(top / "vault/inner")
        s3.set_immutable("vault/inner/locked.bin", False)
        s3.settle("vault/inner/locked.bin")
        assert not _sealed(top / "vault/inner") and not _sealed(top / "vault")
    with fs.open("alice", "team", "test") as view:
        assert view.delete_tree("vault") == []
