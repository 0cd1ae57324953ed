"""Share links in a real headless Chromium, in German and in English: a user makes a link with
a password to a folder from the file manager and copies it; someone without an account opens
it, gives the password, browses and downloads a file; the user makes a file request with a size
limit, and the outsider sends a file with the progress bar. Every page is a screenshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import LOCALES, Browser, shot

from speicher_testing import Daemon
from world import make_pool, make_share, make_user, password

pytestmark = [pytest.mark.system, pytest.mark.browser]

SECRET = "correct horse battery"
T = {
    "de-DE": {
        "user": "Benutzername", "password": "Passwort", "login": "Anmelden",
        "optional": "Passwort (optional)", "until": "Gültig bis (optional)",
        "make": "Link erstellen", "ready": "Der Link ist fertig", "open": "Öffnen",
        "upload": "Hochladen (Dateianfrage)", "limit": "Größengrenze",
        "send": "Dateien schicken", "done": "hochgeladen", "links": "Freigabelinks",
        "revoke": "Widerrufen", "gone": "Link nicht gefunden",
    },
    "en-US": {
        "user": "User name", "password": "Password", "login": "Log in",
        "optional": "Password (optional)", "until": "Valid until (optional)",
        "make": "Make the link", "ready": "The link is ready", "open": "Open",
        "upload": "Upload (file request)", "limit": "Size limit",
        "send": "Send files", "done": "uploaded", "links": "Share links",
        "revoke": "Revoke", "gone": "Link not found",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Path]:
    make_pool(daemon)
    make_user(daemon, "alice")
    docs = make_share(daemon, "docs", {"alice": "rw"})
    for locale in LOCALES:
        (docs / locale / "reports").mkdir(parents=True)
        (docs / locale / "reports" / "summary.txt").write_text(f"summary {locale}")
        (docs / locale / "inbox").mkdir()
    return {"docs": docs}


def test_a_link_made_in_the_file_manager_is_opened_by_an_outsider(
    daemon: Daemon, world: dict[str, Path], chromium: Browser, tmp_path: Path
) -> None:
    for locale in LOCALES:
        t = T[locale]
        page = chromium.new_page(locale, base_url=daemon.https_url)
        page.goto("/login")
        page.get_by_label(t["user"], exact=True).fill("alice")
        page.get_by_label(t["password"], exact=True).fill(password("alice"))
        page.get_by_role("button", name=t["login"]).click()
        page.wait_for_url("**/files/")
        page.goto(f"/files/docs/{locale}/")
        shot(page, f"links/{locale}-01-folder")
        # a download link with a password
        page.locator('a.share[href*="reports"]').click()
        page.wait_for_url("**/links/new?*")
        shot(page, f"links/{locale}-02-form")
        page.get_by_label(t["optional"], exact=True).fill(SECRET)
        page.get_by_role("button", name=t["make"]).click()
        page.get_by_role("heading", name=t["ready"]).wait_for()
        shot(page, f"links/{locale}-03-made")
        url = page.locator("#url").input_value()
        assert "/s/" in url
        # someone without an account: the password, the listing, a download
        guest = chromium.new_page(locale)
        guest.goto(url)
        shot(guest, f"links/{locale}-04-password")
        guest.get_by_label(t["password"], exact=True).fill(SECRET)
        guest.get_by_role("button", name=t["open"]).click()
        guest.get_by_role("link", name="summary.txt", exact=True).wait_for()
        shot(guest, f"links/{locale}-05-folder")
        with guest.expect_download() as download:
            guest.get_by_role("link", name="summary.txt", exact=True).click()
        saved = tmp_path / f"{locale}-summary.txt"
        download.value.save_as(saved)
        assert saved.read_text() == f"summary {locale}"
        # a file request with a size limit
        page.goto(f"/files/docs/{locale}/")
        page.locator('a.share[href*="inbox"]').click()
        page.wait_for_url("**/links/new?*")
        page.get_by_label(t["upload"]).check()
        page.get_by_label(t["limit"]).fill("1")
        page.get_by_role("button", name=t["make"]).click()
        page.get_by_role("heading", name=t["ready"]).wait_for()
        request_url = page.locator("#url").input_value()
        partner = chromium.new_page(locale)
        partner.goto(request_url)
        partner.get_by_role("heading", name=t["send"]).wait_for()
        shot(partner, f"links/{locale}-06-request")
        source = tmp_path / f"angebot-{locale}.pdf"
        source.write_bytes(b"%PDF offer " * 1000)
        partner.locator("#upload-files").set_input_files(str(source))
        partner.locator("#uploads li[data-state=done]").wait_for(timeout=60_000)
        assert t["done"] in partner.locator("#uploads li").first.inner_text()
        shot(partner, f"links/{locale}-07-sent")
        inbox = world["docs"] / locale / "inbox"
        assert (inbox / source.name).read_bytes() == source.read_bytes()
        # the user's list of links, and a revoked link is gone
        page.get_by_role("link", name=t["links"], exact=True).click()
        page.wait_for_url("**/links/")
        shot(page, f"links/{locale}-08-list")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name=t["revoke"]).first.click()
        page.wait_for_url("**/links/")
        partner.goto(request_url)
        partner.get_by_role("heading", name=t["gone"]).wait_for()
        shot(partner, f"links/{locale}-09-gone")
