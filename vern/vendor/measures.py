"""The catalogue of the vendor's technical and organisational measures, with their owners,
status and evidence; seeded from ``measures.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.audit.service import record as audit
from vern.core.db import utcnow
from vern.core.errors import InvalidInput, NotFound
from vern.vendor.checks import check_choice, check_key, check_text, vendor_org_id
from vern.vendor.models import Measure
from vern.vendor.views import MeasureView, measure_view

MEASURE_CATEGORIES = ("technical", "organisational")
MEASURE_STATUSES = ("planned", "in_place", "retired")
SEED_MEASURES = Path(__file__).with_name("measures.yaml")


@dataclass(frozen=True)
class MeasureInput:
    key: str
    category: str
    title_nb: str
    title_en: str
    description_nb: str = ""
    description_en: str = ""
    area: str = ""
    owner: str = ""
    status: str = "planned"
    evidence: tuple[tuple[str, str], ...] = ()  # (title, https URL)
    source: str = ""


def _evidence(items: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    out = []
    for i, (given_title, given_url) in enumerate(items):
        title = check_text(f"evidence.{i}.title", given_title, limit=200)
        url = (given_url or "").strip()
        if not re.fullmatch(r"https://[^\s<>\"']{3,1990}", url):
            raise InvalidInput.on(f"evidence.{i}.url", "an https:// address", "url")
        out.append({"title": title, "url": url})
    return out


def _measure_values(data: MeasureInput) -> dict[str, Any]:
    return {
        "category": check_choice("category", data.category, MEASURE_CATEGORIES),
        "title_nb": check_text("title_nb", data.title_nb, limit=200),
        "title_en": check_text("title_en", data.title_en, limit=200),
        "description_nb": check_text("description_nb", data.description_nb, limit=4000, required=False),
        "description_en": check_text("description_en", data.description_en, limit=4000, required=False),
        "area": check_text("area", data.area, limit=40, required=False),
        "owner": check_text("owner", data.owner, limit=200, required=False),
        "status": check_choice("status", data.status, MEASURE_STATUSES),
        "evidence": _evidence(data.evidence),
        "source": check_text("source", data.source, limit=200, required=False),
    }


def _measure_state(m: Measure) -> dict[str, Any]:
    return {"category": m.category, "title_en": m.title_en, "owner": m.owner, "status": m.status,
            "evidence": len(m.evidence)}


def get_measure(session: Session, key: str) -> Measure:
    found = session.scalar(select(Measure).where(Measure.key == key))
    if found is None:
        raise NotFound(detail="no such measure")
    return found


def save_measure(session: Session, data: MeasureInput, *, actor_user_id: str | None
                 ) -> MeasureView:
    values = _measure_values(data)
    found = session.scalar(select(Measure).where(Measure.key == check_key(data.key)))
    old = _measure_state(found) if found is not None else None
    if found is None:
        found = Measure(key=data.key, **values)
        session.add(found)
    else:
        for name, value in values.items():
            setattr(found, name, value)
        found.updated_at = utcnow()
    session.flush()
    audit(session, "vendor.measure_saved", org_id=vendor_org_id(session),
          actor_user_id=actor_user_id, resource=f"measure:{data.key}",
          details={"old": old, "new": _measure_state(found)})
    return measure_view(found)


def seed_measures(session: Session, *, actor_user_id: str | None) -> int:
    """Add the seed documents' measures (``measures.yaml``) that are not in the catalogue yet;
    existing entries (with their owner, status and evidence) are left as they are."""
    raw: Any = yaml.safe_load(SEED_MEASURES.read_text(encoding="utf-8"))
    have = set(session.scalars(select(Measure.key)))
    added = 0
    for item in raw["measures"]:
        if item["key"] in have:
            continue
        save_measure(session, MeasureInput(
            key=item["key"], category=item["category"], area=item.get("area", ""),
            title_nb=item["title_nb"], title_en=item["title_en"],
            description_nb=item.get("description_nb", ""),
            description_en=item.get("description_en", ""), source=item.get("source", "")),
            actor_user_id=actor_user_id)
        added += 1
    return added
