"""The console and the file manager in a real headless Chromium, in German and in English: an
admin logs in and watches a scrub's bar finish on the dashboard; a user logs in, uploads a
file with the progress bar, sees it listed, downloads it and switches the language. Every
page is saved as a screenshot (make test prints where)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from browser import LOCALES, Browser, Locale, shot

from speicher_testing import ADMIN_PASSWORD, Daemon
from world import make_pool, make_share, make_user, password

pytestmark = [pytest.mark.system, pytest.mark.browser]

TEXT = {
    "de-DE": {"login": "Anmelden", "overview": "Übersicht", "shares": "Ihre Freigaben",
              "done": "hochgeladen", "finished": "fertig", "other": "English",
              "other_h1": "Your shares"},
    "en-US": {"login": "Log in", "overview": "Overview", "shares": "Your shares",
              "done": "uploaded", "finished": "finished", "other": "Deutsch",
              "other_h1": "Ihre Freigaben"},
}  # fmt: skip


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> dict[str, Any]:
    make_pool(daemon)
    make_user(daemon, "alice")
    return {"docs": make_share(daemon, "docs", {"alice": "rw"})}


def log_in(page: Any, locale: Locale, user: str, secret: str) -> None:
    page.goto("/")
    assert page.locator("h1").inner_text() in ("Bei Speicher anmelden", "Log in to Speicher")
    page.get_by_label("Benutzername" if locale == "de-DE" else "User name").fill(user)
    page.get_by_label("Passwort" if locale == "de-DE" else "Password").fill(secret)
    page.get_by_role("button", name=TEXT[locale]["login"]).click()


@pytest.mark.parametrize("locale", LOCALES)
def test_an_admin_watches_a_scrub_finish_on_the_dashboard(
    daemon: Daemon, world: dict[str, Any], chromium: Browser, locale: Locale
) -> None:
    page = chromium.new_page(locale, base_url=daemon.https_url)
    page.goto("/login")
    shot(page, f"web/{locale}-login")
    log_in(page, locale, "admin", ADMIN_PASSWORD)
    page.wait_for_url("**/console/")
    assert page.locator("h1").inner_text() == TEXT[locale]["overview"]
    assert page.get_by_text("tank").first.is_visible()
    job = daemon.api.post("/pools/tank/scrub")
    assert job.status_code == 202, job.text
    # the dashboard polls the jobs: the scrub's bar appears and ends full, marked finished
    done = page.locator("#jobs li[data-state=succeeded]", has_text="scrub")
    done.first.wait_for(timeout=60_000)
    assert done.first.locator("progress").get_attribute("value") == "100"
    assert TEXT[locale]["finished"] in done.first.inner_text()
    shot(page, f"web/{locale}-dashboard")
    page.context.close()


@pytest.mark.parametrize("locale", LOCALES)
def test_a_user_uploads_downloads_and_switches_language(
    daemon: Daemon, world: dict[str, Any], chromium: Browser, locale: Locale, tmp_path: Path
) -> None:
    page = chromium.new_page(locale, base_url=daemon.https_url)
    log_in(page, locale, "alice", password("alice"))
    page.wait_for_url("**/files/")
    assert page.locator("h1").inner_text() == TEXT[locale]["shares"]
    shot(page, f"web/{locale}-shares")
    page.get_by_role("link", name="docs").click()
    page.wait_for_url("**/files/docs/")
    name = f"Bericht {locale} ä.bin"
    body = os.urandom(9 * 1024 * 1024 + 123)  # two pieces of the upload, an unaligned end
    source = tmp_path / name
    source.write_bytes(body)
    page.locator("#upload-files").set_input_files(str(source))
    row = page.locator("#uploads li").first
    row.wait_for()
    page.locator("#uploads li[data-state=done]").wait_for(timeout=60_000)
    assert TEXT[locale]["done"] in row.inner_text()
    assert (world["docs"] / name).read_bytes() == body  # the file is in the share
    page.wait_for_load_state("load")
    link = page.get_by_role("link", name=name)
    link.wait_for()  # the page reloaded after the upload and lists the file
    shot(page, f"web/{locale}-folder")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "downloaded.bin"
    download.value.save_as(saved)
    assert saved.read_bytes() == body
    # the language switch: a link back to the same page, in the other language from then on
    page.get_by_role("link", name=TEXT[locale]["other"]).click()
    page.wait_for_url("**/files/docs/")
    assert page.get_by_role("link", name=name).is_visible()
    page.goto("/files/")
    assert page.locator("h1").inner_text() == TEXT[locale]["other_h1"]
    page.context.close()
