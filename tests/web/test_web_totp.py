"""Two-factor login in the browser's conversation (httpx, a real daemon): a user turns it on
from their account page (secret and recovery codes shown once), then a right password alone
opens nothing until the app's code; a recovery code works once; wrong codes lock out."""

from __future__ import annotations

import re
import time

import httpx
import pyotp
import pytest
from web_helpers import browser, field, log_in

from speicher.access.throttle import Policy
from speicher_testing import Daemon
from world import make_pool, make_share, make_user, password

pytestmark = pytest.mark.system


def code_page(client: httpx.Client, answer: httpx.Response) -> str:
    """Follow a login's answer to the code page; its CSRF token."""
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login/code")
    page = client.get(answer.headers["location"])
    assert page.status_code == 200
    return field(page.text, "csrf")


def fresh_code(secret: str, after: set[str]) -> str:
    """A code of the app not used yet: this step's, else the next step's (the server takes a
    code one step ahead, for clocks that drift), so no test waits for the clock."""
    totp = pyotp.TOTP(secret)
    for ahead in (0, 30):
        code = totp.at(time.time() + ahead)
        if code not in after:
            after.add(code)
            return code
    raise AssertionError("the codes of this step and the next are used already")


def test_two_factor_login_from_enrolment_to_lockout(daemon: Daemon) -> None:
    make_pool(daemon)
    make_user(daemon, "carla")
    make_share(daemon, "docs", {"carla": "rw"})
    client = browser(daemon, "de")
    assert log_in(client, "carla", password("carla")).status_code == 303
    page = client.get("/account/")
    assert "Anmeldung mit zwei Faktoren einrichten" in page.text
    begun = client.post("/account/", data={"csrf": field(page.text, "csrf"), "action": "begin"})
    assert begun.status_code == 200 and 'src="data:image/svg+xml' in begun.text
    match = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', begun.text)
    assert match is not None
    secret, used = match.group(1), set[str]()
    assert secret not in client.get("/account/").text  # shown once
    wrong = client.post(
        "/account/", data={"csrf": field(begun.text, "csrf"), "action": "confirm", "code": "1"}
    )
    assert wrong.status_code == 422
    done = client.post(
        "/account/",
        data={"csrf": field(begun.text, "csrf"), "action": "confirm",
              "code": fresh_code(secret, used)},
    )  # fmt: skip
    assert done.status_code == 200
    recovery = re.findall(r"<li><code>([0-9a-f-]{20})</code></li>", done.text)
    assert len(recovery) == 10
    # a right password alone: only the code page, nothing else opens
    other = browser(daemon)
    csrf = code_page(other, log_in(other, "carla", password("carla")))
    assert other.get("/files/").status_code == 303  # to the login page
    bad = other.post("/login/code", data={"csrf": csrf, "code": "000000"})
    assert bad.status_code == 401
    last = fresh_code(secret, used)
    good = other.post("/login/code", data={"csrf": csrf, "code": last})
    assert good.status_code == 303 and other.get("/files/").status_code == 200
    # the app's code is spent: the same code again does not log in another browser
    third = browser(daemon)
    csrf = code_page(third, log_in(third, "carla", password("carla")))
    assert third.post("/login/code", data={"csrf": csrf, "code": last}).status_code == 401
    # a recovery code, once
    fourth = browser(daemon)
    csrf = code_page(fourth, log_in(fourth, "carla", password("carla")))
    assert fourth.post("/login/code", data={"csrf": csrf, "code": recovery[0]}).status_code == 303
    fifth = browser(daemon)
    csrf = code_page(fifth, log_in(fifth, "carla", password("carla")))
    again = fifth.post("/login/code", data={"csrf": csrf, "code": recovery[0]})
    assert again.status_code == 401
    # wrong codes lock the second step out as wrong passwords lock the first
    for _ in range(Policy().limit - 1):
        assert fifth.post("/login/code", data={"csrf": csrf, "code": "000000"}).status_code == 401
    locked = fifth.post("/login/code", data={"csrf": csrf, "code": "000000"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert "Too many wrong codes" in locked.text
    assert "wrong codes for the second factor of user 'carla'" in daemon.log()
