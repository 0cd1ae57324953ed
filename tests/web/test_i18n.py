"""Every text of the web pages is translated: the templates hold no text outside ``_()`` and
``ngettext()``, and every such text has its German translation, as has every reason template
of the service layer and every pydantic message a form may show. Sizes, numbers and dates
follow the reader's language; the language is the reader's choice, else their browser's."""

from __future__ import annotations

import datetime as dt
import re
import typing
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from pydantic_core import core_schema

from speicher.web import i18n, problems

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "src" / "speicher" / "web" / "templates"

# what may stand in a template untranslated: the product's name, and each language's own name
# and the protocols' names
NAMES = {"Speicher", "Deutsch", "English", "SMB", "WebDAV", "SFTP", "S3", "HTTPS", "HTTP"}
NAMES |= {"STARTTLS", "SMART", "SHA-256"}  # technical names, the same in every language


def bare_text(template: str) -> list[str]:
    """The words of ``template`` outside Jinja's tags and expressions and HTML's tags."""
    text = re.sub(r"\{#.*?#\}", " ", template, flags=re.S)
    text = re.sub(r"\{%.*?%\}", " ", text, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}", " ", text, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
    text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
    return [w for w in re.findall(r"[^\W\d_][\w'-]*", text) if w not in NAMES]


def test_the_check_finds_untranslated_text() -> None:
    """The check itself: plain text is found, translated text and markup are not."""
    assert bare_text("<p>Hello {{ name }}</p>") == ["Hello"]
    assert bare_text('<p title="x">{{ _("Hello") }} {% if a %}{{ b }}{% endif %}</p>') == []


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_hold_no_untranslated_text(template: Path) -> None:
    assert bare_text(template.read_text()) == []


def test_every_text_has_its_german_translation() -> None:
    texts = i18n.template_texts()
    assert len(texts) > 50  # the extraction sees the templates
    with i18n.catalog_path("de").open("rb") as fh:
        catalog = read_po(fh, locale="de")
    missing = []
    for text in texts:
        found = catalog.get(text[0] if isinstance(text, tuple) else text)
        strings = found.string if found is not None else ""
        if not strings or (isinstance(strings, tuple) and not all(strings)):
            missing.append(text)
    assert missing == []
    german = i18n.translations("de")
    assert german.gettext("Log out") == "Abmelden"  # and the compiled catalog says so
    assert german.ngettext("%(num)s entry", "%(num)s entries", 2) == "%(num)s Einträge"


def test_every_problem_has_its_german_translation() -> None:
    """The reasons the source gives (msgctxt "problem") and pydantic's messages (msgctxt
    "pydantic"): each has German with the same placeholders (pydantic's German may leave
    out a detail such as its English ``error``)."""
    templates = problems.reason_templates()
    assert len(templates) > 150  # the extraction sees the service layer
    assert "pool '%(pool_name)s' does not exist" in templates  # an f-string's template
    assert problems.PYDANTIC["greater_than_equal"] in set(problems.PYDANTIC.values())
    catalog = i18n.catalog("de")
    missing, wrong = [], []
    wanted = [(t, problems.PROBLEM) for t in templates]
    wanted += [(t, problems.PYDANTIC_CONTEXT) for t in problems.PYDANTIC.values()]
    for text, context in wanted:
        found = catalog.get(text, context=context)
        german = found.string if found is not None else ""
        if not german or not isinstance(german, str):
            missing.append(text)
            continue
        english_names = set(re.findall(r"%\((\w+)\)s", text))
        german_names = set(re.findall(r"%\((\w+)\)s", german))
        same = german_names == english_names
        if not (same if context == problems.PROBLEM else german_names <= english_names):
            wrong.append((text, german))
    assert missing == []
    assert wrong == []


def test_pydantics_types_are_pydantics() -> None:
    """A misspelt type would never be translated: each is one pydantic has."""
    known = set(typing.get_args(core_schema.ErrorType))
    assert "greater_than_equal" in known
    assert set(problems.PYDANTIC) - known == set()


def test_the_pages_print_problems_translated() -> None:
    """A problem reaches the page only through the ``problem`` filter of its language."""
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert re.findall(r"\{\{\s*reason\s*\}\}", text) == [], template.name
        for loop in re.findall(r"\{%\s*for (\w+) in errors\.\w+\(", text):
            assert f"{{{{ {loop}|problem }}}}" in text, template.name


def test_sizes_numbers_and_dates_in_the_readers_language() -> None:
    assert i18n.size(1_500_000_000, "de") == "1,5 GB"
    assert i18n.size(1_500_000_000, "en") == "1.5 GB"
    assert i18n.size(999, "de") == "999 B"
    assert i18n.size(12_345_678_901_234, "en") == "12.3 TB"
    assert i18n.number(1234567, "de") == "1.234.567"
    moment = dt.datetime(2026, 12, 2, 14, 5, tzinfo=dt.UTC)
    assert i18n.when(moment, "de") == "02.12.2026, 14:05:00"
    assert i18n.when(moment, "en").startswith("Dec 2, 2026")


def test_the_language_is_the_choice_then_the_browsers() -> None:
    assert i18n.choose("de", "en-US") == "de"
    assert i18n.choose(None, "de-DE,de;q=0.9,en;q=0.8") == "de"
    assert i18n.choose(None, "fr-FR, en;q=0.5, de;q=0.4") == "en"
    assert i18n.choose(None, "de;q=0, en;q=0.1") == "en"
    assert i18n.choose("xx", "fr") == "en"  # nothing we have: English
    assert i18n.choose(None, None) == "en"
