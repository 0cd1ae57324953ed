"""Allocating Unix ids: the lowest id from a start that neither Speicher nor the system uses."""

from __future__ import annotations

import pytest

from speicher.access.ids import allocate


def nothing_taken(_uid: int) -> bool:
    return False


def test_first_id_is_the_start() -> None:
    assert allocate(20000, [], nothing_taken) == 20000


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        ([20000], 20001),
        ([20000, 20001, 20002], 20003),
        ([20001, 20002], 20000),  # a gap at the start is filled
        ([20000, 20002], 20001),  # and a gap in the middle
        ([19999, 5, 30000], 20000),  # ids below the start do not matter
    ],
)
def test_ids_speicher_uses_are_skipped(used: list[int], expected: int) -> None:
    assert allocate(20000, used, nothing_taken) == expected


def test_ids_the_system_has_are_skipped() -> None:
    system = {20000, 20001, 20003}
    assert allocate(20000, [], system.__contains__) == 20002


def test_both_kinds_of_use_together() -> None:
    system = {20001, 20003}
    assert allocate(20000, [20000, 20002], system.__contains__) == 20004


def test_used_may_be_a_one_pass_iterable() -> None:
    assert allocate(100, (i for i in range(100, 110)), nothing_taken) == 110


def test_the_system_is_asked_only_about_ids_speicher_does_not_use() -> None:
    asked: list[int] = []

    def taken(uid: int) -> bool:
        asked.append(uid)
        return uid == 502

    assert allocate(500, {500, 501}, taken) == 503
    assert asked == [502, 503]
