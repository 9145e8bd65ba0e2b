"""The banner's words, in bokmål and English (served with the banner configuration)."""

from __future__ import annotations

BANNER: dict[str, dict[str, str]] = {
    "nb": {
        "title": "Vi bruker informasjonskapsler",
        "body": "{org} bruker informasjonskapsler som trengs for at nettstedet skal virke. Med ditt "
                "samtykke bruker vi også informasjonskapsler til formålene under. Du kan når som "
                "helst endre eller trekke tilbake valget ditt.",
        "accept": "Godta alle",
        "reject": "Avvis alle",
        "choose": "Velg selv",
        "save": "Lagre valgene",
        "change": "Informasjonskapsler",
        "policy": "Les erklæringen om informasjonskapsler",
        "required": "alltid på",
        "close": "Lukk",
    },
    "en": {
        "title": "We use cookies",
        "body": "{org} uses cookies that the website needs to work. With your consent we also use "
                "cookies for the purposes below. You can change or withdraw your choice at any time.",
        "accept": "Accept all",
        "reject": "Reject all",
        "choose": "Choose",
        "save": "Save choices",
        "change": "Cookie settings",
        "policy": "Read the cookie declaration",
        "required": "always on",
        "close": "Close",
    },
}

BASES: dict[str, dict[str, str]] = {
    "nb": {
        "a": "samtykke (art. 6 nr. 1 a)", "b": "avtale (art. 6 nr. 1 b)",
        "c": "rettslig forpliktelse (art. 6 nr. 1 c)", "d": "vitale interesser (art. 6 nr. 1 d)",
        "e": "allmennhetens interesse (art. 6 nr. 1 e)", "f": "berettiget interesse (art. 6 nr. 1 f)",
    },
    "en": {
        "a": "consent (Art. 6(1)(a))", "b": "contract (Art. 6(1)(b))",
        "c": "legal obligation (Art. 6(1)(c))", "d": "vital interests (Art. 6(1)(d))",
        "e": "public interest (Art. 6(1)(e))", "f": "legitimate interest (Art. 6(1)(f))",
    },
}
