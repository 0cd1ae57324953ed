"""Numbers out of range in a request are the caller's error (404/422 problem documents),
never a 500: SQLite's integers are 64 bits, and a float of 400 digits is infinite."""

from __future__ import annotations

from typing import Any

import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system

TOO_BIG = "99999999999999999999999"  # > 2**63 - 1


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["detail"]
    return body


def test_integer_path_and_query_parameters_are_bounded(daemon: Daemon) -> None:
    api = daemon.api
    for path in (f"/jobs/{TOO_BIG}", "/jobs/0", "/jobs/-1"):
        body = problem(api.get(path), 422)
        assert [e["field"] for e in body["errors"]] == ["job_id"], body
    problem(api.get(f"/jobs/{2**63 - 1}"), 404)  # the largest id there can be: not found
    for path in ("/jobs", "/events", "/pools/tank/scrubs"):
        body = problem(api.get(path, params={"limit": TOO_BIG}), 422)
        assert [e["field"] for e in body["errors"]] == ["limit"], body


def test_a_number_too_large_anywhere_is_invalid_input_not_a_crash(daemon: Daemon) -> None:
    # "999...9" of 400 digits is an infinite float: int() of it raises OverflowError
    r = daemon.api.post("/disks/virtual", json={"name": "huge", "size": "9" * 400})
    body = problem(r, 422)
    assert "out of range" in body["detail"] or "size" in {e["field"] for e in body["errors"]}
    assert daemon.api.get("/disks").status_code == 200
    assert "huge" not in {d["name"] for d in daemon.api.get("/disks").json()}
