"""Wrong WebDAV passwords go through the API's throttle: ten from one address lock it (429
with Retry-After, one auth.lockout event), for the API's password logins too, while a login
remembered from the last minutes goes on working. A module of its own: the lockout would
stop every other module's password logins from 127.0.0.1 for a minute."""

from __future__ import annotations

import httpx
import pytest
from dav_helpers import dav, make_user, password

from speicher_testing import Daemon

pytestmark = pytest.mark.system


def test_wrong_passwords_lock_out_like_the_api(daemon: Daemon) -> None:
    for user in ("alice", "victim"):
        make_user(daemon, user)
    with dav(daemon, "alice") as alice:
        assert alice.get("/").status_code == 200  # remembered from here on
        codes = []
        for _ in range(12):
            with dav(daemon, "victim", "not-the-password") as guess:
                codes.append(guess.get("/").status_code)
        assert codes[:10] == [401] * 10, codes
        assert codes[10:] == [429, 429], codes
        with dav(daemon, "victim", "not-the-password") as guess:
            r = guess.get("/")
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert "too many wrong passwords" in r.text
        # the right password of a new login waits too: the address is locked
        with dav(daemon, "victim") as victim:
            assert victim.get("/").status_code == 429
        # ...and so does the API's password login from this address
        api = httpx.get(f"{daemon.url}/api/v1/system", auth=("admin", "admin-secret-1"), timeout=30)
        assert api.status_code == 429
        # a login checked a moment ago is remembered and keeps working
        assert alice.get("/").status_code == 200
    events = daemon.cli("event", "list", "--kind", "auth.", "--json", check=False)
    assert "auth.lockout" in events.stdout, events.stdout + events.stderr
    assert password("victim")  # the victim's own password was never guessed
