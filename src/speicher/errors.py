"""The errors a Speicher user can meet, in one tree.

    SpeicherError                  base; ``exit_code`` and ``status`` say how front ends show it
    ├── InvalidInput               a request is wrong: one or more (field, reason) problems
    ├── NotFound                   a named thing does not exist
    ├── Conflict                   the request clashes with the current state (duplicate, in use)
    ├── Forbidden                  the state forbids it for everyone (for example a locked item)
    ├── Unauthorized               no or bad credentials
    └── OperationFailed            a system operation failed; carries the command's output

Services raise these; only front ends (API, CLI) turn them into output: the API into a JSON
problem document (RFC 9457), the CLI into one line on stderr and an exit code. Errors of the
``speicher.system`` layer (:class:`speicher.system.run.CommandError`) are translated into
:class:`OperationFailed` at the service boundary.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from speicher.system.run import CommandError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: which field, and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class SpeicherError(Exception):
    """Base of every error Speicher shows to a user."""

    status = 500
    exit_code = 1
    title = "Internal error"
    headers: ClassVar[Mapping[str, str]] = {}  # sent with the answer over HTTP

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def problems(self) -> list[Problem]:
        return []


class InvalidInput(SpeicherError):
    """The request is invalid; every problem found is listed."""

    status = 422
    exit_code = 2
    title = "Invalid input"

    def __init__(
        self, problems: list[Problem] | Problem | None = None, *, field: str = "", reason: str = ""
    ) -> None:
        if problems is None:
            problems = [Problem(field, reason)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self._problems = list(problems)
        super().__init__("; ".join(str(p) for p in self._problems))

    @property
    def problems(self) -> list[Problem]:
        return self._problems


class NotFound(SpeicherError):
    """A named thing does not exist."""

    status = 404
    exit_code = 2
    title = "Not found"


class Conflict(SpeicherError):
    """The request clashes with the current state: a duplicate name, a disk in use. Every such
    clash is a 409 in our own words, whether a check or the database found it; ``field`` names
    the request field it concerns, if one does."""

    status = 409
    exit_code = 2
    title = "Conflict"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field

    @property
    def problems(self) -> list[Problem]:
        return [Problem(self.field, self.message)] if self.field else []


class Forbidden(SpeicherError):
    """The current state forbids this for everyone."""

    status = 403
    exit_code = 2
    title = "Forbidden"


class Unauthorized(SpeicherError):
    """No credentials, or wrong ones."""

    status = 401
    exit_code = 2
    title = "Unauthorized"


class OperationFailed(SpeicherError):
    """A system operation failed; ``detail`` holds what the tool said."""

    status = 500
    exit_code = 1
    title = "Operation failed"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class Validator:
    """Collects problems so a user sees everything that is wrong at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, field: str, reason: str) -> None:
        self.problems.append(Problem(field, reason))

    def check(self) -> None:
        if self.problems:
            raise InvalidInput(self.problems)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Raise :class:`OperationFailed` naming ``action`` when a system command fails inside."""
    try:
        yield
    except CommandError as exc:
        raise OperationFailed(f"{action} failed: {exc.output}", detail=str(exc)) from None
