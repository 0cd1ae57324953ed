"""Wrong passwords at the web login lock the login out, as over the API, WebDAV and SFTP (one
throttle for all): then even the right password gets 429, and the lockout is an event."""

from __future__ import annotations

import pytest
from web_helpers import browser, field, log_in

from speicher.access.throttle import Policy
from speicher_testing import Daemon
from world import make_user, password

pytestmark = pytest.mark.system


def test_wrong_passwords_lock_the_login_out(daemon: Daemon) -> None:
    make_user(daemon, "mallory")
    client = browser(daemon, "de")
    assert log_in(client, "mallory", password("mallory")).status_code == 303  # it works
    attempts = Policy().limit
    for _ in range(attempts):
        r = log_in(browser(daemon), "mallory", "wrong-password")
        assert r.status_code == 401, r.text
    locked = log_in(client, "mallory", password("mallory"))
    assert locked.status_code == 429
    assert "Zu viele falsche Passwörter" in locked.text
    assert field(locked.text, "nonce")  # the form is there to try again later
    # the address is locked out too, for every password login (the API's Basic logins of
    # this test client as well): the event is read from the daemon's log
    assert "auth.lockout mallory:" in daemon.log()
