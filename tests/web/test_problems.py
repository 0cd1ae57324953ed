"""A form's problems in the reader's language: the service layer's reasons matched against the
templates found in its source, pydantic's by error type; English stays as the services say it,
and what the catalog does not know stays English."""

from __future__ import annotations

import textwrap
from pathlib import Path

from pydantic import BaseModel, Field

from speicher.web import forms, problems


class _Form(BaseModel):
    copies: int = Field(ge=1)
    days: int = Field(1, ge=1000)
    name: str = Field("", max_length=3)


def _problems_of(data: dict[str, object], lang: str) -> dict[str, list[str]]:
    errors = forms.Errors()
    assert forms.model(_Form, data, errors) is None
    return {k: [forms.translated(r, lang) for r in v] for k, v in errors.fields.items()}


def test_an_f_string_reason_with_its_values_as_they_were() -> None:
    """Regex characters and quotes in a value are the value's: matched as text, kept as is."""
    value = "ta(n)k.*[x]'\"|$"
    assert forms.translated(f"pool '{value}' does not exist", "de") == (
        f"Pool '{value}' gibt es nicht"
    )
    assert problems.reason("share 'x' already exists", "de") == "Freigabe 'x' gibt es schon"


def test_a_literal_reason_and_the_most_specific_template() -> None:
    assert forms.translated("the two passwords differ", "de") == (
        "die beiden Passwörter sind verschieden"
    )
    # "'%(name)s' is reserved" would match too; the longer template wins
    assert problems.reason("'guest' is reserved for the system", "de") == (
        "'guest' ist für das System reserviert"
    )
    assert problems.reason("'global' is reserved", "de") == "'global' ist reserviert"


def test_an_unknown_reason_stays_english() -> None:
    assert forms.translated("the moon is in the way", "de") == "the moon is in the way"
    # a template's words with more around them is no match: the whole reason must match
    assert problems.reason("so: pool 'x' does not exist", "de") == "so: pool 'x' does not exist"


def test_pydantic_errors_by_type_with_their_numbers() -> None:
    got = _problems_of({"copies": "0", "days": "5", "name": "four"}, "de")
    assert got == {
        "copies": ["muss mindestens 1 sein"],
        "days": ["muss mindestens 1.000 sein"],  # in the reader's format
        "name": ["darf höchstens 3 Zeichen haben"],
    }
    assert _problems_of({}, "de") == {"copies": ["muss ausgefüllt sein"]}
    assert _problems_of({"copies": "x"}, "de") == {"copies": ["muss eine ganze Zahl sein"]}


def test_english_is_untouched() -> None:
    assert _problems_of({"copies": "0", "name": "four"}, "en") == {
        "copies": ["Input should be greater than or equal to 1"],
        "name": ["String should have at most 3 characters"],
    }
    assert forms.translated("pool 'x' does not exist", "en") == "pool 'x' does not exist"
    # and Errors keep the English for code and tests that read them
    errors = forms.Errors()
    forms.model(_Form, {"copies": "0"}, errors)
    assert errors.of("copies") == ["Input should be greater than or equal to 1"]


def test_an_unknown_pydantic_type_stays_english() -> None:
    reason = forms.Reason("Input should be a valid UUID version 4", "uuid_version", {})
    assert forms.translated(reason, "de") == "Input should be a valid UUID version 4"


def test_the_extractor_makes_templates_of_reasons(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "service.py").write_text(
        textwrap.dedent(
            """
            from speicher.errors import Conflict, InvalidInput, NotFound, Validator

            LIMIT = "at most ten"

            class Gone(NotFound):
                pass

            def _refuse(reason: str) -> InvalidInput:
                return InvalidInput(field="key", reason=reason)

            def rule(text: str) -> str | None:
                if text == "x":
                    return "must not be x"
                return "code" if text else None  # a code, not a reason

            def create(req, v: Validator, name: str, a: int) -> None:
                v.add("host", f"'{req.smtp_host}' is not a host name")
                v.add("a", f"{a!r} differs from {a:>5}")
                v.add("b", "100% sure")
                v.add("c", name)  # not a literal: nothing to find
                raise Conflict(f"share '{name}' has {LIMIT}")

            def other(path: str) -> None:
                raise _refuse("refused by a helper")
                raise Gone(f"nothing at {path}" if path else "nothing")
                raise Conflict(f"{path}")  # only a value: would match anything
            """
        )
    )
    assert set(problems.reason_templates(root)) == {
        "must not be x",
        "'%(smtp_host)s' is not a host name",
        "%(a)s differs from %(a_2)s",
        "100%% sure",
        "share '%(name)s' has at most ten",
        "refused by a helper",
        "nothing at %(path)s",
        "nothing",
    }


def test_a_jobs_step_is_shown_in_the_readers_language() -> None:
    """The steps of jobs (``progress(5, "wiping disks")``) are found and translated like
    reasons: the console's progress bars say them in German."""
    assert "checking every block" in problems.reason_templates()
    assert problems.reason("checking every block", "de") == "jeder Block wird geprüft"
    assert problems.reason("checking every block", "en") == "checking every block"
