"""One translation mechanism: the Babel catalogs are complete, compiled and up to date with the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from babel.support import Translations

import vern
from vern.core import i18n
from vern.core.errors import InvalidInput

ROOT = Path(vern.__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _catalog(locale: str) -> Catalog:
    with (i18n.LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


def _ids(catalog: Catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_every_message_has_a_translation_with_the_same_values(locale: str) -> None:
    catalog = _catalog(locale)
    assert len(catalog) > 500
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        assert all(strings), f"{locale}: no translation for {message.id!r}"
        assert not message.fuzzy, f"{locale}: fuzzy translation for {message.id!r}"
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(ids[0])), message.id


def test_both_catalogs_hold_the_same_messages() -> None:
    assert _ids(_catalog("nb")) == _ids(_catalog("en"))


def test_the_catalogs_are_extracted_from_the_current_code_and_templates() -> None:
    """Run the extraction of ``make messages`` and compare: a text in the code or a template that
    is not in the catalogs (or a catalog text no longer used) fails here."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {"_": None, "gettext": (2,), "ngettext": (2, 3), "N_": None}
    extracted: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT / "vern"), method_map, options_map, keywords=keywords):
        extracted.add(message if isinstance(message, str) else message[0])
    committed = _ids(_catalog("nb"))
    assert sorted(extracted - committed) == [], "run `make messages` and translate the new texts"
    assert sorted(committed - extracted) == [], "run `make messages`: these texts are no longer used"


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_the_compiled_catalogs_match_the_po_files(locale: str) -> None:
    compiled = Translations.load(str(i18n.LOCALE_DIR), [locale], domain=i18n.DOMAIN)
    for message in _catalog(locale):
        if message.id and isinstance(message.id, str):
            assert compiled.gettext(message.id) == message.string, "run `make messages` to compile"


def test_an_error_message_with_values_is_found_and_translated() -> None:
    source = 'raise InvalidInput.on("days", "must be 1-%(n)s", n=90)\nraise Conflict(detail="x: y z")\n'
    assert [m for _line, m in i18n.error_messages(source)] == ["must be 1-%(n)s", "x: y z"]
    exc = InvalidInput.on("days", "must be 1-%(n)s", n=365)
    assert exc.errors[0].message == "must be 1-365" and exc.detail == "days: must be 1-365"
    assert i18n.error_text("nb", exc.errors[0].template, exc.errors[0].params) == "må være 1–365"
    assert i18n.error_text("nb", exc.template, exc.params) == "days: må være 1–365"


def test_durations_dates_and_plurals_follow_the_readers_locale() -> None:
    assert i18n.canonical_duration("90 dager") == "90 days"
    assert i18n.canonical_duration("1 dag") == "1 day"
    assert i18n.canonical_duration("Til du melder deg av") == "Til du melder deg av"
    assert i18n.format_duration("90 days", "en") == "90 days"
    assert i18n.format_duration("90 days", "nb") == "90 dager"
    assert i18n.format_duration("2 år", "en") == "2 years"
    assert i18n.format_duration("24 hours", "nb") == "24 timer"
    assert i18n.format_duration("session", "nb") == "session"
    from datetime import date

    assert i18n.format_day(date(2026, 12, 6), "nb") == "6. desember 2026"
    assert i18n.format_day(date(2026, 12, 6), "en") == "6 December 2026"
    assert i18n.format_number(1234567, "nb") == "1\xa0234\xa0567"
