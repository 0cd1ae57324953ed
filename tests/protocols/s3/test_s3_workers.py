"""S3 served by worker processes (``protocols/s3/workers.py``): every worker sees what the
daemon changes at once, bucket changes are relayed to the daemon, and the workers end with
the daemon, also when it is killed, and come back when one dies."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_s3_basics import client

from conftest import _base
from speicher_testing import Daemon
from world import grant, make_pool, make_share, make_user

pytestmark = pytest.mark.system


def workers_of(daemon: Daemon) -> list[int]:
    """The pids of the daemon's S3 worker processes (their command line names its state)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"speicher.protocols.s3.workers" in argv and str(daemon.state_dir).encode() in argv:
            found.append(int(entry.name))
    return sorted(found)


def wait_for(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {check}")


def fresh_gets(url: str, count: int) -> list[int]:
    """``count`` GETs, each on a new connection (the kernel spreads them over the workers)."""
    statuses = []
    for _ in range(count):
        with httpx.Client() as http:  # a new connection each time
            statuses.append(http.get(url).status_code)
    return statuses


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    make_share(daemon, "team", {"alice": "rw"}, s3=True)
    r = daemon.api.post("/users/alice/s3-keys")
    assert r.status_code == 201, r.text
    return {"key": r.json()}


@pytest.fixture
def alice(daemon: Daemon, world: dict[str, Any]) -> Iterator[Any]:
    s3 = client(daemon, world["key"])
    yield s3
    s3.close()


def test_s3_is_served_by_one_worker_per_core(daemon: Daemon, world: dict[str, Any]) -> None:
    expected = min(os.cpu_count() or 1, 8)
    assert len(wait_for(lambda: len(workers_of(daemon)) == expected and workers_of(daemon))) == (
        expected
    )


def test_every_worker_sees_a_revoked_grant_at_once(
    daemon: Daemon, world: dict[str, Any], alice: Any
) -> None:
    alice.put_object(Bucket="team", Key="plan.txt", Body=b"the plan")
    url = alice.generate_presigned_url(
        "get_object", Params={"Bucket": "team", "Key": "plan.txt"}, ExpiresIn=300
    )
    assert fresh_gets(url, 16) == [200] * 16
    r = daemon.api.delete("/shares/team/grants/user/alice")
    assert r.status_code in (200, 204), r.text
    try:
        assert fresh_gets(url, 16) == [404] * 16  # NoSuchBucket: no grant, no bucket
    finally:
        grant(daemon, "team", "alice", "rw")
    assert fresh_gets(url, 16) == [200] * 16


def test_bucket_changes_are_relayed_to_the_daemon(daemon: Daemon, alice: Any) -> None:
    """CreateBucket and DeleteBucket (shares, smb.conf) and the bucket settings are the
    daemon's; over a worker they reach it with the body and the signature intact."""
    make_user(daemon, "boss", admin=True, file_access=True)
    boss_key = daemon.api.post("/users/boss/s3-keys")
    assert boss_key.status_code == 201, boss_key.text
    boss = client(daemon, boss_key.json())
    try:
        boss.create_bucket(Bucket="relayed")
        assert daemon.api.get("/shares/relayed").status_code == 200
        boss.put_bucket_tagging(
            Bucket="relayed", Tagging={"TagSet": [{"Key": "team", "Value": "ops"}]}
        )
        assert boss.get_bucket_tagging(Bucket="relayed")["TagSet"] == [
            {"Key": "team", "Value": "ops"}
        ]
        boss.delete_bucket(Bucket="relayed")
        assert daemon.api.get("/shares/relayed").status_code == 404
    finally:
        boss.close()


def test_a_worker_that_dies_is_started_again(daemon: Daemon, alice: Any) -> None:
    before = wait_for(lambda: workers_of(daemon))
    os.kill(before[0], signal.SIGKILL)
    after = wait_for(
        lambda: (w := workers_of(daemon)) and before[0] not in w and len(w) == len(before) and w
    )
    assert before[0] not in after
    alice.put_object(Bucket="team", Key="after.txt", Body=b"still here")
    assert alice.get_object(Bucket="team", Key="after.txt")["Body"].read() == b"still here"


def test_workers_end_with_a_killed_daemon_and_a_restart_serves_again(
    fresh_daemon: Daemon,
) -> None:
    pids = wait_for(lambda: workers_of(fresh_daemon))
    fresh_daemon.kill9()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), timeout=15)
    fresh_daemon.start()
    wait_for(lambda: workers_of(fresh_daemon))
    r = httpx.get(f"http://127.0.0.1:{fresh_daemon.s3_port}/")
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text  # served, unsigned


def test_the_daemon_serves_s3_itself_with_no_workers(tmp_path: Path) -> None:

    d = Daemon(_base())
    d.env["SPEICHER_S3_WORKERS"] = "0"
    try:
        d.start()
        assert workers_of(d) == []
        r = httpx.get(f"http://127.0.0.1:{d.s3_port}/")
        assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text
    finally:
        d.cleanup()
