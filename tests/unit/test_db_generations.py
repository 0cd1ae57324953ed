"""Change counters shared by the daemon's processes (``db/generations.py``): a commit in one
process is news to the caches of every other, table by table."""

from __future__ import annotations

from pathlib import Path

from speicher.db.generations import SharedGenerations, slot
from speicher.db.models import VirtualDisk
from speicher.db.session import Database


def test_a_commit_in_one_database_is_seen_by_another_on_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'speicher.db'}"
    daemon, worker = Database(url), Database(url)
    try:
        daemon.migrate()
        for db in (daemon, worker):
            db.share_generations(tmp_path / "db.generations")
        disks, users = frozenset({"virtual_disks"}), frozenset({"users"})
        assert slot("virtual_disks") != slot("users")  # else the check below proves nothing
        before_disks, before_users = worker.generation_of(disks), worker.generation_of(users)
        with daemon.session() as s:
            s.add(VirtualDisk(name="d1", path=str(tmp_path / "d1.img"), size=1 << 30))
        seen = worker.generation_of(disks)
        assert seen > before_disks and daemon.generation_of(disks) == seen
        assert worker.generation_of(users) == before_users
        with daemon.quiet_session() as s:  # a job's progress is no news
            s.add(VirtualDisk(name="d2", path=str(tmp_path / "d2.img"), size=1 << 30))
        assert worker.generation_of(disks) == seen
    finally:
        daemon.close()
        worker.close()


def test_counters_only_grow_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.generations"
    first = SharedGenerations(path)
    a = first.bump(["shares"])
    b = first.bump(["grants"])
    assert b == a + 1 and first.of(frozenset({"shares"})) == a
    first.close()
    again = SharedGenerations(path)
    try:
        assert again.of(frozenset({"grants"})) == b
        assert again.bump(["*"]) == b + 1
        assert again.of(frozenset({"shares"})) == b + 1  # an unknown change counts for all
    finally:
        again.close()
    assert path.stat().st_mode & 0o777 == 0o600
