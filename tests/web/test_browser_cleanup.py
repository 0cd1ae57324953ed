"""No Chromium outlives the test that started it, failed or not, and a failed test leaves
screenshots of its pages. (A module of its own: one thread drives one Playwright at a time, so
these tests cannot run beside the ``chromium`` fixture of another module's tests.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import launch, processes_of

pytestmark = pytest.mark.browser

TESTS = Path(__file__).resolve().parents[1]

INNER = """
import os
from pathlib import Path


def test_fails(chromium):
    page = chromium.new_page("de-DE")
    page.set_content("<h1>Vor dem Fehler</h1>")
    Path(os.environ["HOME_FILE"]).write_text(chromium.home)
    assert page.locator("h1").inner_text() == "Nach dem Fehler"
"""


def crashpad(pids: set[int]) -> set[int]:
    return {pid for pid in pids if "crashpad" in Path(f"/proc/{pid}/cmdline").read_text()}


def test_a_failing_block_ends_its_browser() -> None:
    with pytest.raises(RuntimeError, match="a failing test"), launch() as browser:
        browser.new_page("de-DE").set_content("<p>läuft</p>")
        home = browser.home
        running = processes_of(home)
        assert len(running) >= 3, "a browser, its renderer and its crashpad handler"
        assert crashpad(running), "the crashpad handler, which is not below the browser, counts"
        raise RuntimeError("a failing test")
    assert not processes_of(home)
    assert not Path(home).exists()


def test_a_failed_test_leaves_screenshots_and_no_browser(tmp_path: Path) -> None:
    """A real pytest run of a failing test that uses the fixture, as `make test` runs it."""
    inner = tmp_path / "test_inner.py"
    inner.write_text(INNER)
    artifacts, home_file = tmp_path / "artifacts", tmp_path / "home"
    env = {
        **os.environ,
        "SPEICHER_TEST_ARTIFACTS": str(artifacts),
        "HOME_FILE": str(home_file),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    # tests/conftest.py as a plugin, so the inner run has the fixture and the hooks
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider"]
    command += ["-q", "-W", "error", "-c", os.devnull, "--rootdir", str(tmp_path), str(inner)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed" in run.stdout
    assert "Nach dem Fehler" in run.stdout
    shots = sorted(p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*.png"))
    assert shots == ["failed/test_inner.py_test_fails-1.png"]
    assert f"1 taken in this run, in {artifacts}" in run.stdout
    home = home_file.read_text()
    assert home.startswith("/tmp/speicher-chromium-")
    assert not processes_of(home)
    assert not Path(home).exists()
