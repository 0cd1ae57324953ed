"""Every page of the console and the file manager, in German and in English, checked in a real
headless Chromium by axe-core (the rules of WCAG 2.0, 2.1 and 2.2 at levels A and AA: contrast,
labels, names of buttons and links, landmarks, headings, lang, ...), on a desktop screen and
on a phone-sized one, where no page may scroll sideways. Each page's screenshot is kept.

axe-core's script comes from the pinned ``axe-playwright-python`` package (which ships it); it
is injected through the DevTools protocol, which the pages' CSP does not govern, so the pages
are checked with their real CSP and nothing in them changes for the test."""

from __future__ import annotations

import importlib.resources
import json
import re
from typing import Any

import pytest
from browser import LOCALES, Browser, Locale, shot

from speicher_testing import Daemon
from world import make_pool, make_share, make_user, password

pytestmark = [pytest.mark.system, pytest.mark.browser]

AXE = (importlib.resources.files("axe_playwright_python") / "axe.min.js").read_text()
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PHONE = {"width": 375, "height": 740}

ADMIN_PAGES = [
    "/console/",
    "/console/setup/",
    "/console/pools/",
    "/console/shares/",
    "/console/snapshots/?share=docs",
    "/console/users/",
    "/console/groups/",
    "/console/users/alice/keys/",
    "/console/tokens/",
    "/console/replication/",
    "/console/backup/",
    "/console/events/",
    "/console/alerts/",
    "/console/system/",
    "/account/",
    "/files/",
    "/files/docs/",
    "/files/docs/reports/summary.txt?versions",
    "/links/",
    "/links/new?share=docs&path=reports&folder=1",
]


def audit(page: Any) -> list[str]:
    """What axe finds wrong with the page as it is: one line per rule broken, with where."""
    page.evaluate(AXE)
    options = {"runOnly": {"type": "tag", "values": RULES}, "resultTypes": ["violations"]}
    found = page.evaluate(f"axe.run(document, {json.dumps(options)})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in found["violations"]
    ]


def wider_than_the_screen(page: Any) -> str:
    """What makes the page wider than its viewport (empty: no sideways scrolling): the excess
    and the innermost elements that reach past the screen's right edge."""
    return str(
        page.evaluate(
            """() => {
            const extra = document.documentElement.scrollWidth - window.innerWidth;
            if (extra <= 0) return "";
            const out = e => e.getBoundingClientRect().right > window.innerWidth + 1;
            const past = [...document.querySelectorAll("body *")].filter(e =>
                out(e) && ![...e.children].some(out));
            const classes = e => typeof e.className === "string" && e.className
                ? "." + e.className.split(" ").join(".") : "";
            const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + classes(e);
            return `${extra} px wider than a 375 px screen: ` +
                past.slice(0, 4).map(e => name(e.parentElement) + " > " + name(e)).join(", ");
        }"""
        )
    )


def check(page: Any, name: str, problems: dict[str, list[str]]) -> None:
    page.wait_for_load_state("load")
    found = audit(page)
    page.set_viewport_size(PHONE)
    found += [f"phone: {line}" for line in audit(page)]
    if extra := wider_than_the_screen(page):
        found.append(f"phone: the page is {extra}")
    shot(page, f"{name}-phone")
    page.set_viewport_size({"width": 1280, "height": 800})
    shot(page, name)
    if found:
        problems[name] = found


@pytest.fixture(scope="module")
def world(daemon: Daemon) -> None:
    make_pool(daemon)
    make_user(daemon, "alice")
    make_user(daemon, "boss", admin=True, file_access=True)
    docs = make_share(daemon, "docs", {"alice": "rw", "boss": "rw"})
    (docs / "reports").mkdir()
    (docs / "reports" / "summary.txt").write_text("the first words")
    r = daemon.api.post("/shares/docs/snapshots", json={})
    assert r.status_code == 201, r.text
    (docs / "reports" / "summary.txt").write_text("the words now")
    policy = {"name": "hourly", "schedule": "0 * * * *", "keep_hourly": 24}
    assert daemon.api.post("/shares/docs/policies", json=policy).status_code == 201
    assert daemon.api.post("/groups", json={"name": "office"}).status_code == 201


def log_in(page: Any, user: str) -> None:
    page.goto("/login")
    page.locator("#user").fill(user)
    page.locator("#password").fill(password(user))
    page.locator("form button[type=submit]").click()
    page.wait_for_load_state("load")
    assert not page.url.endswith("/login"), f"{user} could not log in"


@pytest.mark.parametrize("locale", LOCALES)
def test_every_page_passes_wcag_aa_on_desktop_and_phone(
    daemon: Daemon, world: None, chromium: Browser, locale: Locale
) -> None:
    problems: dict[str, list[str]] = {}
    page = chromium.new_page(locale, base_url=daemon.https_url)
    page.goto("/login")
    check(page, f"a11y/{locale}-login", problems)
    log_in(page, "boss")
    for path in ADMIN_PAGES:
        answer = page.goto(path)
        assert answer is not None and answer.status == 200, f"{path}: {answer and answer.status}"
        check(page, f"a11y/{locale}-{_name(path)}", problems)
    # a share link: made in the page, then opened by someone without an account
    page.goto("/links/new?share=docs&path=reports&folder=1")
    page.locator("form[action='/links/'] button[type=submit]").click()
    page.wait_for_load_state("load")
    check(page, f"a11y/{locale}-link-made", problems)
    url = page.locator("#url").input_value()
    outsider = chromium.new_page(locale, base_url=daemon.https_url)
    outsider.goto(url)
    check(outsider, f"a11y/{locale}-link-folder", problems)
    outsider.goto(f"{daemon.https_url}/s/not-a-link-at-all")
    check(outsider, f"a11y/{locale}-link-missing", problems)
    outsider.context.close()
    # the form's problems next to their fields are accessible too
    page.goto("/console/users/")
    page.locator("#f-user-name").fill("Bad Name!")
    page.locator("#f-user-password").fill("short")
    page.locator("#f-user-password").press("Enter")
    page.wait_for_load_state("load")
    assert page.locator("[aria-invalid=true]").count() == 2
    check(page, f"a11y/{locale}-users-refused", problems)
    page.context.close()
    assert problems == {}, "\n".join(
        f"{name}:\n  " + "\n  ".join(lines) for name, lines in problems.items()
    )


def test_the_keyboard_reaches_every_control_with_a_visible_focus(
    daemon: Daemon, world: None, chromium: Browser
) -> None:
    """Tab walks the shares page from the skip link on: every link, button and field it meets
    shows a focus ring (an outline or a box shadow), and the skip link leads to the content."""
    page = chromium.new_page("en-US", base_url=daemon.https_url)
    log_in(page, "boss")
    page.goto("/console/shares/")
    page.keyboard.press("Tab")
    first = page.evaluate("document.activeElement.textContent")
    assert first.strip() == "Skip to content"
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    seen = 0
    for _ in range(40):
        page.keyboard.press("Tab")
        focus = page.evaluate(
            """() => { const e = document.activeElement, s = getComputedStyle(e);
            const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
            return {tag: e.tagName, ring: outline || s.boxShadow !== 'none'}; }"""
        )
        if focus["tag"] == "BODY":
            break
        assert focus["ring"], f"{focus['tag']} gets the focus without a visible ring"
        seen += 1
    assert seen >= 20  # the page's filter, settings, grants and delete forms
    page.context.close()


def _name(path: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")
    return name or "home"
