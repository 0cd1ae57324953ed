"""Schedules that never come are refused, and one scheduled item that cannot run (a schedule
stored before that rule, or edited in the database) is an event, never a stop of the others:
listings still work, the other policies still take snapshots, the other pools still scrub."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system

NEVER = ("0 0 30 2 *", "0 0 31 2 *")  # 30 and 31 February


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> Iterator[None]:
    api = daemon.api
    for disk, pool in (("d1", "tank"), ("d2", "spare")):
        assert api.post("/disks/virtual", json={"name": disk, "size": "1G"}).status_code == 201
        job = api.post("/pools", json={"name": pool, "profile": "single", "disks": [disk]})
        assert daemon.wait_job(job.json())["state"] == "succeeded"
    for share in ("docs", "logs"):
        r = api.post("/shares", json={"name": share, "pool": "tank"})
        assert r.status_code == 201, r.text
    yield
    api.put("/pools/spare/scrub-schedule", json={"schedule": ""})


def invalid_schedule(r: Any) -> str:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problems = r.json()["errors"]
    assert [p["field"] for p in problems] == ["schedule"], problems
    reason: str = problems[0]["reason"]
    assert "never comes" in reason
    return reason


def test_schedules_that_never_come_are_refused_with_the_field_named(
    daemon: Daemon, world: None
) -> None:
    api = daemon.api
    for cron in NEVER:
        invalid_schedule(
            api.post("/shares/docs/policies", json={"name": "x", "schedule": cron, "keep_last": 1})
        )
        invalid_schedule(api.put("/pools/tank/scrub-schedule", json={"schedule": cron}))
    assert api.get("/shares/docs/policies").json() == []
    assert api.get("/pools/tank/scrub-schedule").json()["schedule"] == "0 3 1 * *"

    ok = {"name": "weekly", "schedule": "0 0 * * 0", "keep_last": 1}
    assert api.post("/shares/docs/policies", json=ok).status_code == 201
    invalid_schedule(api.patch("/shares/docs/policies/weekly", json={"schedule": NEVER[1]}))
    assert api.get("/shares/docs/policies/weekly").json()["schedule"] == "0 0 * * 0"
    assert api.delete("/shares/docs/policies/weekly").status_code == 204

    cli = daemon.cli("pool", "scrub-schedule", "tank", NEVER[1], check=False)
    assert cli.returncode == 2, cli
    assert cli.stderr.count("\n") == 1 and "schedule" in cli.stderr and "never" in cli.stderr


def store(daemon: Daemon, sql: str, *args: str) -> None:
    """Write to the running daemon's database behind its back, as an old version or an admin
    with sqlite3 might have."""
    with contextlib.closing(sqlite3.connect(daemon.state_dir / "speicher.db", timeout=30)) as db:
        with db:
            changed = db.execute(sql, args).rowcount
        assert changed == 1


def wait_for(what: str, check: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(1)


def events(daemon: Daemon, kind: str, subject: str) -> list[dict[str, Any]]:
    r = daemon.api.get("/events", params={"kind": kind, "limit": 1000})
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e["kind"] == kind and e["subject"] == subject]


def test_one_schedule_that_cannot_run_stops_nothing_else(daemon: Daemon, world: None) -> None:
    api = daemon.api
    for share, name, cron in (
        ("docs", "broken", "0 * * * *"),
        ("docs", "often", "* * * * *"),
        ("logs", "often", "* * * * *"),
    ):
        body = {"name": name, "schedule": cron, "keep_last": 10}
        assert api.post(f"/shares/{share}/policies", json=body).status_code == 201
    assert api.put("/pools/spare/scrub-schedule", json={"schedule": "* * * * *"}).is_success
    store(daemon, "UPDATE snapshot_policies SET schedule = ? WHERE name = 'broken'", NEVER[0])
    store(daemon, "UPDATE pools SET scrub_schedule = ? WHERE name = 'tank'", NEVER[1])

    # listings work, and say what is wrong with the one item
    listed = api.get("/snapshot-policies")
    assert listed.status_code == 200, listed.text
    by_name = {(p["share"], p["name"]): p for p in listed.json()}
    broken = by_name["docs", "broken"]
    assert broken["next_run_at"] is None and "never comes" in broken["problem"]
    assert all(
        p["next_run_at"] is not None and p["problem"] == ""
        for key, p in by_name.items()
        if key != ("docs", "broken")
    )
    shown = api.get("/shares/docs/policies/broken")
    assert shown.status_code == 200 and shown.json()["problem"] == broken["problem"]
    scrubs = api.get("/pools/tank/scrub-schedule")
    assert scrubs.status_code == 200, scrubs.text
    assert scrubs.json()["next_scrub_at"] is None and "never comes" in scrubs.json()["problem"]
    assert api.get("/pools/spare/scrub-schedule").json()["problem"] == ""

    # the others run on: both good policies take their snapshots, the other pool scrubs
    def took(share: str) -> bool:
        snaps = api.get(f"/shares/{share}/snapshots").json()
        return any(s["policy"] == "often" for s in snaps)

    wait_for("the policy of docs", lambda: took("docs"))
    wait_for("the policy of logs", lambda: took("logs"))
    wait_for("a scheduled scrub of spare", lambda: bool(api.get("/pools/spare/scrubs").json()))
    assert api.get("/pools/tank/scrubs").json() == []

    # the broken ones are each an error event, once, however many rounds the monitor ran
    time.sleep(5)  # the monitor runs every 2 s: two more rounds at least
    failed = events(daemon, "policy.failed", "docs")
    assert len(failed) == 1, failed
    assert failed[0]["level"] == "error" and "broken" in failed[0]["message"]
    assert "never comes" in failed[0]["message"]
    scrub_failed = events(daemon, "scrub.failed", "tank")
    assert len(scrub_failed) == 1, scrub_failed
    assert "never comes" in scrub_failed[0]["message"]
    assert events(daemon, "scrub.failed", "spare") == []

    # fixed through the API, the policy is back in the schedule
    fixed = api.patch("/shares/docs/policies/broken", json={"schedule": "0 * * * *"})
    assert fixed.status_code == 200 and fixed.json()["problem"] == ""
    assert fixed.json()["next_run_at"] is not None
