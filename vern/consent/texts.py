"""The banner's words and the names of the legal bases, from the catalogs (``vern.core.i18n``)."""

from __future__ import annotations

from vern.core.i18n import N_, gettext

BANNER = {
    "title": N_("We use cookies"),
    "body": N_("%(org)s uses cookies that the website needs to work. With your consent we also use "
               "cookies for the purposes below. You can change or withdraw your choice at any time."),
    "accept": N_("Accept all"),
    "reject": N_("Reject all"),
    "choose": N_("Choose"),
    "save": N_("Save choices"),
    "change": N_("Cookie settings"),
    "policy": N_("Read the cookie declaration"),
    "required": N_("always on"),
    "close": N_("Close"),
}

BASES = {
    "a": N_("consent (Art. 6(1)(a))"), "b": N_("contract (Art. 6(1)(b))"),
    "c": N_("legal obligation (Art. 6(1)(c))"), "d": N_("vital interests (Art. 6(1)(d))"),
    "e": N_("public interest (Art. 6(1)(e))"), "f": N_("legitimate interest (Art. 6(1)(f))"),
}


def banner_texts(locale: str, org: str) -> dict[str, str]:
    """The banner's words in the visitor's language, the organisation named."""
    return {key: gettext(locale, text, **({"org": org} if key == "body" else {}))
            for key, text in BANNER.items()}


def bases(locale: str) -> dict[str, str]:
    return {letter: gettext(locale, text) for letter, text in BASES.items()}
