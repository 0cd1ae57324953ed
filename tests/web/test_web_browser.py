"""The newcomer's walk in a real headless Chromium, once in German and once in English, each on
a box of its own: the first steps (a password of one's own, virtual disks, a pool with its
progress bar, a share with SMB, a user with a grant), then that user logs in, uploads a file
with the progress bar, downloads it, restores an earlier version from a snapshot, and the
admin scrubs the pool and watches the bar finish. Every page is saved as a screenshot (make
test prints where)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from browser import LOCALES, Browser, Locale, shot

from speicher_testing import Daemon
from world import make_user, password

pytestmark = [pytest.mark.system, pytest.mark.browser]

PIECE = 8 * 1024 * 1024  # what app.js sends at a time

T = {
    "de-DE": {
        "user": "Benutzername", "password": "Passwort", "login": "Anmelden", "logout": "Abmelden",
        "overview": "Übersicht", "first": "Noch kein Pool", "new_pw": "Neues Passwort",
        "again": "Dasselbe Passwort noch einmal", "change": "Passwort ändern",
        "disk_name": "Name des virtuellen Datenträgers", "disk_size": "Größe (zum Beispiel 10G)",
        "make_disk": "Virtuellen Datenträger anlegen", "pool_name": "Name des Pools",
        "create_pool": "Pool anlegen", "share_name": "Name der Freigabe",
        "create_share": "Freigabe anlegen", "create_user": "Benutzer anlegen",
        "shares": "Ihre Freigaben", "done": "hochgeladen", "finished": "fertig",
        "versions": "Versionen", "restore": "Wiederherstellen", "pools": "Pools und Datenträger",
        "scrub": "Jetzt prüfen", "other": "English", "other_h1": "Your shares",
    },
    "en-US": {
        "user": "User name", "password": "Password", "login": "Log in", "logout": "Log out",
        "overview": "Overview", "first": "No pool yet", "new_pw": "New password",
        "again": "The same password again", "change": "Change password",
        "disk_name": "Name of the virtual disk", "disk_size": "Size (for example 10G)",
        "make_disk": "Make virtual disk", "pool_name": "Pool name", "create_pool": "Create pool",
        "share_name": "Share name", "create_share": "Create share", "create_user": "Create user",
        "shares": "Your shares", "done": "uploaded", "finished": "finished",
        "versions": "Versions", "restore": "Restore", "pools": "Pools and disks",
        "scrub": "Scrub now", "other": "Deutsch", "other_h1": "Ihre Freigaben",
    },
}  # fmt: skip


def log_in(page: Any, t: dict[str, str], user: str, secret: str) -> None:
    page.goto("/")
    page.get_by_label(t["user"], exact=True).fill(user)
    page.get_by_label(t["password"], exact=True).fill(secret)
    page.get_by_role("button", name=t["login"]).click()


def log_out(page: Any, t: dict[str, str]) -> None:
    page.get_by_role("button", name=t["logout"]).click()
    page.wait_for_url("**/login")


def upload(page: Any, source: Path) -> None:
    """Upload with the page's file input; wait for its bar to end and the page to list it."""
    page.locator("#upload-files").set_input_files(str(source))
    page.locator("#uploads li").first.wait_for()
    page.locator("#uploads li[data-state=done]").wait_for(timeout=60_000)
    page.get_by_role("link", name=source.name, exact=True).wait_for()  # listed after reload


