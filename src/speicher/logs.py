"""The daemon's and its worker processes' logging: one format, and libraries kept quiet
where their INFO lines say nothing to an admin."""

from __future__ import annotations

import logging

# Alembic 1.20 logs each of its plugins at INFO whenever it is imported ("setup plugin
# alembic.autogenerate.schemas", seven lines per process and start); its migrations' lines
# ("Running upgrade ...") come from another logger and stay.
QUIET = ("alembic.runtime.plugins",)


def setup(level: str, fmt: str) -> None:
    """``level``: the setting ``log_level`` (``info``, ``debug``, ...); at ``debug`` nothing
    is kept quiet."""
    logging.basicConfig(level=level.upper(), format=fmt)
    quiet = logging.getLevelName(level.upper()) != logging.DEBUG
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
