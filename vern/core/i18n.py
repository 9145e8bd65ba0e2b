"""Every text a person reads, in bokmål or English, from one pair of Babel message catalogs.

Texts are written in English in the code and the templates and looked up in
``vern/locale/{nb,en}/LC_MESSAGES/messages.po`` (compiled ``messages.mo`` next to them, committed).
``make messages`` extracts the texts (``babel.cfg``), updates both catalogs and compiles them.
Error messages need no marking: the extractor below also collects the message of every
``InvalidInput.on(field, "...")``, ``SomeError(detail="...")`` and error ``title``; a message with
values is a ``%(name)s`` template with ``params`` (``InvalidInput.on("days", "at most %(n)s",
n=30)``), so the console shows it in the page's language while the API keeps the English text.
Numbers, dates and durations are formatted by Babel for the reader's locale.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date as _format_date
from babel.numbers import format_decimal
from babel.support import Translations

import vern

LOCALES = ("nb", "en")
DEFAULT_LOCALE = "nb"
DOMAIN = "messages"
LOCALE_DIR = Path(vern.__file__).resolve().parent / "locale"


def N_(message: str) -> str:  # noqa: N802 - the usual name of gettext's no-op marker
    """Marks a text that is translated later, where it is shown (a label looked up by value)."""
    return message


def norm(locale: str | None) -> str:
    return locale if locale in LOCALES else DEFAULT_LOCALE


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> Translations:
    found = Translations.load(str(LOCALE_DIR), [norm(locale)], domain=DOMAIN)
    if not isinstance(found, Translations):  # pragma: no cover - the catalogs are part of the package
        raise RuntimeError(f"no compiled catalog for {locale} under {LOCALE_DIR}; run `make messages`")
    return found


def gettext(locale: str | None, message: str, **params: Any) -> str:
    text = translations(norm(locale)).gettext(message)
    return text % params if params else text


def ngettext(locale: str | None, singular: str, plural: str, n: int, **params: Any) -> str:
    """``ngettext("nb", "%(n)s day", "%(n)s days", 90)`` → ``"90 dager"``; ``n`` is a parameter."""
    text = translations(norm(locale)).ngettext(singular, plural, n)
    return text % {"n": format_number(n, locale), **params}


# How dates and numbers are written: Norwegian, and British English (``6 December 2026``).
_FORMAT_LOCALE = {"nb": "nb_NO", "en": "en_GB"}


def format_number(value: float, locale: str | None) -> str:
    return format_decimal(value, locale=_FORMAT_LOCALE[norm(locale)])


def format_day(value: date | datetime | None, locale: str | None, form: str = "long") -> str:
    """A date as the reader writes it: ``6. desember 2026`` / ``6 December 2026``."""
    if value is None:
        return ""
    return _format_date(value, format=form, locale=_FORMAT_LOCALE[norm(locale)])


# Durations: stored as ``<number> <unit>`` (``90 days``); older free text in bokmål or English
# (``90 dager``, ``2 år``, ``24 timer``) is understood as well. Anything else (``session``) is shown
# as written.
_UNITS = {
    "second": ("s", "sec", "secs", "second", "seconds", "sekund", "sekunder"),
    "minute": ("min", "mins", "minute", "minutes", "minutt", "minutter"),
    "hour": ("h", "hour", "hours", "time", "timer"),
    "day": ("d", "day", "days", "dag", "dager", "døgn"),
    "week": ("w", "week", "weeks", "uke", "uker"),
    "month": ("mo", "month", "months", "måned", "måneder", "mnd"),
    "year": ("y", "year", "years", "år"),
}
_UNIT_OF = {word: unit for unit, words in _UNITS.items() for word in words}
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([a-zæøå]+)\.?\s*$", re.IGNORECASE)


def parse_duration(text: str) -> tuple[int, str] | None:
    """``"90 dager"`` → ``(90, "day")``; None when the text is not a number and a time unit."""
    match = _DURATION.match(text or "")
    if not match:
        return None
    unit = _UNIT_OF.get(match.group(2).lower())
    return (int(match.group(1)), unit) if unit else None


def canonical_duration(text: str) -> str:
    """What is stored: ``"90 dager"`` → ``"90 days"``; text that is no duration as given."""
    parsed = parse_duration(text)
    if parsed is None:
        return text.strip()
    n, unit = parsed
    return f"{n} {unit}{'' if n == 1 else 's'}"


def format_duration(text: str, locale: str | None) -> str:
    """A stored duration in the reader's language (``"90 days"`` → ``"90 dager"`` in bokmål)."""
    parsed = parse_duration(text)
    if parsed is None:
        return text
    n, unit = parsed
    return _UNIT_TEXT[unit](norm(locale), n)


