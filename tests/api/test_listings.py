"""Listings as a crowd gets them (cached, and for tokens sent by the fast lane in front of the
routes): every client reads its own writes at once, and a refused token stays refused."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return [item["name"] for item in response.json()]


@pytest.fixture(scope="module")
def token(daemon: Daemon) -> str:
    api = daemon.api
    assert api.post("/disks/virtual", json={"name": "l1", "size": "1G"}).status_code == 201
    job = api.post("/pools", json={"name": "lists", "profile": "single", "disks": ["l1"]})
    assert daemon.wait_job(job.json())["state"] == "succeeded"
    created: dict[str, Any] = api.post("/tokens", json={"name": "crowd"}).json()
    return str(created["token"])


def bearer(daemon: Daemon, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{daemon.url}/api/v1",
        headers={"Authorization": f"Bearer {token}", "X-Speicher-Request": "1"},
        timeout=60,
    )


def test_changes_show_at_once_in_cached_listings(daemon: Daemon, token: str) -> None:
    """A crowd keeps the listings cached; whoever changes something sees it in the very next
    listing, and so does everyone else."""
    stop = threading.Event()
    seen_errors: list[str] = []

    def crowd() -> None:
        with bearer(daemon, token) as c:
            while not stop.is_set():
                for path in ("/shares", "/pools"):
                    r = c.get(path)
                    if r.status_code != 200:
                        seen_errors.append(r.text)

    threads = [threading.Thread(target=crowd) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        with bearer(daemon, token) as c:
            for i in range(5):
                name = f"crowd-{i}"
                r = daemon.api.post("/shares", json={"name": name, "pool": "lists"})
                assert r.status_code == 201, r.text
                assert name in names(c.get("/shares"))
                assert name in c.get("/pools").json()[0]["shares"]
                r = daemon.api.patch(f"/shares/{name}", json={"description": f"take {i}"})
                assert r.status_code == 200, r.text
                listed = {s["name"]: s for s in c.get("/shares").json()}
                assert listed[name]["description"] == f"take {i}"
                assert daemon.api.delete(f"/shares/{name}").status_code == 204
                assert name not in names(c.get("/shares"))
                assert name not in c.get("/pools").json()[0]["shares"]
            # the fast lane and the routes send the same listing
            assert c.get("/shares").json() == c.get("/shares", params={"pool": "lists"}).json()
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert seen_errors == []


def test_a_deleted_token_is_refused_at_once_by_the_fast_lane(daemon: Daemon, token: str) -> None:
    created = daemon.api.post("/tokens", json={"name": "brief-crowd"}).json()
    with bearer(daemon, created["token"]) as c:
        for _ in range(3):  # cached now: listing and token
            assert names(c.get("/pools")) == ["lists"]
        assert daemon.api.delete("/tokens/brief-crowd").status_code == 204
        r = c.get("/pools")
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with bearer(daemon, forged) as c:
        assert c.get("/pools").status_code == 401
    with httpx.Client(base_url=f"{daemon.url}/api/v1", timeout=60) as anonymous:
        assert anonymous.get("/pools").status_code == 401
