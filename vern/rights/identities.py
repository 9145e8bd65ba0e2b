"""Who a request is about: the identities a person gives, validated, and the keyed hashes by which
Vern recognises the person later without keeping who it is."""

from __future__ import annotations

from typing import Any

from vern.core.crypto import blind_index
from vern.core.errors import InvalidInput
from vern.datamap.detectors import is_email, is_national_id, is_phone
from vern.datamap.model import IDENTITY_KINDS
from vern.rights.runtime import secret as vendor_secret


def secret() -> bytes:

    return vendor_secret()


def clean_identities(raw: dict[str, Any]) -> dict[str, str]:
    """Validated identities; an error names the field that is wrong."""
    found: dict[str, str] = {}
    for kind, value in raw.items():
        if value is None or str(value).strip() == "":
            continue
        text = str(value).strip()
        if kind not in IDENTITY_KINDS:
            raise InvalidInput.on(
                f"identities.{kind}", f"unknown identity (use one of {', '.join(IDENTITY_KINDS)})"
            )
        if len(text) > 254:
            raise InvalidInput.on(f"identities.{kind}", "is too long")
        if kind == "email" and not is_email(text):
            raise InvalidInput.on("identities.email", "is not an e-mail address")
        if kind == "phone" and not is_phone(text):
            raise InvalidInput.on(
                "identities.phone", "is not a Norwegian phone number (8 digits, +47 optional)"
            )
        if kind == "national_id" and not is_national_id(text):
            raise InvalidInput.on("identities.national_id", "is not a valid national identity or D-number")
        found[kind] = text.lower() if kind == "email" else text
    if not found:
        raise InvalidInput.on(
            "identities", "give at least one identity (e-mail, user id, phone, national id)"
        )
    return found


def identity_refs(identities: dict[str, str]) -> list[str]:
    """Keyed hashes of each identity: how Vern recognises a person without keeping who it is."""
    key = secret()
    refs = []
    for kind, value in sorted(identities.items()):
        normal = "".join(c for c in value if c.isdigit())[-8:] if kind == "phone" else value
        refs.append(blind_index(key, f"{kind}:{normal}", "rights.subject"))
    return refs


def subject_ref(identities: dict[str, str]) -> str:
    for kind in ("email", "national_id", "phone", "user_id"):
        if kind in identities:
            return identity_refs({kind: identities[kind]})[0]
    raise InvalidInput.on("identities", "no identity given")
