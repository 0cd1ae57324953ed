"""POSIX ACLs as the kernel's extended attributes: the binary format, and ``setfacl``'s own
semantics (the reference: the real ``setfacl``/``getfacl`` on the same tree), without ever
following a symbolic link."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from speicher.system import acl

U, G = 20001, 20002

pytestmark = pytest.mark.skipif(shutil.which("setfacl") is None, reason="needs the acl tools")


def getfacl(path: Path) -> str:
    """The ACLs of ``path`` and every file below it, with paths relative to it."""
    folder, name = (path, ".") if path.is_dir() else (path.parent, path.name)
    out = subprocess.run(
        ["getfacl", "-R", "--numeric", "--physical", name],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith("# owner"))


def test_the_attribute_the_kernel_writes_is_what_encode_makes(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir(mode=0o750)
    subprocess.run(["setfacl", "-m", f"u:{U}:rwx,g:{G}:r-x", str(folder)], check=True)
    raw = os.getxattr(folder, acl.ACCESS)
    expected = {
        (acl.USER_OBJ, acl.UNDEFINED_ID): 7,
        (acl.USER, U): 7,
        (acl.GROUP_OBJ, acl.UNDEFINED_ID): 5,
        (acl.GROUP, G): 5,
        (acl.MASK, acl.UNDEFINED_ID): 7,
        (acl.OTHER, acl.UNDEFINED_ID): 0,
    }
    assert acl.decode(raw) == expected
    assert acl.encode(expected) == raw
    assert acl.named(expected) == [acl.Entry("user", U, "rwx"), acl.Entry("group", G, "r-x")]


@pytest.mark.parametrize("data", [b"", b"\x01\x00\x00\x00", b"\x02\x00\x00\x00\x01\x00"])
def test_malformed_attributes_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        acl.decode(data)


def test_mask_is_the_union_of_the_group_class() -> None:
    base = acl.from_mode(0o640)
    assert acl.masked(base) == base  # no named entries, no mask: nothing to add
    with_user = acl.masked({**base, (acl.USER, U): 7})
    assert with_user[(acl.MASK, acl.UNDEFINED_ID)] == 7
    only_mask = {**base, (acl.MASK, acl.UNDEFINED_ID): 7}
    assert acl.masked(only_mask)[(acl.MASK, acl.UNDEFINED_ID)] == 4  # the owning group's r--
    assert [acl.perm_bits(t) for t in ("rwx", "r-x", "---")] == [7, 5, 0]
    assert acl.perm_text(5) == "r-x"


def tree(root: Path) -> Path:
    """Folders, plain and executable files, some with ACLs already, and a link."""
    (root / "docs/sub").mkdir(parents=True)
    (root / "docs/plan.txt").write_text("plan")
    (root / "docs/sub/run.sh").write_text("#!/bin/sh")
    (root / "docs/sub/run.sh").chmod(0o750)
    (root / "top.txt").write_text("top")
    (root / "top.txt").chmod(0o600)
    (root / "link").symlink_to("top.txt")
    subprocess.run(["setfacl", "-m", "u:30000:r-x,d:u:30000:r-x", str(root / "docs")], check=True)
    subprocess.run(["setfacl", "-m", "u:30000:rw-,m::r--", str(root / "top.txt")], check=True)
    return root


@pytest.mark.parametrize(
    ("entries", "removed"),
    [
        ([acl.Entry("user", U, "rwx")], []),
        ([acl.Entry("user", U, "r-x"), acl.Entry("group", G, "rwx")], []),
        ([], [acl.Entry("user", 30000, "r-x")]),
        ([acl.Entry("group", G, "r-x")], [acl.Entry("user", 30000, "r-x")]),
    ],
)
def test_modify_tree_does_what_setfacl_does(
    tmp_path: Path, entries: list[acl.Entry], removed: list[acl.Entry]
) -> None:
    reference, ours = tree(tmp_path / "a"), tree(tmp_path / "b")
    if removed:
        specs = [f"{e.kind[0]}:{e.qualifier}" for e in removed]
        specs += [f"d:{s}" for s in specs]
        subprocess.run(["setfacl", "-R", "-x", ",".join(specs), str(reference)], check=False)
    if entries:
        specs = [f"{e.kind[0]}:{e.qualifier}:{e.perms.replace('x', 'X')}" for e in entries]
        specs += [f"d:{e.kind[0]}:{e.qualifier}:{e.perms}" for e in entries]
        subprocess.run(["setfacl", "-R", "-m", ",".join(specs), str(reference)], check=True)
    acl.modify_tree(ours, entries, removed)
    assert getfacl(ours) == getfacl(reference)


def test_set_root_and_named_entries(tmp_path: Path) -> None:
    top = tmp_path / "share"
    top.mkdir()
    entries = [acl.Entry("user", U, "rwx"), acl.Entry("group", G, "r-x")]
    acl.set_root(top, entries)
    assert acl.named_entries(top) == entries
    assert top.stat().st_mode & 0o777 == 0o770
    text = getfacl(top)
    assert "default:user:20001:rwx" in text and "default:group:20002:r-x" in text
    assert "other::---" in text
    acl.set_root(top, [])
    assert acl.named_entries(top) == []


def test_no_walk_follows_a_link_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_text("x")
    secret.chmod(0o644)
    before = getfacl(outside)
    share = tmp_path / "share"
    share.mkdir()
    (share / "mine.txt").write_text("mine")
    (share / "to-file").symlink_to(secret)
    (share / "to-dir").symlink_to(outside)
    (share / ".speicher").mkdir(mode=0o700)
    uid = os.getuid()

    acl.set_owner_write(share, [uid], writable=False)
    assert secret.stat().st_mode & 0o777 == 0o644
    assert (share / "mine.txt").stat().st_mode & 0o200 == 0
    acl.modify_tree(share, [acl.Entry("user", U, "rwx")], [])
    acl.set_owner_write(share, [uid], writable=True)
    acl.modify_tree(share, [], [acl.Entry("user", U, "rwx")])
    assert getfacl(outside) == before
    assert secret.stat().st_mode & 0o777 == 0o644
    assert (share / "mine.txt").stat().st_mode & 0o200
    # the internal folder is not the users': it never gets their entries
    acl.modify_tree(share, [acl.Entry("user", U, "rwx")], [])
    assert f"user:{U}" not in getfacl(share / ".speicher")
    assert f"user:{U}:rw-" in getfacl(share / "mine.txt")
