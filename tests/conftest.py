"""Shared fixtures. System tests (marker ``system``) need root and clean up after themselves."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from speicher_testing import Daemon

# the shared file-semantics suite (files/conformance.py) is imported by name by every
# protocol's tests, and the protocols' client helpers (smb_helpers, sftp_helpers,
# dav_helpers) by the tests that drive several protocols, wherever those live, and so is the
# headless browser's (web/browser.py)
_TESTS = Path(__file__).resolve().parent
for _folder in ("files", "events", "protocols/smb", "protocols/sftp", "protocols/webdav", "web"):
    sys.path.insert(0, str(_TESTS / _folder))

from browser import Browser, artifacts_dir, launch  # noqa: E402 - found through the path above


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="system tests need root (loop devices, btrfs, Unix accounts)")
    for item in items:
        if "system" in item.keywords:
            item.add_marker(skip)


def _base() -> Path:
    """A directory ordinary users can traverse (pytest's own tmp is root-only), so tests can act
    as the users they create; short, so mount tables stay readable."""
    base = Path(tempfile.mkdtemp(prefix="speicher-test-", dir="/tmp"))
    base.chmod(0o755)
    return base


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    """A running daemon shared by one test module; every trace is removed afterwards."""
    d = Daemon(_base())
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def fresh_daemon() -> Iterator[Daemon]:
    """A daemon of one's own, for tests that stop, kill and restart it."""
    d = Daemon(_base())
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium shared by one test module (``chromium.new_page("de-DE")``); it
    ends with the module, failed or not. A failing test leaves a screenshot of every open page
    in the artifacts folder, under failed/."""
    with launch() as browser:
        yield browser


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    browser = getattr(item, "funcargs", {}).get("chromium")
    if report.failed and report.when != "teardown" and isinstance(browser, Browser):
        browser.shoot_all("failed/" + re.sub(r"[^A-Za-z0-9._-]+", "_", item.nodeid))
    return report


_SESSION_START = pytest.StashKey[float]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SESSION_START] = time.time()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say where the screenshots of this run are, if it took any (with xdist, the workers took
    them: this counts the files, which the controller can see)."""
    start = config.stash.get(_SESSION_START, None)
    folder = artifacts_dir()
    if start is None or not folder.is_dir():
        return
    new = [p for p in folder.rglob("*.png") if p.stat().st_mtime >= start - 1]
    if new:
        terminalreporter.write_sep("-", "screenshots")
        terminalreporter.write_line(f"{len(new)} taken in this run, in {folder}")


@pytest.fixture(autouse=True)
def _close_web_clients() -> Iterator[None]:
    """The web tests' httpx browsers (tests/web/web_helpers.py) are closed after each test."""
    yield
    from web_helpers import close_all

    close_all()
