"""Every shell example in the README runs as written, in order, against a fresh daemon.

Blocks fenced as ``sh`` are run with bash (``-euo pipefail``), one after another, with the
``speicher`` command of this checkout talking to a test daemon over its socket. A block
preceded by ``<!-- not run by tests/docs/test_readme.py: WHY -->`` is skipped (the install commands
themselves, a mail server that is not there). The only change made to the text is the
daemon's address and state: the README's ports 8080 and 8443 are the test daemon's, and its
``/var/lib/speicher`` is the test daemon's state directory; ``HOME`` is a fresh folder.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from speicher_testing import Daemon

pytestmark = pytest.mark.system

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```sh\n(?P<code>.*?)```", re.DOTALL)


def blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    found = []
    for match in BLOCK.finditer(text):
        if "not run by tests/docs/test_readme.py" in match.group("before"):
            continue
        found.append((text[: match.start("code")].count("\n") + 1, match.group("code")))
    return found


def test_readme_has_examples() -> None:
    assert len(blocks()) >= 5


def test_every_example_runs_as_written(fresh_daemon: Daemon, tmp_path: Path) -> None:
    env = {
        **fresh_daemon.env,
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
    }
    for line, code in blocks():
        script = (
            code.replace("localhost:8080", f"127.0.0.1:{fresh_daemon.port}")
            .replace("localhost:8443", f"127.0.0.1:{fresh_daemon.https_port}")
            .replace("/var/lib/speicher", str(fresh_daemon.state_dir))
        )
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (
            f"README.md block at line {line} failed ({result.returncode}):\n{code}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
