"""A restore names a path inside a share; nothing may lead out of it."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from speicher.errors import InvalidInput
from speicher.protection.restore import open_folder, safe_relative
from speicher.system import beneath


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../x", "a/../../b", "a/..", ".", "", "a\x00b", ".speicher/x", "./"]
)
def test_paths_that_could_leave_the_share_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        safe_relative(path)


@pytest.mark.parametrize(
    ("path", "parts"),
    [("report.txt", ("report.txt",)), ("a/b/c.txt", ("a", "b", "c.txt")), ("dir/", ("dir",))],
)
def test_ordinary_paths(path: str, parts: tuple[str, ...]) -> None:
    assert safe_relative(path).parts == parts


def test_a_symlinked_folder_cannot_lead_out(tmp_path: Path) -> None:
    root = tmp_path / "share"
    (root / "real").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    with beneath.opened(beneath.open_root(root)) as top:
        with beneath.opened(open_folder(top, PurePosixPath("real"), "share")) as fd:
            assert os.path.samestat(os.fstat(fd), (root / "real").stat())
        with pytest.raises(InvalidInput):
            open_folder(top, PurePosixPath("escape"), "share")
