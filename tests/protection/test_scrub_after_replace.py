"""Disk loss, then a scrub: a raid1 pool loses a disk; a scrub of the degraded pool checks
what is left and says which disk it could not check; the disk is replaced, the rebuild
finishes, the pool is ok, and a scrub finds no errors on either disk."""

from __future__ import annotations

from typing import Any

import pytest

from scenario_data import (
    build_world,
    check_world,
    pull_disk,
    replace_missing_disk,
    write_while_degraded,
)
from speicher_testing import Daemon

pytestmark = pytest.mark.system


def scrub(daemon: Daemon) -> dict[str, Any]:
    job = daemon.api.post("/pools/tank/scrub")
    assert job.status_code == 202, job.text
    done = daemon.wait_job(job.json())
    assert done["state"] == "succeeded", done
    latest: dict[str, Any] = daemon.api.get("/pools/tank/scrubs").json()[0]
    assert latest["job_id"] == done["id"] and latest["state"] == "finished", latest
    latest["job_message"] = done["message"]
    return latest


def test_scrub_of_a_degraded_pool_and_after_the_replacement(fresh_daemon: Daemon) -> None:
    daemon = fresh_daemon
    world = build_world(daemon, disks=("d1", "d2"))
    clean = scrub(daemon)
    assert clean["errors_found"] == 0 and clean["bytes_checked"] > 0

    pull_disk(daemon, "d2")
    daemon.start()
    check_world(daemon, world, health="degraded")
    health = {d["disk"]: d for d in daemon.api.get("/disks/health").json()}
    assert health["d2"]["state"] == "missing" and health["d2"]["device"] == ""
    assert health["d1"]["state"] == "ok"

    # the degraded pool: what is there is checked, the missing disk is named
    degraded = scrub(daemon)
    assert degraded["errors_found"] == 0
    assert "missing, not checked: d2" in degraded["job_message"]
    assert 0 < degraded["bytes_checked"] <= clean["bytes_checked"]
    assert daemon.api.get("/pools/tank").json()["health"] == "degraded"

    write_while_degraded(world)

    replace_missing_disk(daemon, world)

    after = scrub(daemon)
    assert after["errors_found"] == 0
    assert after["errors_corrected"] == after["errors_uncorrectable"] == 0
    assert "missing" not in after["job_message"]
    # every block has two copies again: the scrub reads more than the degraded one did
    assert after["bytes_checked"] > degraded["bytes_checked"]
    health = {d["disk"]: d for d in daemon.api.get("/disks/health").json()}
    assert set(health) == {"d1", "d3"}
    assert {d["state"] for d in health.values()} == {"ok"}
    assert daemon.api.get("/pools/tank").json()["health"] == "ok"
    check_world(daemon, world, health="ok")
    scrubs = daemon.api.get("/pools/tank/scrubs").json()
    assert [s["id"] for s in scrubs] == sorted((s["id"] for s in scrubs), reverse=True)
    assert len(scrubs) == 3
