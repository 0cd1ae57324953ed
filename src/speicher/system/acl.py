"""POSIX ACLs: ``setfacl`` and ``getfacl``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from speicher.system.run import run


@dataclass(frozen=True)
class Entry:
    """One named ACL entry: ``kind`` is ``user`` or ``group``, ``qualifier`` a numeric id."""

    kind: str
    qualifier: int
    perms: str  # e.g. "rwx", "r-x"


def parse_getfacl(output: str) -> list[Entry]:
    """Named (user:/group: with an id) access entries from ``getfacl --numeric --omit-header``."""
    entries = []
    for line in output.splitlines():
        text = line.split("#", 1)[0].strip()
        parts = text.split(":")
        if len(parts) == 3 and parts[0] in ("user", "group") and parts[1].isdigit():
            entries.append(Entry(parts[0], int(parts[1]), parts[2]))
    return entries


def named_entries(path: Path) -> list[Entry]:
    return parse_getfacl(
        run(["getfacl", "--numeric", "--omit-header", "--absolute-names", str(path)]).stdout
    )


def _spec(entry: Entry, default: bool) -> str:
    prefix = "d:" if default else ""
    return f"{prefix}{entry.kind[0]}:{entry.qualifier}:{entry.perms}"


def set_root(path: Path, entries: list[Entry]) -> None:
    """Replace the whole ACL of directory ``path``: owner rwx, nobody else, plus ``entries``,
    the same as default ACL so new files and folders inherit it."""
    base = ["u::rwx", "g::---", "o::---", "m::rwx"]
    specs = base + [f"d:{b}" for b in base]
    specs += [_spec(e, False) for e in entries] + [_spec(e, True) for e in entries]
    run(["setfacl", "--set", ",".join(specs), str(path)])


def modify_tree(path: Path, entries: list[Entry], removed: list[Entry]) -> None:
    """Below ``path``, add or change ``entries`` and drop ``removed`` on every file and folder.

    ``X`` keeps files that are not executable from becoming so."""
    if removed:
        specs = [f"{e.kind[0]}:{e.qualifier}" for e in removed]
        specs += [f"d:{s}" for s in specs]
        run(["setfacl", "-R", "-x", ",".join(specs), str(path)], check=False, timeout=3600)
    if entries:
        specs = [f"{e.kind[0]}:{e.qualifier}:{e.perms.replace('x', 'X')}" for e in entries]
        specs += [f"d:{e.kind[0]}:{e.qualifier}:{e.perms}" for e in entries]
        run(["setfacl", "-R", "-m", ",".join(specs), str(path)], timeout=3600)


def set_owner_write(path: Path, uids: list[int], writable: bool) -> None:
    """Give or take write permission in the owner bits of every file below ``path`` owned by
    one of ``uids`` (POSIX owners are not bound by the ACL's named entries)."""
    if not uids:
        return
    owners: list[str] = []
    for uid in uids:
        owners += ["-o", "-uid", str(uid)] if owners else ["-uid", str(uid)]
    mode = "u+w" if writable else "u-w"
    run(
        ["find", str(path), "-xdev", "(", *owners, ")", "-exec", "chmod", mode, "{}", "+"],
        timeout=3600,
    )
