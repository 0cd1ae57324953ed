"""Update the German catalog from the web templates and the service layer's problems: every
text the templates translate, every reason template of the source (``msgctxt "problem"``, see
speicher.web.problems) and every pydantic message a form may show (``msgctxt "pydantic"``) is
in it (new ones with an empty translation, to fill in); texts none of them has any more go.

    .venv/bin/python scripts/messages.py        # then translate the empty msgstr entries

tests/web/test_i18n.py fails while a text has no German translation.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from speicher.web.i18n import template_texts
from speicher.web.problems import PROBLEM, PYDANTIC, PYDANTIC_CONTEXT, reason_templates

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "src" / "speicher" / "web"
HEADER = """\
# German texts of Speicher's web console and file manager.
# Made from src/speicher/web/templates, the reasons of src/speicher (msgctxt "problem") and
# pydantic's messages (msgctxt "pydantic") by scripts/messages.py; tests/web/test_i18n.py
# checks that every text has its translation."""


def main() -> int:
    path = WEB / "locale" / "de" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        old = read_po(fh, locale="de")
    new = Catalog(
        locale="de",
        project="Speicher",
        version="0.1.0",
        copyright_holder="the Speicher authors",
        msgid_bugs_address="the Speicher authors",
        last_translator="the Speicher authors",
        language_team="German",
        header_comment=HEADER,
        creation_date=old.creation_date,
        revision_date=dt.datetime.now(dt.UTC),
        fuzzy=False,
    )
    missing = 0
    for key in template_texts():
        before = old.get(key[0] if isinstance(key, tuple) else key)
        empty: str | tuple[str, str] = ("", "") if isinstance(key, tuple) else ""
        translation = before.string if before is not None else empty
        if not translation or (isinstance(translation, tuple) and not all(translation)):
            missing += 1
        new.add(key, translation)
    others = [(t, PROBLEM) for t in reason_templates()]
    others += [(t, PYDANTIC_CONTEXT) for t in dict.fromkeys(PYDANTIC.values())]
    for text, context in others:
        known = old.get(text, context=context)
        string = known.string if known is not None and isinstance(known.string, str) else ""
        missing += not string
        # python-format: babel's check that a translation keeps the placeholders
        new.add(text, string, context=context, flags=["python-format"] if "%" in text else [])
    with path.open("wb") as fh:
        write_po(fh, new, width=100, omit_header=False)
    print(f"{path.relative_to(ROOT)}: {len(new)} texts, {missing} without a translation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
