"""The problems a form shows, in the reader's language.

A problem is in the service layer's own English words: a reason such as ``"pool 'tank' does
not exist"`` (``Validator.add``, ``Problem``, ``InvalidInput``, ``Conflict``, ``NotFound``...),
or pydantic's message of a request that did not validate. Both are translated by the German
catalog, without the service layer knowing about languages:

- a service reason by its *template*. :func:`reason_templates` reads the source of
  ``speicher`` (its syntax tree, never running it) for every literal reason passed to those
  calls, f-strings included: ``f"pool '{pool_name}' does not exist"`` is the template
  ``pool '%(pool_name)s' does not exist``. ``scripts/messages.py`` puts the templates into the
  catalog with ``msgctxt "problem"``. At run time a reason is matched against the translated
  templates (the literal parts exactly, each placeholder any text, the whole reason; the most
  specific template first) and the German text gets the values the reason had;
- a pydantic error by its ``type`` (``PYDANTIC``: ``greater_than_equal`` is "Input should be
  greater than or equal to %(ge)s", ``msgctxt "pydantic"``) with its ``ctx`` values. A custom
  error (``PydanticCustomError``) and a validator's ``ValueError`` carry a service reason,
  which is translated as one.

Whatever is not in the catalog stays in English, as does every problem on an English page.
Values are never translated: a name is what the user typed.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speicher.web import i18n

PROBLEM = "problem"  # the catalog's context of service reasons
PYDANTIC_CONTEXT = "pydantic"  # and of pydantic's messages
PACKAGE = Path(__file__).resolve().parent.parent  # src/speicher

# pydantic's error types a form can meet, with their English message (as pydantic says it,
# its ``{name}`` as ``%(name)s``): the catalog's msgids
PYDANTIC: dict[str, str] = {
    "missing": "Field required",
    "extra_forbidden": "Extra inputs are not permitted",
    "greater_than": "Input should be greater than %(gt)s",
    "greater_than_equal": "Input should be greater than or equal to %(ge)s",
    "less_than": "Input should be less than %(lt)s",
    "less_than_equal": "Input should be less than or equal to %(le)s",
    "multiple_of": "Input should be a multiple of %(multiple_of)s",
    "string_too_short": "String should have at least %(min_length)s characters",
    "string_too_long": "String should have at most %(max_length)s characters",
    "string_pattern_mismatch": "String should match pattern '%(pattern)s'",
    "string_type": "Input should be a valid string",
    "too_short": "%(field_type)s should have at least %(min_length)s items",
    "too_long": "%(field_type)s should have at most %(max_length)s items",
    "int_parsing": "Input should be a valid integer, unable to parse string as an integer",
    "int_from_float": "Input should be a valid integer, got a number with a fractional part",
    "int_type": "Input should be a valid integer",
    "float_parsing": "Input should be a valid number, unable to parse string as a number",
    "float_type": "Input should be a valid number",
    "finite_number": "Input should be a finite number",
    "bool_parsing": "Input should be a valid boolean, unable to interpret input",
    "bool_type": "Input should be a valid boolean",
    "literal_error": "Input should be %(expected)s",
    "enum": "Input should be %(expected)s",
    "list_type": "Input should be a valid list",
    "dict_type": "Input should be a valid dictionary",
    "model_type": "Input should be a valid dictionary or instance of %(class_name)s",
    "date_parsing": "Input should be a valid date in the format YYYY-MM-DD, %(error)s",
    "date_from_datetime_parsing": "Input should be a valid date or datetime, %(error)s",
    "date_type": "Input should be a valid date",
    "datetime_parsing": "Input should be a valid datetime, %(error)s",
    "datetime_from_date_parsing": "Input should be a valid datetime or date, %(error)s",
    "datetime_type": "Input should be a valid datetime",
    "timezone_aware": "Input should have timezone info",
    "time_parsing": "Input should be in a valid time format, %(error)s",
    "uuid_parsing": "Input should be a valid UUID, %(error)s",
    "url_parsing": "Input should be a valid URL, %(error)s",
    "json_invalid": "Invalid JSON: %(error)s",
    "value_error": "Value error, %(error)s",
}
_WORDS = {"de": {" or ": " oder ", " and ": " und "}}  # in a pydantic list of choices

# -- finding the templates in the source -----------------------------------------------------

# the classes of speicher.errors whose first argument (``message``) is shown to the user
# (InvalidInput's is a list of problems: its ``reason`` is; see _reasons_of)
_ERRORS = {"SpeicherError", "InvalidInput", "NotFound", "Conflict", "Forbidden", "Unauthorized"}
_ERRORS.add("OperationFailed")
_ADDERS = {"v", "validator", "errors", "found", "missing"}  # Validator's and Errors' names
# ValueErrors of these packages are the plumbing's own (renderers, wire protocols, system
# tools) and never a form's problem; elsewhere a ValueError's text may be one (names.py)
_PLUMBING = ("system", "protocols")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


def _name_of(node: ast.expr) -> str:
    """A placeholder's name for an f-string's expression: ``{req.smtp_host}``: smtp_host."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
        return _name_of(node.value)
    if isinstance(node, ast.Call):
        if node.args and not isinstance(node.args[0], ast.Constant):
            return _name_of(node.args[0])  # str(figures), len(devices)
        return _name_of(node.func)
    return "value"


