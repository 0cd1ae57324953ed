"""Logging setup: alembic's plugin lines are kept out of the daemon's log, except at debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from speicher import logs


@pytest.fixture
def restored() -> Iterator[logging.Logger]:
    logger = logging.getLogger("alembic.runtime.plugins")
    level = logger.level
    yield logger
    logger.setLevel(level)


def test_alembics_plugin_lines_are_quiet_at_info_and_said_at_debug(
    restored: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    logs.setup("info", "%(message)s")
    with caplog.at_level(logging.INFO):
        restored.info("setup plugin alembic.autogenerate.schemas")
        logging.getLogger("alembic.runtime.migration").info("Running upgrade a -> b")
    assert [r.getMessage() for r in caplog.records] == ["Running upgrade a -> b"]
    caplog.clear()
    logs.setup("debug", "%(message)s")
    with caplog.at_level(logging.DEBUG):
        restored.info("setup plugin alembic.autogenerate.schemas")
    assert [r.getMessage() for r in caplog.records] == ["setup plugin alembic.autogenerate.schemas"]
