"""ShareFS's path rules, the same for every protocol: what a client sends, what it means."""

from __future__ import annotations

import errno

import pytest

from speicher.files import FileEvents, FsError
from speicher.files.paths import check_new_name, hidden, parse, visible


@pytest.mark.parametrize(
    ("sent", "parts"),
    [
        ("", ()),
        ("/", ()),
        ("a/b", ("a", "b")),
        ("/a//b/./c/", ("a", "b", "c")),
        ("a/../b", ("b",)),
        (b"caf\xc3\xa9/x", ("café", "x")),
        ("..\\..\\etc", ("..\\..\\etc",)),  # one (odd) name inside the share, never a way out
        ("%2e%2e%2f", ("%2e%2e%2f",)),  # percent-decoding is the HTTP adapter's, once
        (".snapshots/@GMT-2026.01.01-00.00.00/f", (".snapshots", "@GMT-2026.01.01-00.00.00", "f")),
    ],
)
def test_paths_inside(sent: str | bytes, parts: tuple[str, ...]) -> None:
    assert parse(sent) == parts


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("..", errno.EACCES),
        ("a/../..", errno.EACCES),
        ("/../etc/passwd", errno.EACCES),
        ("a\x00b", errno.EINVAL),
        (b"\xc0\xae\xc0\xae/etc", errno.EINVAL),  # overlong UTF-8 dots are no UTF-8 at all
        (b"\xff", errno.EINVAL),
        ("\udcff", errno.EINVAL),  # a lone surrogate (what a bad byte decodes to)
        ("x" * 256, errno.ENAMETOOLONG),
        ("é" * 128, errno.ENAMETOOLONG),  # 256 bytes in UTF-8
        ("/".join(["d"] * 2049), errno.ENAMETOOLONG),  # 4,097 bytes
        (".speicher", errno.ENOENT),
        (".speicher/keys", errno.ENOENT),
        ("a/.speicher-upload-0011", errno.ENOENT),
    ],
)
def test_paths_refused(sent: str | bytes, code: int) -> None:
    with pytest.raises(FsError) as info:
        parse(sent)
    assert info.value.code == code


def test_limits_themselves_are_fine() -> None:
    assert parse("x" * 255) == ("x" * 255,)
    assert len(parse("/".join(["d"] * 2048))) == 2048  # 4,095 bytes


def test_what_listings_and_new_names_allow() -> None:
    assert not visible(".speicher", top=True) and visible(".speicher", top=False)
    assert not visible(".snapshots", top=True)
    assert not visible(".speicher-upload-ab", top=False)
    assert hidden(("a", ".speicher-upload-1")) and not hidden(("a", ".speicher"))
    for bad in ("a\nb", "tab\there", "back\\slash", "\x7f", "line\u2028sep", ".snapshots"):
        with pytest.raises(FsError):
            check_new_name(bad)
    for good in ("Bericht März.docx", "._Finder", "a:b", "#recycle", "x" * 255):
        check_new_name(good)


def test_events_are_bounded_and_a_failing_subscriber_is_dropped() -> None:
    events = FileEvents(size=3)
    got: list[str] = []

    def broken(_event: object) -> None:
        raise RuntimeError("subscriber bug")

    events.subscribe(broken)
    unsubscribe = events.subscribe(lambda e: got.append(e.path))
    for i in range(5):
        events.emit("create", "alice", "webdav", None, "team", f"/f{i}", 1)
    assert [e.path for e in events.recent(10)] == ["/f2", "/f3", "/f4"]
    assert got == [f"/f{i}" for i in range(5)] and events.count == 5
    unsubscribe()
    events.emit("delete", "alice", "webdav", None, "team", "/f0")
    assert len(got) == 5
