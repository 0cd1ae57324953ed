"""``InvalidInput`` messages and the ``Validator`` that collects problems."""

from __future__ import annotations

import pytest

from speicher.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OperationFailed,
    Problem,
    SpeicherError,
    Unauthorized,
    Validator,
)


@pytest.mark.parametrize(
    ("problem", "text"),
    [(Problem("name", "is taken"), "name: is taken"), (Problem("", "no pool"), "no pool")],
)
def test_problem_text(problem: Problem, text: str) -> None:
    assert str(problem) == text


def test_invalid_input_from_field_and_reason() -> None:
    error = InvalidInput(field="size", reason="must be positive")
    assert error.problems == [Problem("size", "must be positive")]
    assert error.message == "size: must be positive"
    assert str(error) == "size: must be positive"


def test_invalid_input_from_one_problem() -> None:
    error = InvalidInput(Problem("", "nothing to do"))
    assert error.problems == [Problem("", "nothing to do")]
    assert str(error) == "nothing to do"


def test_invalid_input_joins_several_problems_in_order() -> None:
    error = InvalidInput([Problem("name", "too short"), Problem("", "odd"), Problem("size", "0")])
    assert error.message == "name: too short; odd; size: 0"
    assert [p.field for p in error.problems] == ["name", "", "size"]


def test_invalid_input_is_a_client_error() -> None:
    error = InvalidInput(field="x", reason="y")
    assert isinstance(error, SpeicherError)
    assert (error.status, error.exit_code, error.title) == (422, 2, "Invalid input")


@pytest.mark.parametrize(
    ("cls", "status", "exit_code"),
    [
        (NotFound, 404, 2),
        (Conflict, 409, 2),
        (Forbidden, 403, 2),
        (Unauthorized, 401, 2),
        (SpeicherError, 500, 1),
    ],
)
def test_other_errors_carry_their_status(
    cls: type[SpeicherError], status: int, exit_code: int
) -> None:
    error = cls("pool tank does not exist")
    assert (error.status, error.exit_code) == (status, exit_code)
    assert error.message == str(error) == "pool tank does not exist"
    assert error.problems == []


def test_operation_failed_keeps_the_tool_output() -> None:
    error = OperationFailed("mounting failed", detail="mount: wrong fs type")
    assert (error.status, error.exit_code) == (500, 1)
    assert error.detail == "mount: wrong fs type"
    assert str(error) == "mounting failed"


def test_validator_without_problems_passes() -> None:
    validator = Validator()
    validator.check()
    assert validator.problems == []


def test_validator_reports_everything_at_once() -> None:
    validator = Validator()
    validator.add("name", "must be 3-32 characters")
    validator.add("disks", "at least 2 needed for raid1")
    with pytest.raises(InvalidInput) as info:
        validator.check()
    assert info.value.problems == [
        Problem("name", "must be 3-32 characters"),
        Problem("disks", "at least 2 needed for raid1"),
    ]
    assert info.value.message == "name: must be 3-32 characters; disks: at least 2 needed for raid1"


def test_an_error_raised_by_a_validator_does_not_change_afterwards() -> None:
    validator = Validator()
    validator.add("a", "first")
    with pytest.raises(InvalidInput) as info:
        validator.check()
    validator.add("b", "later")
    assert info.value.problems == [Problem("a", "first")]
