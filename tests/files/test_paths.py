"""ShareFS's path rules, the one decision every protocol's paths go through (no root needed)."""

from __future__ import annotations

import errno
from types import SimpleNamespace
from typing import Any

import pytest

from speicher.files import FsError
from speicher.files.paths import check_new_name, parse
from speicher.files.sharefs import protocol_enabled


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("", ()),
        ("/", ()),
        ("a/b", ("a", "b")),
        ("//a///b/", ("a", "b")),
        ("/etc/passwd", ("etc", "passwd")),  # absolute paths are inside the share
        ("a/./b/../c", ("a", "c")),
        ("%2e%2e/x", ("%2e%2e", "x")),  # decoding is the protocol's job, done once
        ("..\\..\\etc", ("..\\..\\etc",)),  # a backslash is no separator on the server
        (b"caf\xc3\xa9", ("café",)),
        ("a/" * 100, ("a",) * 100),
    ],
)
def test_paths_inside(path: Any, parts: tuple[str, ...]) -> None:
    assert parse(path) == parts


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("..", errno.EACCES),
        ("../etc/passwd", errno.EACCES),
        ("a/../../etc", errno.EACCES),
        ("a\x00b", errno.EINVAL),
        (b"\xc0\xae\xc0\xae/etc", errno.EINVAL),  # overlong UTF-8 is no UTF-8
        (b"\xff", errno.EINVAL),
        ("n" * 256, errno.ENAMETOOLONG),
        ("é" * 128, errno.ENAMETOOLONG),  # 256 bytes
        ("a/" * 2049, errno.ENAMETOOLONG),
        (".speicher/x", errno.ENOENT),
        ("a/.speicher-upload-0011/x", errno.ENOENT),
    ],
)
def test_paths_refused(path: Any, code: int) -> None:
    with pytest.raises(FsError) as caught:
        parse(path)
    assert caught.value.code == code


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "back\\slash", ".speicher", ".snapshots"])
def test_names_new_files_cannot_have(name: str) -> None:
    with pytest.raises(FsError):
        check_new_name(name)


def test_protocol_switches() -> None:
    share: Any = SimpleNamespace(webdav_enabled=False, sftp_enabled=True)
    assert not protocol_enabled(share, "webdav")
    assert protocol_enabled(share, "sftp")
    assert protocol_enabled(share, None)
    assert protocol_enabled(share, "s3")  # no column yet: the protocol does not decide