@pytest.mark.parametrize("locale", LOCALES)
def test_a_newcomer_sets_up_the_box_and_a_user_works_with_files(
    fresh_daemon: Daemon, chromium: Browser, locale: Locale, tmp_path: Path
) -> None:
    daemon, t = fresh_daemon, T[locale]
    make_user(daemon, "boss", admin=True)  # the box's admin (the test client keeps admin's)
    page = chromium.new_page(locale, base_url=daemon.https_url)
    page.goto("/login")
    shot(page, f"walk/{locale}-01-login")
    log_in(page, t, "boss", password("boss"))
    page.wait_for_url("**/console/")
    shot(page, f"walk/{locale}-02-dashboard-empty")
    page.get_by_role("link", name=t["first"]).click()
    page.wait_for_url("**/console/setup/")

    # 1. a password of one's own
    page.get_by_label(t["new_pw"], exact=True).fill("a-new-secret-77")
    page.get_by_label(t["again"], exact=True).fill("a-new-secret-77")
    page.get_by_role("button", name=t["change"]).click()
    page.wait_for_url("**/console/setup/?done=password")
    # 2. virtual disks
    for name in ("v1", "v2"):
        page.get_by_label(t["disk_name"], exact=True).fill(name)
        page.get_by_label(t["disk_size"], exact=True).fill("3G")
        page.get_by_role("button", name=t["make_disk"]).click()
        page.wait_for_url("**/console/setup/?done=disk")
    shot(page, f"walk/{locale}-03-setup-disks")
    # 3. the pool: its job's bar fills and ends
    page.get_by_label(t["pool_name"], exact=True).fill("tank")
    page.get_by_label("v1 ").check()
    page.get_by_label("v2 ").check()
    page.get_by_role("button", name=t["create_pool"]).click()
    page.wait_for_url("**/console/setup/?done=pool")
    finished = page.locator("#jobs li[data-state=succeeded]", has_text="pool.create")
    finished.wait_for(timeout=120_000)
    assert finished.locator("progress").get_attribute("value") == "100"
    assert daemon.api.get("/pools/tank").json()["profile"] == "raid1"
    page.reload()  # the pool is a choice for the share now
    # 4. a share over SMB, 5. a user who may write in it
    page.get_by_label(t["share_name"], exact=True).fill("docs")
    page.get_by_role("button", name=t["create_share"]).click()
    page.wait_for_url("**/console/setup/?done=share")
    assert daemon.api.get("/shares/docs").json()["smb"]["enabled"] is True
    form = page.locator("form", has=page.get_by_role("button", name=t["create_user"]))
    form.get_by_label(t["user"], exact=True).fill("anna")
    form.get_by_label(t["password"], exact=True).fill(password("anna"))
    form.get_by_role("button", name=t["create_user"]).click()
    page.wait_for_url("**/console/setup/?done=user")
    shot(page, f"walk/{locale}-04-setup-done")
    grants = daemon.api.get("/shares/docs").json()["grants"]
    assert grants == [{"principal": "user", "name": "anna", "access": "rw"}]
    log_out(page, t)

    # the user: upload with the bar, download, restore an earlier version
    log_in(page, t, "anna", password("anna"))
    page.wait_for_url("**/files/")
    assert page.locator("h1").inner_text() == t["shares"]
    page.get_by_role("link", name="docs", exact=True).click()
    page.wait_for_url("**/files/docs/")
    source = tmp_path / "Angebot 2027 ä.bin"
    first = os.urandom(9 * 1024 * 1024 + 123)  # two pieces of the upload, an unaligned end
    source.write_bytes(first)
    dropped: list[str] = []

    def drop_second_piece(route: Any) -> None:
        """The connection of the second piece breaks, once: the upload must resume."""
        request = route.request
        second = request.headers.get("x-upload-offset") == str(PIECE)
        if request.method == "PUT" and second and not dropped:
            dropped.append(request.url)
            route.abort("connectionreset")
            return
        route.continue_()

    page.route("**/files/docs/**", drop_second_piece)
    upload(page, source)
    page.unroute("**/files/docs/**")
    assert dropped  # the piece was cut off, and the file is whole all the same
    shot(page, f"walk/{locale}-05-folder")
    assert (daemon.mount_root / "tank" / "docs" / source.name).read_bytes() == first
    with page.expect_download() as download:
        page.get_by_role("link", name=source.name, exact=True).click()
    saved = tmp_path / "downloaded.bin"
    download.value.save_as(saved)
    assert saved.read_bytes() == first
    assert daemon.api.post("/shares/docs/snapshots", json={}).status_code == 201
    source.write_bytes(b"a newer, shorter offer\n")
    upload(page, source)
    page.get_by_role("link", name=f"{t['versions']}").first.click()
    page.wait_for_url("**?versions")
    shot(page, f"walk/{locale}-06-versions")
    page.once("dialog", lambda dialog: dialog.accept())  # "Restore ...?"
    page.get_by_role("button", name=t["restore"]).click()
    page.wait_for_url("**/files/docs/")
    assert (daemon.mount_root / "tank" / "docs" / source.name).read_bytes() == first
    # the other language, from the switch in the header
    page.get_by_role("link", name=t["other"]).click()
    page.goto("/files/")
    assert page.locator("h1").inner_text() == T[locale]["other_h1"]
    page.get_by_role("link", name=T["en-US" if locale == "de-DE" else "de-DE"]["other"]).click()
    log_out(page, t)

    # the admin scrubs the pool and watches the bar finish
    log_in(page, t, "boss", "a-new-secret-77")
    page.wait_for_url("**/console/")
    page.locator("#live[data-samples]").wait_for(timeout=15_000)  # the live chart draws
    assert page.locator("#live-chart polyline.read").get_attribute("points")
    shot(page, f"walk/{locale}-07-dashboard")
    page.get_by_role("link", name=t["pools"]).click()
    page.get_by_role("button", name=t["scrub"]).click()
    page.wait_for_url("**/console/pools/?done=scrub")
    done = page.locator("#jobs li[data-state=succeeded]", has_text="pool.scrub")
    done.wait_for(timeout=120_000)
    assert t["finished"] in done.inner_text()
    page.reload()
    shot(page, f"walk/{locale}-08-pools-scrubbed")
    page.context.close()