_UNIT_TEXT = {
    "second": lambda loc, n: ngettext(loc, "%(n)s second", "%(n)s seconds", n),
    "minute": lambda loc, n: ngettext(loc, "%(n)s minute", "%(n)s minutes", n),
    "hour": lambda loc, n: ngettext(loc, "%(n)s hour", "%(n)s hours", n),
    "day": lambda loc, n: ngettext(loc, "%(n)s day", "%(n)s days", n),
    "week": lambda loc, n: ngettext(loc, "%(n)s week", "%(n)s weeks", n),
    "month": lambda loc, n: ngettext(loc, "%(n)s month", "%(n)s months", n),
    "year": lambda loc, n: ngettext(loc, "%(n)s year", "%(n)s years", n),
}


_FIELD_PREFIX = re.compile(r"^[a-z_][a-z0-9_.]*: ")


def error_text(locale: str | None, template: str, params: dict[str, Any] | None = None) -> str:
    """An error message (a catalog msgid, maybe with ``%(name)s`` values) in the reader's language;
    a ``"field: message"`` detail keeps its field name and has the message translated."""
    if not template:
        return ""
    prefix = _FIELD_PREFIX.match(template)
    if prefix:
        return prefix.group(0) + error_text(locale, template[prefix.end():], params)
    text = translations(norm(locale)).gettext(template)
    if not params:
        return text
    try:
        return text % params
    except (KeyError, ValueError, TypeError):
        return template % params


# -- extraction -----------------------------------------------------------------------------------

_ERROR_CLASSES = re.compile(r"^[A-Z]?\w*?(VernError|Input|Forbidden|NotFound|Conflict|Unauthenticated"
                            r"|Unavailable|Locked|Limited|Large)$")


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _title(item: ast.stmt) -> str | None:
    """The text of a class attribute ``title = "..."`` (an error's title), or None."""
    targets = item.targets if isinstance(item, ast.Assign) else \
        [item.target] if isinstance(item, ast.AnnAssign) else []
    if len(targets) == 1 and isinstance(targets[0], ast.Name) and targets[0].id == "title":
        return _text(getattr(item, "value", None))
    return None


def _call_messages(node: ast.Call) -> Iterator[str]:
    """The messages of one call: ``….on(field, message)`` / ``FieldError(field, message)``, or the
    ``detail=`` of an error class (both branches of a conditional ``detail``)."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name in {"on", "FieldError"} and len(node.args) >= 2 and (text := _text(node.args[1])):
        yield text
    elif _ERROR_CLASSES.match(name):
        for kw in node.keywords:
            if kw.arg == "detail":
                for value in (kw.value.body, kw.value.orelse) if isinstance(kw.value, ast.IfExp) \
                        else (kw.value,):
                    if text := _text(value):
                        yield text


def error_messages(source: str) -> Iterator[tuple[int, str]]:
    """(line, message) of every error message written in Python source (see the module's text)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if text := _title(item):
                    yield item.lineno, text
        if isinstance(node, ast.Call):
            for text in _call_messages(node):
                yield node.lineno, text


def extract_vern(fileobj: Any, keywords: Any, comment_tags: Any, options: Any) -> Iterator[Any]:
    """Babel extraction method for Vern's Python files: the ordinary ``gettext`` calls plus the
    error messages."""
    from babel.messages.extract import extract_python

    data = fileobj.read()
    fileobj.seek(0)
    yield from extract_python(fileobj, keywords, comment_tags, options)
    source = data.decode(options.get("encoding", "utf-8")) if isinstance(data, bytes) else data
    for lineno, text in error_messages(source):
        message = _FIELD_PREFIX.sub("", text)
        if message.strip():
            yield lineno, None, message, []
