"""File semantics every file protocol of Speicher must share, written once.

A protocol's test module gives a :class:`World` (its users, shares and a way to connect) and
subclasses :class:`Conformance`; pytest then runs every ``test_*`` method below against that
protocol's client. The client interface, :class:`FileClient`, knows nothing of any protocol:
paths are ``/``-separated strings inside one share, sent as typed (a client encodes them for
its wire, nothing more), and every refusal is a :class:`Refused` with a protocol-neutral
``kind``. WebDAV's client is in tests/protocols/webdav/; SFTP's and S3's follow.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

KINDS = frozenset({"not_found", "denied", "exists", "not_empty", "no_space", "invalid"})


class Refused(Exception):
    """The server refused: ``kind`` is one of :data:`KINDS`; ``detail`` what it said."""

    def __init__(self, kind: str, detail: str = "") -> None:
        assert kind in KINDS, kind
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Stat:
    name: str
    is_dir: bool
    size: int  # 0 for folders
    mtime: float  # seconds since the epoch


class FileClient(Protocol):
    """One user's connection to one share."""

    def put(self, path: str, data: bytes) -> None:
        """Create or replace a whole file."""

    def get(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        """A file's bytes, or those from ``start`` to ``end`` (exclusive)."""

    def list(self, path: str) -> dict[str, Stat]:
        """A folder's entries by name."""

    def stat(self, path: str) -> Stat: ...

    def mkdir(self, path: str) -> None: ...

    def rmdir(self, path: str) -> None:
        """Remove an empty folder; a folder with something in it is ``not_empty``."""

    def delete(self, path: str) -> None:
        """Delete a file."""

    def rename(self, src: str, dst: str) -> None:
        """Move a file or folder; a file replaces an existing file."""

    def close(self) -> None: ...


@dataclass
class World:
    """What a protocol's module provides.

    ``connect(role, share)`` logs in as the user of ``role`` (``rw``, ``ro``: grants on
    ``main``; ``none``: no grant; ``disabled``: a disabled user with an rw grant) and returns a
    client, or raises :class:`Refused` when the login itself is refused. ``main`` and
    ``other`` are shares the rw user may write; ``small`` has a quota of ``quota`` bytes.
    ``folder(share)`` is the share's folder on the server, where root plants links."""

    connect: Callable[[str, str], FileClient]
    folder: Callable[[str], Path]
    main: str = "main"
    other: str = "other"
    small: str = "small"
    quota: int = 0
    made: list[FileClient] = field(default_factory=list)

    def client(self, role: str = "rw", share: str | None = None) -> FileClient:
        c = self.connect(role, share or self.main)
        self.made.append(c)
        return c


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def refused(action: Callable[[], object], *kinds: str) -> Refused:
    """Run ``action``; it must be refused with one of ``kinds`` (any kind when none given)."""
    try:
        action()
    except Refused as exc:
        assert not kinds or exc.kind in kinds, f"refused as {exc.kind}, wanted {kinds}: {exc}"
        return exc
    raise AssertionError(f"not refused (wanted {kinds or 'any refusal'})")


# paths that try to leave the share, as an attacker types them
ESCAPES = [
    "../../etc/passwd",
    "../../../../../../etc/passwd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e/%252e%252e/etc/passwd",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "..\\..\\etc\\passwd",
    "..%5c..%5cetc%5cpasswd",
    "/etc/passwd",
    "//etc/passwd",
    "etc/passwd%00.txt",
    "a\x00b",
]


class Conformance:
    """The suite. A subclass provides the ``world`` fixture."""

    @pytest.fixture
    def world(self) -> Iterator[World]:  # overridden by each protocol's module
        raise NotImplementedError
        yield

    @pytest.fixture
    def rw(self, world: World) -> Iterator[FileClient]:
        client = world.client("rw")
        yield client
        client.close()

    # -- the basics ----------------------------------------------------------------------

    def test_create_read_overwrite(self, rw: FileClient) -> None:
        name = unique("file") + ".txt"
        rw.put(name, b"first")
        assert rw.get(name) == b"first"
        rw.put(name, b"second, longer")
        assert rw.get(name) == b"second, longer"
        assert rw.stat(name).size == len(b"second, longer")
        rw.put(name, b"")
        assert rw.get(name) == b""
        rw.delete(name)
        refused(lambda: rw.get(name), "not_found")
        refused(lambda: rw.delete(name), "not_found")

    def test_binary_and_unaligned_sizes(self, rw: FileClient) -> None:
        folder = unique("sizes")
        rw.mkdir(folder)
        for size in (1, 4095, 4097, 65_537, 1_048_577):
            data = os.urandom(size)
            rw.put(f"{folder}/{size}.bin", data)
            assert rw.get(f"{folder}/{size}.bin") == data

    def test_names_of_every_script(self, rw: FileClient) -> None:
        folder = unique("names")
        rw.mkdir(folder)
        names = ["Grüße.txt", "日本語.txt", "emoji-🙂.txt", "space name.txt", "100%.txt", "._mac"]
        for name in names:
            rw.put(f"{folder}/{name}", name.encode())
        assert set(rw.list(folder)) == set(names)
        for name in names:
            assert rw.get(f"{folder}/{name}") == name.encode()

    def test_rename_over_an_existing_file(self, rw: FileClient) -> None:
        a, b = unique("a"), unique("b")
        rw.put(a, b"new content")
        rw.put(b, b"old content")
        rw.rename(a, b)
        assert rw.get(b) == b"new content"
        refused(lambda: rw.get(a), "not_found")
        folder = unique("moved")
        rw.mkdir(folder)
        rw.rename(b, f"{folder}/b")
        assert rw.get(f"{folder}/b") == b"new content"
        rw.rename(folder, folder + "-renamed")
        assert rw.get(f"{folder}-renamed/b") == b"new content"

    def test_mkdir_rmdir(self, rw: FileClient) -> None:
        folder = unique("dir")
        rw.mkdir(folder)
        assert rw.stat(folder).is_dir
        refused(lambda: rw.mkdir(folder), "exists")
        refused(lambda: rw.mkdir(f"{unique('missing')}/child"), "not_found")
        rw.put(f"{folder}/inside.txt", b"x")
        refused(lambda: rw.rmdir(folder), "not_empty")
        assert rw.get(f"{folder}/inside.txt") == b"x"
        rw.delete(f"{folder}/inside.txt")
        rw.rmdir(folder)
        refused(lambda: rw.stat(folder), "not_found")

    def test_listing_with_sizes_and_times(self, rw: FileClient) -> None:
        folder = unique("list")
        rw.mkdir(folder)
        before = time.time() - 5
        rw.put(f"{folder}/one", b"1")
        rw.put(f"{folder}/three", b"333")
        rw.mkdir(f"{folder}/sub")
        entries = rw.list(folder)
        assert set(entries) == {"one", "three", "sub"}
        assert (entries["one"].size, entries["three"].size) == (1, 3)
        assert entries["sub"].is_dir and not entries["one"].is_dir
        for entry in entries.values():
            assert before <= entry.mtime <= time.time() + 5, entry

    def test_ranges(self, rw: FileClient) -> None:
        name = unique("range")
        data = bytes(range(256)) * 40
        rw.put(name, data)
        assert rw.get(name, 0, 1) == data[:1]
        assert rw.get(name, 100, 4000) == data[100:4000]
        assert rw.get(name, len(data) - 7, len(data)) == data[-7:]

    # -- who may do what ------------------------------------------------------------------

    def test_read_only_grant(self, world: World, rw: FileClient) -> None:
        folder = unique("ro")
        rw.mkdir(folder)
        rw.mkdir(f"{folder}/empty")
        rw.put(f"{folder}/report", b"numbers")
        ro = world.client("ro")
        assert ro.get(f"{folder}/report") == b"numbers"
        assert set(ro.list(folder)) == {"empty", "report"}
        writes: dict[str, Callable[[], object]] = {
            "create": lambda: ro.put(f"{folder}/new", b"x"),
            "overwrite": lambda: ro.put(f"{folder}/report", b"changed"),
            "delete": lambda: ro.delete(f"{folder}/report"),
            "rename": lambda: ro.rename(f"{folder}/report", f"{folder}/moved"),
            "mkdir": lambda: ro.mkdir(f"{folder}/dir"),
            "rmdir": lambda: ro.rmdir(f"{folder}/empty"),
        }
        for what, action in writes.items():
            try:
                refused(action, "denied")
            except AssertionError as exc:
                raise AssertionError(f"{what}: {exc}") from None
        assert rw.get(f"{folder}/report") == b"numbers"
        assert set(rw.list(folder)) == {"empty", "report"}

    def test_no_grant_sees_nothing(self, world: World, rw: FileClient) -> None:
        rw.put("for-granted-only", b"secret")
        try:
            none = world.client("none")
        except Refused as exc:
            assert exc.kind in ("not_found", "denied")
            return
        refused(lambda: none.get("for-granted-only"), "not_found", "denied")
        refused(lambda: none.list(""), "not_found", "denied")
        refused(lambda: none.put("intruder", b"x"), "not_found", "denied")
        assert "intruder" not in rw.list("")

    def test_disabled_user_is_refused(self, world: World) -> None:
        def use() -> None:
            world.client("disabled").list("")

        refused(use, "denied", "not_found")

    # -- space ----------------------------------------------------------------------------

    def test_quota_full_keeps_earlier_data(self, world: World) -> None:
        small = world.client("rw", world.small)
        kept = os.urandom(64 * 1024)
        name = unique("kept")
        small.put(name, kept)
        big = os.urandom(world.quota + 8 * 1024 * 1024)
        refused(lambda: small.put(unique("big"), big), "no_space")
        refused(lambda: small.put(name, big), "no_space")
        assert small.get(name) == kept

    # -- staying inside -------------------------------------------------------------------

    def test_paths_that_try_to_leave_the_share(self, world: World, rw: FileClient) -> None:
        outside = world.folder(world.main).parent / f"outside-{secrets.token_hex(4)}"
        for path in ESCAPES:
            try:
                data = rw.get(path)
            except Refused:
                continue
            assert b"root:x:0:0" not in data, f"{path!r} read /etc/passwd"
        for path in ("../" + outside.name, "%2e%2e/" + outside.name, "..\\" + outside.name):
            with contextlib.suppress(Refused):
                rw.put(path, b"escaped")
            assert not outside.exists(), f"{path!r} wrote outside the share"
        for path in ("../x", "a/../../x"):
            refused(lambda p=path: rw.mkdir(p))  # type: ignore[misc]

    def test_links_planted_by_root_lead_nowhere(self, world: World, rw: FileClient) -> None:
        top = world.folder(world.main)
        other = world.folder(world.other)
        secret = f"secret-{secrets.token_hex(4)}"
        (other / "theirs.txt").write_text(secret)
        internal = top / ".speicher"
        internal.mkdir(exist_ok=True)
        (internal / "inside.txt").write_text(secret)
        tag = unique("link")
        os.symlink("/etc", top / f"{tag}-etc")
        os.symlink(str(other), top / f"{tag}-other")
        os.symlink("/etc/passwd", top / f"{tag}-passwd")
        os.link(internal / "inside.txt", top / f"{tag}-hard")
        try:
            names = set(rw.list(""))
            for suffix in ("etc", "other", "passwd", "hard"):
                assert f"{tag}-{suffix}" not in names, f"{tag}-{suffix} is listed"
            for path in (
                f"{tag}-etc/passwd",
                f"{tag}-passwd",
                f"{tag}-other/theirs.txt",
                f"{tag}-hard",
            ):
                refused(lambda p=path: rw.get(p), "not_found", "denied")  # type: ignore[misc]
            refused(lambda: rw.list(f"{tag}-etc"), "not_found", "denied")
            refused(lambda: rw.put(f"{tag}-etc/evil", b"x"), "not_found", "denied")
            refused(lambda: rw.put(f"{tag}-other/evil", b"x"), "not_found", "denied")
            assert not Path("/etc/evil").exists() and not (other / "evil").exists()
            refused(lambda: rw.put(f"{tag}-hard", b"x"), "not_found", "denied", "exists")
            assert (internal / "inside.txt").read_text() == secret
        finally:
            for suffix in ("etc", "other", "passwd", "hard"):
                (top / f"{tag}-{suffix}").unlink(missing_ok=True)

    def test_internal_folder_is_invisible(self, world: World, rw: FileClient) -> None:
        (world.folder(world.main) / ".speicher").mkdir(exist_ok=True)
        assert ".speicher" not in rw.list("")
        refused(lambda: rw.list(".speicher"), "not_found", "denied")
        refused(lambda: rw.put(".speicher/x", b"x"), "not_found", "denied")
        refused(lambda: rw.mkdir(".speicher"), "not_found", "denied", "exists")
