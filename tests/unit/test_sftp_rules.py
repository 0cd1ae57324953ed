"""SFTP's pure rules: lexical paths clamped at the root, FsError to status codes, and that no
request can reach asyncssh's own file serving (which opens local paths)."""

from __future__ import annotations

import errno
import inspect
import socket

import asyncssh
import pytest

from speicher.errors import SpeicherError
from speicher.files import FsError
from speicher.files.errors import from_os
from speicher.protocols.sftp import paths
from speicher.protocols.sftp.errors import to_sftp
from speicher.protocols.sftp.service import _bind
from speicher.protocols.sftp.session import SftpSession


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        (b"", ()),
        (b"/", ()),
        (b".", ()),
        (b"..", ()),
        (b"/../../..", ()),
        (b"docs", (b"docs",)),
        (b"/docs/a/../b/./c//d/", (b"docs", b"b", b"c", b"d")),
        (b"/../../etc/passwd", (b"etc", b"passwd")),
        (b"docs/../../../docs/x", (b"docs", b"x")),
        (b"/docs/..a/a..", (b"docs", b"..a", b"a..")),
    ],
)
def test_paths_are_resolved_lexically_and_clamped_at_the_root(
    path: bytes, parts: tuple[bytes, ...]
) -> None:
    assert paths.normalize(path) == parts
    assert paths.display(parts) == b"/" + b"/".join(parts)


def test_nul_and_overlong_paths_are_refused() -> None:
    for bad in (b"/docs/a\x00b", b"/" + b"a" * (paths.MAX_PATH + 1)):
        with pytest.raises(FsError):
            paths.normalize(bad)


def test_a_share_name_that_is_not_utf8_is_no_share() -> None:
    with pytest.raises(FsError) as caught:
        paths.split((b"\xff\xfe", b"x"))
    assert caught.value.code == errno.ENOENT
    assert paths.split((b"docs", b"a", b"b")) == ("docs", b"a/b")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (errno.ENOENT, asyncssh.FX_NO_SUCH_FILE),
        (errno.ENOTDIR, asyncssh.FX_NO_SUCH_FILE),
        (errno.EACCES, asyncssh.FX_PERMISSION_DENIED),
        (errno.EROFS, asyncssh.FX_PERMISSION_DENIED),
        (errno.ENOSPC, asyncssh.FX_FAILURE),
        (errno.EDQUOT, asyncssh.FX_FAILURE),
        (errno.EEXIST, asyncssh.FX_FAILURE),
        (errno.ENOTEMPTY, asyncssh.FX_FAILURE),
        (errno.EIO, asyncssh.FX_FAILURE),
    ],
)
def test_errors_become_status_codes_with_readable_reasons(code: int, status: int) -> None:
    error = to_sftp(from_os(OSError(code, "kernel words")))
    assert error.code == status
    assert error.reason and "Traceback" not in error.reason


def test_no_space_says_so() -> None:
    for code in (errno.ENOSPC, errno.EDQUOT):
        assert to_sftp(from_os(OSError(code, "x"))).reason.startswith("no space left")


def test_every_file_operation_of_asyncssh_is_ours() -> None:
    """asyncssh.SFTPServer serves the local filesystem; every method of it that would (an
    asyncssh upgrade may add more) must be replaced by SftpSession's."""
    pure = {"channel", "connection", "env", "logger", "convert_attrs", "format_user",
            "format_group", "format_longname", "map_path", "reverse_map_path"}  # fmt: skip
    for name, member in inspect.getmembers(asyncssh.SFTPServer):
        if name.startswith("_") or name in pure or not callable(member):
            continue
        assert getattr(SftpSession, name) is not member, f"SftpSession does not define {name}"


def test_binding_a_port_in_use_is_one_readable_error() -> None:
    first = _bind("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(SpeicherError, match=f"SFTP cannot listen on 127.0.0.1:{port}"):
            _bind("127.0.0.1", port)
    finally:
        first.close()
    dual = _bind("::", 0)  # "::" is IPv6 and IPv4
    try:
        assert dual.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    finally:
        dual.close()
