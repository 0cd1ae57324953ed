"""Snapshot names are the times Windows shows as Previous Versions."""

from __future__ import annotations

import datetime as dt

import pytest

from speicher.protection.snapshots import FORMAT, parse_name


def test_a_name_is_its_utc_time() -> None:
    assert parse_name("@GMT-2026.11.29-15.04.18") == dt.datetime(
        2026, 11, 29, 15, 4, 18, tzinfo=dt.UTC
    )
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert parse_name(now.strftime(FORMAT)) == now


@pytest.mark.parametrize(
    "name",
    [
        "",
        "@GMT-2026.13.01-00.00.00",
        "@GMT-2026.11.29-15.04",
        "GMT-2026.11.29-15.04.18",
        "@GMT-2026.11.29-15.04.18\n",
        "../@GMT-2026.11.29-15.04.18",
        "daily",
    ],
)
def test_anything_else_is_not_a_snapshot_name(name: str) -> None:
    assert parse_name(name) is None
