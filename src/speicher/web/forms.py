"""Forms to the service layer's requests, and its answers back to the form: every problem of
a request at once, next to its field (``InvalidInput``'s problems, pydantic's, a
``Conflict``'s field), in the service's own words.

Where a problem gets the reader's language: :class:`Errors` keeps the English reasons as the
services and pydantic gave them (pydantic's as a :class:`Reason` with its error type and
context), and the page translates them as it prints them, with the ``problem`` filter of its
language (``speicher.web.problems``). So no handler passes a language around, a problem copied
from one ``Errors`` to another stays translatable, and code and tests that look at a form's
problems see the same English as the API and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from speicher.errors import SpeicherError
from speicher.web import i18n, problems

T = TypeVar("T", bound=BaseModel)


class Reason(str):
    """pydantic's message of one problem (English, as pydantic says it), with its error
    ``kind`` (``greater_than_equal``) and ``ctx`` (``{"ge": 1}``) to translate it by."""

    kind: str
    ctx: dict[str, Any]

    def __new__(cls, message: str, kind: str, ctx: dict[str, Any] | None = None) -> Reason:
        made = super().__new__(cls, message)
        made.kind = kind
        made.ctx = dict(ctx or {})
        return made


@dataclass
class Errors:
    """What was wrong with a form: by field (``""``: the form as a whole)."""

    fields: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, reason: str) -> None:
        self.fields.setdefault(name, []).append(reason)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def of(self, name: str) -> list[str]:
        return self.fields.get(name, [])

    def general(self) -> list[str]:
        """The problems no field of the form shows (the form's own, and unknown fields')."""
        return self.fields.get("", [])


def model(cls: type[T], data: Mapping[str, Any], errors: Errors) -> T | None:
    """``cls`` from the form's values; None (and the problems in ``errors``) when invalid."""
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        for problem in exc.errors():
            loc = [str(p) for p in problem["loc"]]
            reason = Reason(str(problem["msg"]), problem["type"], problem.get("ctx"))
            errors.add(loc[0] if loc else "", reason)
        return None


def call(action: Callable[[], Any], errors: Errors, known: frozenset[str]) -> Any:
    """Run a service call; a refusal of the user's input goes into ``errors`` (fields not in
    ``known`` show at the top of the form), anything else is raised."""
    try:
        return action()
    except SpeicherError as exc:
        if exc.status not in (400, 403, 404, 409, 422):
            raise
        if not exc.problems:
            errors.add("", exc.message)
        for problem in exc.problems:
            parts = problem.field.split(".")  # "smb.recycle_days": the form's recycle_days
            name = parts[-1] if parts[-1] in known else parts[0]
            errors.add(name if name in known else "", problem.reason)
    return None


def translated(reason: str, lang: str) -> str:
    """A problem of a form in ``lang`` (the pages' ``problem`` filter): pydantic's by its type,
    a service's by its template; English, and what the catalog does not know, as it is."""
    if isinstance(reason, Reason):
        return problems.pydantic(reason.kind, reason.ctx, str(reason), lang)
    return problems.reason(reason, lang) if lang != i18n.DEFAULT else reason


def checked(form: Mapping[str, Any], name: str) -> bool:
    """A checkbox: sent (any value) means on."""
    return name in form


def text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


@dataclass(frozen=True)
class Page:
    """One page of a long list (``number`` from 1), and how many there are."""

    items: list[Any]
    number: int
    pages: int
    total: int


def page_of(items: list[Any], wanted: str | None, size: int) -> Page:
    pages = max(1, -(-len(items) // size))
    try:
        number = min(max(1, int(wanted or "1")), pages)
    except ValueError:
        number = 1
    return Page(items[(number - 1) * size : number * size], number, pages, len(items))


def local_target(target: str) -> str:
    """Only a path on this server (never ``//other.example``): where a form may lead."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
