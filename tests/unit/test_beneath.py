"""Opening and walking beneath a folder without following symbolic links, and the file chores
built on it (recycle purge, tree removal)."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from speicher.system import beneath, files

OPENERS: list[Callable[[int, str], int]] = [beneath.open_dir, beneath.open_dir_stepwise]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "share/a/b").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "share/a/out").symlink_to(tmp_path / "outside")
    (tmp_path / "share/a/in").symlink_to("b")
    (tmp_path / "share/a/file").write_text("x")
    return tmp_path / "share"


@pytest.mark.parametrize("open_dir", OPENERS)
def test_real_folders_open(root: Path, open_dir: Callable[[int, str], int]) -> None:
    with beneath.opened(beneath.open_root(root)) as top:
        for rel in ("a/b", "a/b/", "./a", ""):
            with beneath.opened(open_dir(top, rel)) as fd:
                assert os.path.samestat(os.fstat(fd), (root / rel).stat())


@pytest.mark.parametrize("open_dir", OPENERS)
@pytest.mark.parametrize(
    ("rel", "code"),
    [
        ("a/out", {errno.ELOOP, errno.ENOTDIR}),  # a link out of the share
        ("a/in", {errno.ELOOP, errno.ENOTDIR}),  # even one that stays inside
        ("a/out/x", {errno.ELOOP, errno.ENOTDIR}),
        ("a/file", {errno.ENOTDIR}),
        ("../outside", {errno.EXDEV}),
        ("/etc", {errno.EXDEV}),
        ("a/missing", {errno.ENOENT}),
    ],
)
def test_links_and_escapes_are_refused(
    root: Path, open_dir: Callable[[int, str], int], rel: str, code: set[int]
) -> None:
    with beneath.opened(beneath.open_root(root)) as top, pytest.raises(OSError) as info:
        os.close(open_dir(top, rel))
    assert info.value.errno in code


def test_a_root_that_is_a_link_is_refused(root: Path) -> None:
    with pytest.raises(OSError) as info:
        beneath.open_root(root / "a/out")
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)


@pytest.mark.parametrize("openat2", [True, False])
def test_entry_status_is_one_look_that_follows_no_link(
    root: Path, openat2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With openat2 and without it (the careful way): the same answers and the same refusals."""
    if not openat2:
        monkeypatch.setitem(beneath._openat2, "works", False)
    (root / "a/b/doc.txt").write_bytes(b"y" * 12345)
    before = time.time()
    with beneath.opened(beneath.open_root(root)) as top:
        found = beneath.entry_status(top, "a/b/doc.txt")
        assert stat.S_ISREG(found.mode) and found.size == 12345
        assert found.born is None or before - 5 < found.born <= time.time() + 1
        assert stat.S_ISLNK(beneath.entry_status(top, "a/out").mode)  # the link, not its target
        assert stat.S_ISDIR(beneath.entry_status(top, "a/b").mode)
        for rel, code in (
            ("a/out/x", {errno.ELOOP, errno.ENOTDIR}),  # through a link: refused
            ("a/in/doc.txt", {errno.ELOOP, errno.ENOTDIR}),  # also one that stays inside
            ("a/../../outside", {errno.EXDEV}),
            ("/etc/passwd", {errno.EXDEV}),
            ("a/b/missing", {errno.ENOENT}),
            ("a/file/x", {errno.ENOTDIR}),
            ("", {errno.EINVAL}),
        ):
            with pytest.raises(OSError) as caught:
                beneath.entry_status(top, rel)
            assert caught.value.errno in code, rel


def test_rename_exchange_and_noreplace(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x/one").write_text("1")
    (tmp_path / "y/two").mkdir()
    x_fd, y_fd = beneath.open_root(tmp_path / "x"), beneath.open_root(tmp_path / "y")
    with beneath.opened(x_fd) as x, beneath.opened(y_fd) as y:
        beneath.rename(x, "one", y, "two", exchange=True)
        assert (tmp_path / "y/two").read_text() == "1"
        assert (tmp_path / "x/one").is_dir()
        with pytest.raises(FileExistsError):
            beneath.rename(x, "one", y, "two", noreplace=True)
        beneath.rename(x, "one", y, "three", noreplace=True)
        assert (tmp_path / "y/three").is_dir()
        with pytest.raises(OSError):
            beneath.rename(x, "../y", y, "z")


def test_walk_meets_everything_once_and_enters_no_link(root: Path) -> None:
    with beneath.opened(beneath.open_root(root)) as top:
        seen = [(n.depth, n.name, stat.S_IFMT(n.st.st_mode)) for n in beneath.walk(top)]
        post = [n.name for n in beneath.walk(top, post=True)]
        skipped = [n.name for n in beneath.walk(top, skip=frozenset({"a"}))]
    assert sorted(seen) == [
        (0, "", stat.S_IFDIR),
        (1, "a", stat.S_IFDIR),
        (2, "b", stat.S_IFDIR),
        (2, "file", stat.S_IFREG),
        (2, "in", stat.S_IFLNK),
        (2, "out", stat.S_IFLNK),
    ]
    assert post[-1] == "" and post.index("b") < post.index("a")
    assert skipped == [""]


def test_a_deep_tree_needs_no_recursion(tmp_path: Path) -> None:
    top = tmp_path / "deep"
    top.mkdir()
    with beneath.opened(beneath.open_root(top)) as fd:
        current = os.dup(fd)
        for _ in range(1500):  # deeper than Python's recursion limit
            beneath.mkdir(current, "d", 0o755)
            nxt = beneath.open_dir(current, "d")
            os.close(current)
            current = nxt
        os.close(current)
        assert max(n.depth for n in beneath.walk(fd)) == 1500
        files.remove_tree(fd, "d")
    assert list(top.iterdir()) == []


def test_recycle_purge_deletes_old_files_and_links_never_their_targets(tmp_path: Path) -> None:
    share = tmp_path / "share"
    recycle = share / "#recycle"
    (recycle / "old/deeper").mkdir(parents=True)
    (recycle / "new").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    long_ago = time.time() - 40 * 86400
    for name in ("old/a.txt", "old/deeper/b.txt"):
        (recycle / name).write_text("gone")
        os.utime(recycle / name, (long_ago, long_ago))
    (recycle / "new/c.txt").write_text("fresh")
    (recycle / "old/link").symlink_to(outside)
    (recycle / "old/filelink").symlink_to(outside / "keep.txt")
    for link in ("old/link", "old/filelink"):
        os.utime(recycle / link, (long_ago, long_ago), follow_symlinks=False)
    os.utime(outside / "keep.txt", (long_ago, long_ago))

    files.delete_older_than(recycle, 30)
    assert sorted(p.name for p in recycle.rglob("*")) == ["c.txt", "new"]
    assert (outside / "keep.txt").read_text() == "keep"

    # a recycle folder that is a link is not purged at all
    recycle.rename(share / "was-recycle")
    recycle.symlink_to(outside)
    files.delete_older_than(recycle, 30)
    assert (outside / "keep.txt").read_text() == "keep"
