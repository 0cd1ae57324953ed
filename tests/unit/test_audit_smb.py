"""vfs_full_audit's lines (as smbd 4.17 writes them) into audit records."""

from __future__ import annotations

from pathlib import Path

from speicher.audit.records import Record
from speicher.audit.smb import SmbAuditParser

ROOT = "/srv/speicher/tank/finance"
P = "SPAUDIT-tok|7092|sp-alice|10.0.0.7|finance|"


def parse(lines: list[str], reads: bool = False) -> list[Record]:
    out: list[Record] = []
    parser = SmbAuditParser(
        "tok",
        lambda: {"finance": (ROOT, reads)},
        lambda unix: unix.removeprefix("sp-"),
        out.append,
        clock=lambda: 1000.0,
    )
    for line in lines:
        if parser.is_audit(line):
            parser.feed(line)
            parser.settle()  # as after each read of smbd's output under light load
    return out


def test_a_session_of_smbclient() -> None:
    out = parse(
        [
            "smbd version 4.17.12-Debian started.",
            P + "connect|ok|finance",
            P + f"create_file|ok|0x12019f|file|overwrite_if|{ROOT}/a.txt",
            P + f"close|ok|{ROOT}",
            P + f"close|ok|{ROOT}/a.txt",
            P + f"close|ok|{ROOT}/a.txt",
            P + f"mkdirat|ok|{ROOT}/d",
            P + f"create_file|ok|0x80|dir|create|{ROOT}/d",
            P + f"create_file|ok|0x12019f|file|create|{ROOT}/d/x|y",
            P + f"close|ok|{ROOT}/d/x|y",
            P + f"renameat|ok|{ROOT}/a.txt|{ROOT}/b|c.txt",
            P + f"create_file|ok|0x10000|file|open|{ROOT}/d/x|y",
            P + f"unlinkat|ok|{ROOT}/d/x|y",
            P + f"create_file|ok|0x10000|dir|open|{ROOT}/d",
            P + f"unlinkat|ok|{ROOT}/d",
            P + f"create_file|fail (No such file or directory)|0x120089|file|open|{ROOT}/nope",
            P + f"unlinkat|fail (Permission denied)|{ROOT}/locked.pdf",
            # a share that is read-only for the user: Samba's reason is a stale ENOENT
            P + f"create_file|fail (No such file or directory)|0x10000|file|open|{ROOT}/ro.txt",
            P + f"create_file|fail (No such file or directory)|0x80|dir|create|{ROOT}/x",
            P + f"create_file|ok|0x120089|file|open|{ROOT}/read.pdf",
            P + f"fset_nt_acl|ok|{ROOT}/b|c.txt",
            "SPAUDIT-other|1|x|1.2.3.4|finance|unlinkat|ok|/srv/speicher/tank/finance/forged",
            P + "unlinkat|ok|/etc/passwd",
            "SPAUDIT-tok|1|sp-alice|10.0.0.7|IPC$|create_file|ok|0x1|file|open|/x",
        ]
    )
    assert [(r.operation, r.path, r.target, r.outcome) for r in out] == [
        ("open_write", "/a.txt", "", "ok"),
        ("mkdir", "/d", "", "ok"),
        ("create", "/d/x|y", "", "ok"),
        ("rename", "/a.txt", "/b|c.txt", "ok"),
        ("delete", "/d/x|y", "", "ok"),
        ("rmdir", "/d", "", "ok"),
        ("delete", "/locked.pdf", "", "failed: Permission denied"),
        ("delete", "/ro.txt", "", "failed"),
        ("mkdir", "/x", "", "failed"),
        ("set_permission", "/b|c.txt", "", "ok"),
    ]
    first = out[0]
    assert (first.user, first.address, first.share, first.protocol) == (
        "alice",
        "10.0.0.7",
        "finance",
        "smb",
    )
    assert first.size == 0  # looked up beneath the share at the close: not on this box


def test_reads_only_where_the_share_audits_them() -> None:
    lines = [P + f"create_file|ok|0x120089|file|open|{ROOT}/read.pdf"]
    assert parse(lines) == []
    assert [(r.operation, r.path) for r in parse(lines, reads=True)] == [("read", "/read.pdf")]


def test_a_control_character_in_a_name_is_not_passed_on() -> None:
    out = parse([P + f"mkdirat|ok|{ROOT}/a\x1b[2Jb"])
    assert out[0].path == "/a\ufffd[2Jb"


def test_a_file_the_open_made_is_a_create_also_when_it_is_gone_by_its_close(
    tmp_path: Path,
) -> None:
    """Looked at after the read its open's line came in: a file renamed away before the
    close's line is still known to be new; one whose open and close came in one read is
    looked at once, at the close."""
    root = str(tmp_path)
    out: list[Record] = []
    parser = SmbAuditParser("tok", lambda: {"finance": (root, False)}, str, out.append)
    prefix = "SPAUDIT-tok|7092|alice|10.0.0.7|finance|"
    looks: list[str] = []
    looker = parser.size_of

    def size_of(top: int, path: str) -> tuple[int, float | None]:
        looks.append(path)
        return looker(top, path)

    parser.size_of = size_of
    (tmp_path / "new.docx").write_bytes(b"x" * 4099)
    parser.feed(prefix + f"create_file|ok|0x12019f|file|overwrite_if|{root}/new.docx")
    parser.settle()
    (tmp_path / "new.docx").rename(tmp_path / "renamed.docx")
    parser.feed(prefix + f"close|ok|{root}/new.docx")
    # open and close in one read: one look, at the close
    parser.feed(prefix + f"create_file|ok|0x12019f|file|overwrite_if|{root}/renamed.docx")
    parser.feed(prefix + f"close|ok|{root}/renamed.docx")
    parser.settle()
    assert [(r.operation, r.path, r.size) for r in out] == [
        ("create", "/new.docx", 0),
        ("create", "/renamed.docx", 4099),
    ]
    assert looks == ["/new.docx", "/new.docx", "/renamed.docx"]


def test_sizes_are_looked_up_without_following_a_link_and_no_folder_stays_open(
    tmp_path: Path,
) -> None:
    """A user can swap a folder of the share for a link out of it: the daemon, as root, must
    not read what is behind it. And the folders it opened for a read's lines are closed after
    it (a pool must stay unmountable)."""
    share, outside = tmp_path / "share", tmp_path / "outside"
    (share / "docs").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"s" * 777)
    (share / "docs/a.txt").write_bytes(b"a" * 1234)
    (share / "out").symlink_to(outside)
    (share / "link.txt").symlink_to(outside / "secret.txt")
    root = str(share)
    out: list[Record] = []
    parser = SmbAuditParser("tok", lambda: {"finance": (root, False)}, str, out.append)
    prefix = "SPAUDIT-tok|7092|alice|10.0.0.7|finance|"
    before = len(list(Path("/proc/self/fd").iterdir()))
    for name in ("docs/a.txt", "out/secret.txt", "link.txt", "docs/../../outside/secret.txt"):
        parser.feed(prefix + f"create_file|ok|0x12019f|file|overwrite_if|{root}/{name}")
        parser.feed(prefix + f"close|ok|{root}/{name}")
    parser.settle()
    assert [(r.path, r.size) for r in out] == [
        ("/docs/a.txt", 1234),
        ("/out/secret.txt", 0),
        ("/link.txt", 0),
        ("/docs/../../outside/secret.txt", 0),
    ]
    assert len(list(Path("/proc/self/fd").iterdir())) == before
