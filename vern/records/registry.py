"""What the records read from the vendor registry (``vern.vendor.service``): sub-processors,
measures, systems, officers, customer profiles, maintenance notices and notice recipients.

The registry owns those facts; this module only reads them through its service functions and
puts them into the plain shapes the record, the documents and the trust page use.
"""

from __future__ import annotations

import dataclasses
import importlib
from datetime import date, datetime
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

# Norway and the EU/EEA: no transfer mechanism is needed inside (Art. 44-45).
EEA = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "NO", "IS", "LI",
})


def _vendor() -> Any | None:
    try:
        return importlib.import_module("vern.vendor.service")
    except ModuleNotFoundError:
        return None


def available() -> bool:
    return _vendor() is not None


def plain(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    state = inspect(obj, raiseerr=False)
    if state is not None and hasattr(state, "mapper"):
        return {a.key: getattr(obj, a.key) for a in state.mapper.column_attrs}
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _call(name: str, *args: Any, **kwargs: Any) -> Any:
    module = _vendor()
    if module is None or not hasattr(module, name):
        return None
    return getattr(module, name)(*args, **kwargs)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _countries(row: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for key in ("storage_locations", "processing_locations", "locations", "countries", "location",
                "country"):
        value = row.get(key)
        if isinstance(value, str) and value:
            found += [v.strip().upper() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            found += [str(v).strip().upper() for v in value if str(v).strip()]
    return sorted(set(found))


def subprocessor_view(row: dict[str, Any]) -> dict[str, Any]:
    countries = _countries(row)
    outside = [c for c in countries if c[:2] not in EEA]
    return {
        "id": _text(row.get("id")),
        "name": _text(row.get("name")),
        "service": _text(row.get("service") or row.get("purpose")),
        "data_categories": list(row.get("data_categories") or []),
        "locations": countries,
        "outside_eea": outside,
        "transfer_mechanism": _text(row.get("transfer_mechanism") or row.get("mechanism")),
        "agreement_date": _text(row.get("agreement_date") or row.get("agreement_signed_on")),
        "last_audit": _text(row.get("last_audit") or row.get("last_audit_on")),
        "audit_result": _text(row.get("audit_result") or row.get("last_audit_result")),
    }


def subprocessors(session: Session) -> list[dict[str, Any]]:
    return [subprocessor_view(plain(r)) for r in (_call("list_subprocessors", session) or [])]


def measures(session: Session) -> list[dict[str, Any]]:
    out = []
    for r in _call("list_measures", session) or []:
        row = plain(r)
        out.append({
            "key": _text(row.get("key") or row.get("id")),
            "kind": _text(row.get("kind") or row.get("type")),
            "title_nb": _text(row.get("title_nb") or row.get("name_nb") or row.get("title")),
            "title_en": _text(row.get("title_en") or row.get("name_en") or row.get("title")),
            "status": _text(row.get("status")),
            "owner": _text(row.get("owner")),
        })
    return out


def systems(session: Session) -> list[dict[str, Any]]:
    out = []
    for r in _call("list_systems", session) or []:
        row = plain(r)
        countries = _countries(row)
        out.append({"name": _text(row.get("name")), "locations": countries,
                    "outside_eea": [c for c in countries if c[:2] not in EEA],
                    "transfer_mechanism": _text(row.get("transfer_mechanism"))})
    return out


def officers(session: Session) -> dict[str, Any]:
    return plain(_call("officers", session))


def customer_profile(session: Session, org_id: str) -> dict[str, Any]:
    return plain(_call("customer_profile", session, org_id))


def maintenance(session: Session) -> list[dict[str, Any]]:
    return [plain(r) for r in (_call("list_maintenance", session) or [])]


def notice_recipients(session: Session, org_id: str) -> list[tuple[str, str]]:
    """(data key id, address) of the people a customer wants told; empty without a registry."""
    return list(_call("notice_recipients", session, org_id) or [])