def _template(node: ast.expr, constants: dict[str, str]) -> list[str]:
    """The templates a reason expression can be (an ``a if c else b`` is two)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value.replace("%", "%%")]
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id].replace("%", "%%")]
    if isinstance(node, ast.IfExp):
        return _template(node.body, constants) + _template(node.orelse, constants)
    if isinstance(node, ast.BoolOp):  # ``message or "starting"``: the texts among its values
        return [t for value in node.values for t in _template(value, constants)]
    if not isinstance(node, ast.JoinedStr):
        return []
    out: list[str] = []
    seen: dict[str, int] = {}
    for part in node.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            out.append(part.value.replace("%", "%%"))
        elif (
            isinstance(part, ast.FormattedValue)
            and isinstance(part.value, ast.Name)
            and part.value.id in constants
            and part.conversion == -1
            and part.format_spec is None
        ):
            out.append(constants[part.value.id].replace("%", "%%"))  # a fixed text: words
        elif isinstance(part, ast.FormattedValue):
            base = re.sub(r"\W+", "_", _name_of(part.value)).strip("_") or "value"
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}_{seen[base]}"
            out.append(f"%({name})s")
    return ["".join(out)]


def _pydantic_template(node: ast.expr) -> list[str]:
    """A ``PydanticCustomError``'s message template: ``{why}`` is ``%(why)s``."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return []
    text = node.value.replace("%", "%%")
    return [re.sub(r"\{(\w+)\}", r"%(\1)s", text)]


@dataclass
class _Module:
    path: Path
    tree: ast.Module
    constants: dict[str, str]  # NAME = "text" at the top, and those imported from others


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _reasons_of(call: ast.Call, errors: set[str], sinks: dict[str, int]) -> list[ast.expr]:
    """The arguments of ``call`` that are reasons a user reads."""
    name = _call_name(call)
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    func = call.func
    if name == "add" and isinstance(func, ast.Attribute) and len(call.args) == 2:
        receiver = func.value
        last = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
        return [call.args[1]] if last in _ADDERS else []
    if name == "Problem":
        return call.args[1:2] or ([keywords["reason"]] if "reason" in keywords else [])
    if name == "InvalidInput":
        return [keywords["reason"]] if "reason" in keywords else []
    if name in errors:
        return call.args[:1] or ([keywords["message"]] if "message" in keywords else [])
    if name == "PydanticCustomError":
        return []  # a template of its own syntax: see reason_templates
    if name == "progress" and len(call.args) == 2:
        return [call.args[1]]  # a job's step, as its progress bar says it (``progress(5, "...")``)
    if isinstance(func, ast.Name) and name in sinks and len(call.args) > sinks[name]:
        return [call.args[sinks[name]]]
    return []


def _reason_function(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A rule's check: returns ``str | None``, the reason a value is wrong or None (names.py,
    passwords.check, schedule.check)."""
    return fn.returns is not None and ast.unparse(fn.returns) in ("str | None", "Optional[str]")


def _modules(root: Path) -> list[_Module]:
    modules = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        modules.append(_Module(path, tree, constants))
    by_name = {".".join(m.path.relative_to(root.parent).with_suffix("").parts): m for m in modules}
    for module in modules:  # ``from speicher.validation import REASON``
        for node in module.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module in by_name:
                source = by_name[node.module].constants
                for alias in node.names:
                    if alias.name in source:
                        module.constants.setdefault(alias.asname or alias.name, source[alias.name])
    return modules


def _error_classes(modules: list[_Module]) -> set[str]:
    """speicher.errors' classes and their subclasses anywhere (files.links.TooLarge)."""
    errors = set(_ERRORS)
    changed = True
    while changed:
        changed = False
        for module in modules:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.ClassDef) and node.name not in errors:
                    bases = {b.id if isinstance(b, ast.Name) else "" for b in node.bases}
                    if bases & errors:
                        errors.add(node.name)
                        changed = True
    return errors


def _sinks(modules: list[_Module], errors: set[str]) -> dict[str, int]:
    """Plain functions that pass a parameter on as a reason (``_refuse(reason)``): which."""
    sinks: dict[str, int] = {}
    changed = True
    while changed:
        changed = False
        for module in modules:
            for fn in module.tree.body:
                if not isinstance(fn, ast.FunctionDef) or fn.name in sinks:
                    continue
                params = [a.arg for a in fn.args.args]
                for node in ast.walk(fn):
                    if not isinstance(node, ast.Call):
                        continue
                    for arg in _reasons_of(node, errors, sinks):
                        if isinstance(arg, ast.Name) and arg.id in params:
                            sinks[fn.name] = params.index(arg.id)
                            changed = True
    return sinks


