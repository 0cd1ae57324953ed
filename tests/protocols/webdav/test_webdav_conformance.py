"""The shared file semantics (tests/files/conformance.py) over WebDAV, with an httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance import Conformance, FileClient, Refused, World
from dav_helpers import DavFiles, make_pool, make_share, make_user, set_enabled

from speicher_testing import Daemon

pytestmark = pytest.mark.system

USERS = {"rw": "rita", "ro": "otto", "none": "nora", "disabled": "dora"}
QUOTA = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def folders(daemon: Daemon) -> dict[str, Path]:
    make_pool(daemon)
    for user in USERS.values():
        make_user(daemon, user)
    grants = {"rita": "rw", "otto": "ro", "dora": "rw"}
    made = {
        "main": make_share(daemon, "main", grants),
        "other": make_share(daemon, "other", {"rita": "rw"}),
        "small": make_share(daemon, "small", {"rita": "rw"}, quota=str(QUOTA)),
    }
    set_enabled(daemon, "dora", False)
    return made


class TestWebDav(Conformance):
    @pytest.fixture
    def world(self, daemon: Daemon, folders: dict[str, Path]) -> Iterator[World]:
        def connect(role: str, share: str) -> FileClient:
            client = DavFiles(daemon, USERS[role], share)
            if role == "disabled":
                r = client.http.request("PROPFIND", client.base, headers={"Depth": "0"})
                if r.status_code == 401:
                    client.close()
                    raise Refused("denied", "401")
            return client

        world = World(connect=connect, folder=folders.__getitem__, quota=QUOTA)
        yield world
        for client in world.made:
            client.close()
