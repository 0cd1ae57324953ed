"""Shared fixtures. System tests (marker ``system``) need root and clean up after themselves."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from speicher_testing import Daemon

# the shared file-semantics suite (files/conformance.py) is imported by name by every
# protocol's tests, and the protocols' client helpers (smb_helpers, sftp_helpers,
# dav_helpers) by the tests that drive several protocols, wherever those live
_TESTS = Path(__file__).resolve().parent
for _folder in ("files", "protocols/smb", "protocols/sftp", "protocols/webdav"):
    sys.path.insert(0, str(_TESTS / _folder))


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
