"""Every string field of every request model refuses control characters, naming the field.

The models are found, not listed: every subclass of ``speicher.validation.Request`` that the
API's modules define, so a model added later is covered without touching this test. A test at
the end checks that every model the API accepts as a body is such a subclass.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from speicher import validation
from speicher.validation import REASON, Request

HOSTILE = [
    "hi\n    root preexec = /bin/sh -c 'id'\n[evil]\n    path = /etc",
    "nul\x00byte",
    "carriage\rreturn",
    "tab\there",
    "escape\x1b[31m",
    "del\x7f",
    "c1\x85next-line",
    "line\u2028separator",
    "paragraph\u2029separator",
    "lone\ud800surrogate",
]


def _request_models() -> list[type[Request]]:
    import speicher.api.app  # noqa: F401 - imports every route module and so every model

    found: list[type[Request]] = []
    todo = list(Request.__subclasses__())
    while todo:
        model = todo.pop()
        found.append(model)
        todo += model.__subclasses__()
    return sorted(set(found), key=lambda m: m.__name__)


MODELS = _request_models()


def _is_str(annotation: Any) -> bool:
    """Whether a field holds free strings (str, str | None, list[str], ...)."""
    if annotation is str:
        return True
    origin = get_origin(annotation)
    if origin is typing.Literal:
        return False
    if origin in (typing.Union, types.UnionType, list, tuple, set, dict):
        return any(_is_str(a) for a in get_args(annotation))
    return False


def _nested(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if found := _nested(arg):
            return found
    return None


def _value(annotation: Any, text: str) -> Any:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _value(next(a for a in get_args(annotation) if a is not type(None)), text)
    if origin in (list, tuple, set):
        return [text]
    if origin is dict:
        return {text: text}
    return text


def _string_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """(location, annotation) of every string field, nested models included."""
    out: list[tuple[Any, ...]] = []
    for name, info in model.model_fields.items():
        if _is_str(info.annotation):
            out.append(((*prefix, name), info.annotation))
        elif nested := _nested(info.annotation):
            out += _string_fields(nested, (*prefix, name))
    return out


CASES = [
    pytest.param(model, loc, annotation, id=f"{model.__name__}.{'.'.join(loc)}")
    for model in MODELS
    for loc, annotation in _string_fields(model)
]


def test_models_are_found() -> None:
    names = {m.__name__ for m in MODELS}
    assert {"UserCreate", "ShareUpdate", "SmbOptionsUpdate", "AlertSettingsUpdate"} <= names
    assert len(CASES) > 30


@pytest.mark.parametrize(("model", "loc", "annotation"), CASES)
@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t)[:12])
def test_control_characters_are_refused(
    model: type[Request], loc: tuple[str, ...], annotation: Any, text: str
) -> None:
    if loc[-1] in model.multiline and not validation.control_reason(
        text.replace("\r\n", "").replace("\n", "")
    ):
        pytest.skip("line ends are allowed in a multi-line document (a PEM certificate)")
    data: dict[str, Any] = {}
    target = data
    for part in loc[:-1]:
        target = target.setdefault(part, {})
    target[loc[-1]] = _value(annotation, text)
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    mine = [e for e in raised.value.errors() if tuple(e["loc"][: len(loc)]) == loc]
    assert mine, f"{model.__name__}.{'.'.join(loc)} accepted {text!r}"
    # pydantic itself refuses a lone surrogate in fields with a length limit, and a field
    # with its own stricter rule (an e-mail address) may refuse it by that rule
    assert any(REASON in e["msg"] or e["type"] in ("string_unicode", "email") for e in mine), mine


def test_printable_text_passes() -> None:
    assert validation.control_reason("Bücher & 50 % [Q3]; #1 \\ 'quoted' \u202e") is None
    assert validation.clean("a\nb\x00c") == "a b c"


def test_every_body_the_api_accepts_is_a_request() -> None:
    from speicher.api.app import create_app

    fake = types.SimpleNamespace(
        settings=types.SimpleNamespace(tls_dir=Path("/nonexistent")), events=None
    )
    app = create_app(typing.cast(Any, fake))
    bodies = set()
    for path in app.openapi()["paths"].values():
        for operation in path.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                ref = media["schema"].get("$ref", "")
                bodies.add(ref.rsplit("/", 1)[-1])
    assert len(bodies) > 10, bodies
    assert bodies <= {m.__name__ for m in MODELS}, bodies - {m.__name__ for m in MODELS}
