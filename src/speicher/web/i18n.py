"""German and English for the web pages: gettext catalogs (Babel), and numbers, sizes and
dates in the reader's locale ("1,5 GB" in German, "1.5 GB" in English).

The catalogs are ``locale/<lang>/LC_MESSAGES/messages.po`` in this package, compiled in
memory at start (no ``.mo`` files to forget to rebuild). English is the source language: its
catalog is empty and every text is its own translation. The language is the ``lang``
cookie's (a strictly necessary cookie: the reader chose it), else the first of
``Accept-Language`` we have, else English.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from pathlib import Path

from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from jinja2.ext import babel_extract

LANGUAGES = ("en", "de")
DEFAULT = "en"
LANG_COOKIE = "lang"
LOCALE_DIR = Path(__file__).parent / "locale"
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
KEYWORDS = ("_", "gettext", "ngettext")  # what the templates translate with


def template_texts() -> list[str | tuple[str, str]]:
    """The texts of the templates, in order of first use (plurals as (singular, plural))."""
    found: list[str | tuple[str, str]] = []
    for template in sorted((Path(__file__).parent / "templates").glob("*.html")):
        with template.open("rb") as fh:
            options = {"extensions": "jinja2.ext.i18n"}
            for _line, _func, message, _comments in babel_extract(fh, KEYWORDS, [], options):
                texts = [m for m in (message if isinstance(message, tuple) else (message,)) if m]
                if not texts:
                    continue
                key: str | tuple[str, str] = (texts[0], texts[1]) if len(texts) > 1 else texts[0]
                if key not in found:
                    found.append(key)
    return found


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


@functools.cache
def catalog(lang: str) -> Catalog:
    """The catalog of ``lang`` as read (English: empty)."""
    if lang == DEFAULT:
        return Catalog(locale=lang)
    with catalog_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang)


@functools.cache
def translations(lang: str) -> Translations:
    """The compiled catalog of ``lang`` (English: the texts themselves)."""
    if lang == DEFAULT:
        return Translations()
    buf = io.BytesIO()
    write_mo(buf, catalog(lang))
    buf.seek(0)
    return Translations(fp=buf)


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: the cookie's, else the best of Accept-Language we have."""
    if cookie in LANGUAGES:
        return str(cookie)
    wanted: list[tuple[float, int, str]] = []
    for i, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        lang = tag.strip().lower().split("-")[0]
        if lang in LANGUAGES and quality > 0:
            wanted.append((-quality, i, lang))
    return sorted(wanted)[0][2] if wanted else DEFAULT


def _babel_locale(lang: str) -> str:
    return "de_DE" if lang == "de" else "en_US"


def size(value: int | float | None, lang: str) -> str:
    """Bytes in decimal units with one decimal where it helps: 1,5 GB / 1.5 GB."""
    if value is None:
        return "\u2013"  # an en dash: nothing to show
    amount = float(value)
    unit = 0
    while abs(amount) >= 1000 and unit < len(_UNITS) - 1:
        amount /= 1000
        unit += 1
    pattern = "#,##0" if unit == 0 else "#,##0.#"
    return f"{format_decimal(amount, format=pattern, locale=_babel_locale(lang))} {_UNITS[unit]}"


def number(value: int | float, lang: str) -> str:
    return str(format_decimal(value, locale=_babel_locale(lang)))


def when(value: dt.datetime | float | None, lang: str, tz: dt.tzinfo = dt.UTC) -> str:
    """A moment, in the reader's format, at the box's time zone (``tz``)."""
    if value is None:
        return "\u2013"  # an en dash: nothing to show
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # the database's moments are UTC
    return str(format_datetime(value, format="medium", tzinfo=tz, locale=_babel_locale(lang)))
