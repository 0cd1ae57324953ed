"""The first of two walls against injection: no request carries a control character.

Every request model (what the API accepts, so what the CLI sends) derives from
:class:`Request`. Its one validator looks at every string a request holds, in any field, list
or mapping, and refuses control characters (newline, carriage return, tab, NUL, escape, DEL,
the C1 range), the Unicode line and paragraph separators and unpaired surrogates, with a 422
that names the field. Free text then can never start a new line in a file another program
parses (smb.conf, /etc/passwd, an e-mail header, a script). The second wall is each renderer:
it refuses or escapes what its own language treats specially (``%`` for Samba, ``:`` for
/etc/passwd, quoting in shell scripts), because a value may reach it by a path that is not a
request (a migration, a restored database).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ValidationInfo, field_validator

# Cc: C0 and C1 controls and DEL; Zl/Zp: U+2028 and U+2029, which some parsers take as line
# ends; Cs: a lone surrogate, which is not text at all and cannot be written as UTF-8.
_REFUSED = {"Cc", "Zl", "Zp", "Cs"}

REASON = "must not contain control characters (such as a newline, tab or NUL)"


def control_reason(text: str) -> str | None:
    """Why ``text`` is refused, or None when it holds no control character."""
    for ch in text:
        if unicodedata.category(ch) in _REFUSED:
            return REASON
    return None


def clean(text: str) -> str:
    """``text`` with every refused character replaced by a space (for renderers of values
    that did not come through a request)."""
    return "".join(" " if unicodedata.category(ch) in _REFUSED else ch for ch in text)


def _check(value: Any) -> None:
    if isinstance(value, str):
        if reason := control_reason(value):
            raise ValueError(reason)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key)
            _check(item)


class Request(BaseModel):
    """Base of every model the API accepts: strings hold no control characters.

    A model may name fields in ``multiline`` that are documents of several lines by nature (a
    PEM certificate); there line ends are allowed, every other control character is not, and
    the field's own parser is its renderer's check."""

    multiline: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name in cls.multiline and isinstance(value, str):
            _check(value.replace("\r\n", "").replace("\n", ""))
        else:
            _check(value)
        return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


# A pool, share, user or group name as typed: names are case-insensitive and stored in lower
# case (``Finance`` is the share ``finance``), in request bodies and in URL paths alike.
Name = Annotated[str, BeforeValidator(_lower)]
