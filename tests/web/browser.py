"""A real headless Chromium for end-to-end tests, driven by Playwright's sync API.

Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``make test``) is the browser:
Playwright never downloads one of its own here, so its version must match Debian's (the pin in
pyproject.toml says which). One browser runs per test module (the ``chromium`` fixture in
tests/conftest.py, or ``launch()`` as a context manager); each ``new_page()`` opens a fresh
context (no cookies, no storage) in one language. ``shot()`` saves a full-page screenshot into
``artifacts_dir()``, which ``make test`` names at the end of its run.

Only this module's stdlib part is imported by tests/conftest.py: Playwright itself is loaded
when a browser is launched, so test runs without a browser pay nothing for it.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from playwright.sync_api import Browser as PlaywrightBrowser
    from playwright.sync_api import BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")

# Playwright already passes --no-sandbox (we run as root, where Chromium's sandbox refuses to
# start), --headless, a fresh --user-data-dir and --disable-background-networking,
# --disable-component-update, --disable-sync, --no-first-run, --disable-dev-shm-usage. These
# are what this machine needs on top: no GPU, and no QUIC to a network that is not there.
CHROMIUM_ARGS = ("--disable-gpu", "--disable-quic")

Locale = Literal["de-DE", "en-US"]
LOCALES: tuple[Locale, ...] = ("de-DE", "en-US")

VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000  # for every action and wait: a page that takes longer has failed

_REPO = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


def artifacts_dir() -> Path:
    """Where screenshots go: ``$SPEICHER_TEST_ARTIFACTS``, else
    ``<repo>/test-artifacts/screenshots``."""
    configured = os.environ.get("SPEICHER_TEST_ARTIFACTS")
    return Path(configured).resolve() if configured else _REPO / "test-artifacts" / "screenshots"


def shot(page: Page, name: str) -> Path:
    """Save a full-page PNG of ``page`` as ``<artifacts>/<name>.png`` and return its path.

    ``name`` may hold folders (``"setup/de-DE-disks"``); it is letters, digits, ``._-`` and ``/``
    only, so a test cannot write outside the artifacts folder.
    """
    if not _NAME.fullmatch(name) or ".." in name.split("/"):
        raise ValueError(f"bad screenshot name {name!r}: use letters, digits, '._-' and '/'")
    path = artifacts_dir() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True, animations="disabled")
    return path


def processes_of(home: str) -> set[int]:
    """The live processes (no zombies) of the browser whose home is ``home``: all of them have
    it as ``HOME``, the crashpad handler too, which Chromium starts outside its own tree."""
    mark = f"HOME={home}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if stat[stat.rindex(")") + 2] != "Z" and mark in environ.split(b"\0"):
            found.add(int(entry.name))
    return found


def _end(home: str, seconds: float = 5) -> None:
    """Wait for the processes of a closed browser to end; kill what is left after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


class Browser:
    """One running Chromium; every page is opened in a context of its own."""

    def __init__(self, browser: PlaywrightBrowser, home: str) -> None:
        self.browser = browser
        self.home = home  # HOME of every process of this browser: see processes_of()
        self.contexts: list[BrowserContext] = []

    @property
    def version(self) -> str:
        return self.browser.version

    def new_page(self, locale: Locale = "en-US", base_url: str | None = None) -> Page:
        """A page in a fresh context that speaks ``locale``: Chromium sends it as
        ``Accept-Language`` and shows it as ``navigator.language``. The daemon's self-signed
        certificate is accepted; downloads are allowed. ``base_url`` lets ``page.goto("/")``
        mean the daemon's start page (``daemon.https_url``)."""
        if locale not in LOCALES:
            raise ValueError(f"locale {locale!r} is none of {LOCALES}")
        context = self.browser.new_context(
            locale=locale,
            timezone_id="Europe/Berlin",
            ignore_https_errors=True,
            accept_downloads=True,
            viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]},
            base_url=base_url,
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        return context.new_page()

    def pages(self) -> list[Page]:
        return [page for context in self.contexts for page in context.pages if not page.is_closed()]

    def shoot_all(self, prefix: str) -> list[Path]:
        """A screenshot of every open page (what a failed test leaves behind); never raises."""
        paths = []
        for number, page in enumerate(self.pages(), 1):
            try:
                paths.append(shot(page, f"{prefix}-{number}"))
            except Exception:  # noqa: S112 - a page that cannot be shot tells nothing more
                continue
        return paths

    def close(self) -> None:
        for context in self.contexts:
            try:
                context.close()
            except Exception:  # noqa: S112 - the browser may be gone already
                continue
        self.contexts.clear()
        self.browser.close()


@contextmanager
def launch() -> Iterator[Browser]:
    """Start Debian's Chromium headless with a fresh profile and home; it ends when the block
    does, whatever happens inside it, and so do all its processes."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    # a home of its own: Debian's build writes crash reports under ~/.config/chromium (from a
    # crashpad handler that is not a child of the browser) and certificates under ~/.pki
    with tempfile.TemporaryDirectory(prefix="speicher-chromium-") as home, sync_playwright() as pw:
        env: dict[str, str | float | bool] = {
            **os.environ,
            "HOME": home,
            "XDG_CONFIG_HOME": f"{home}/config",
            "XDG_CACHE_HOME": f"{home}/cache",
        }
        browser = Browser(
            pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                chromium_sandbox=False,
                args=list(CHROMIUM_ARGS),
                env=env,
                timeout=60_000,
            ),
            home,
        )
        try:
            yield browser
        finally:
            try:
                browser.close()
            finally:
                _end(home)