def _found_at(
    node: ast.AST, module: _Module, errors: set[str], sinks: dict[str, int], plumbing: bool
) -> list[str]:
    """The reason templates of one node of a module's tree."""
    if isinstance(node, ast.Call):
        found: list[str] = []
        if _call_name(node) == "PydanticCustomError" and len(node.args) > 1:
            found = _pydantic_template(node.args[1])
        for arg in _reasons_of(node, errors, sinks):
            found += _template(arg, module.constants)
        return found
    if isinstance(node, ast.Raise) and not plumbing:
        exc = node.exc
        if isinstance(exc, ast.Call) and _call_name(exc) == "ValueError" and exc.args:
            return _template(exc.args[0], module.constants)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _reason_function(node):
        returns = [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value]
        # sentences only: a check's reason, not a code such as "error"
        return [t for r in returns for t in _template(r, module.constants) if " " in t]
    return []


def reason_templates(root: Path = PACKAGE) -> list[str]:
    """Every template of a reason the service layer (and the web's own forms) may give, in
    order of first appearance, as catalog msgids (``%(name)s`` placeholders, ``%%``)."""
    modules = _modules(root)
    errors = _error_classes(modules)
    sinks = _sinks(modules, errors)
    found: dict[str, None] = {}
    for module in modules:
        plumbing = module.path.relative_to(root).parts[0] in _PLUMBING
        for node in ast.walk(module.tree):
            for text in _found_at(node, module, errors, sinks, plumbing):
                if _PLACEHOLDER.sub("", text).strip():  # some words, not only values
                    found.setdefault(text, None)
    return list(found)


# -- translating -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    translation: str


def _compile(template: str, translation: str) -> _Compiled:
    regex: list[str] = []
    names: list[str] = []
    at = 0
    for match in _PLACEHOLDER.finditer(template):
        regex.append(re.escape(template[at : match.start()]))
        if match.group(1):
            names.append(match.group(1))
            regex.append("(.+?)")
        else:
            regex.append("%")
        at = match.end()
    regex.append(re.escape(template[at:]))
    return _Compiled(re.compile("".join(regex), re.S), tuple(names), translation)


def _specificity(template: str) -> tuple[int, int]:
    """More literal text first, then fewer placeholders: ``'%(n)s' is reserved for the
    system`` before ``'%(n)s' is reserved``."""
    literal = _PLACEHOLDER.sub("", template)
    return (-len(literal), len(_PLACEHOLDER.findall(template)))


@functools.cache
def _templates(lang: str) -> tuple[_Compiled, ...]:
    """The translated reason templates of ``lang``, compiled once, most specific first."""
    if lang == i18n.DEFAULT:
        return ()
    found = [
        (m.id, m.string)
        for m in i18n.catalog(lang)
        if m.context == PROBLEM and isinstance(m.id, str) and isinstance(m.string, str)
        if m.string
    ]
    found.sort(key=lambda pair: _specificity(pair[0]))
    return tuple(_compile(template, german) for template, german in found)


def reason(text: str, lang: str) -> str:
    """A service reason in ``lang``: its template's translation with its values, else as is."""
    for compiled in _templates(lang):
        match = compiled.pattern.fullmatch(text)
        if match:
            values = dict(zip(compiled.names, match.groups(), strict=True))
            return _fill(compiled.translation, values)
    return text


def _fill(translation: str, values: dict[str, Any]) -> str:
    try:
        return translation % values
    except (KeyError, TypeError, ValueError):
        return translation  # a broken translation shows, rather than failing the page


def pydantic(kind: str, ctx: dict[str, Any], message: str, lang: str) -> str:
    """pydantic's error ``kind`` with ``ctx`` in ``lang``; its English ``message`` when the
    catalog does not know it."""
    if lang == i18n.DEFAULT:
        return message
    msgid = PYDANTIC.get(kind)
    if msgid is None:
        return reason(message, lang)  # a PydanticCustomError: a service reason
    translation = str(i18n.translations(lang).pgettext(PYDANTIC_CONTEXT, msgid))
    if translation == msgid:
        return message
    if kind == "value_error":  # a validator's ValueError: a service reason
        inner = str(ctx.get("error", ""))
        translated = reason(inner, lang)
        return _fill(translation, {"error": translated}) if translated != inner else message
    words = _WORDS.get(lang, {})
    values: dict[str, Any] = {}
    for name, value in ctx.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[name] = i18n.number(value, lang)
        else:
            values[name] = str(value)
            if name == "expected":  # "'a', 'b' or 'c'"
                for english, own in words.items():
                    values[name] = values[name].replace(english, own)
    return _fill(translation, values)
