"""Data protection impact assessments in the CNIL PIA structure: the content checked section by
section, every save a new version, the export of one version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.control.common import By, audit, check_choice, check_score, check_text
from vern.control.models import ControlDpia, ControlDpiaVersion
from vern.control.risks import THREATS
from vern.core.errors import InvalidInput, NotFound

DPIA_SECTIONS: dict[str, tuple[str, ...]] = {
    "context": ("overview", "processing", "responsibilities", "standards", "data", "lifecycle",
                "supporting_assets"),
    "principles": ("purposes", "legal_basis", "minimisation", "accuracy", "retention",
                   "information", "consent", "access_portability", "rectification_erasure",
                   "restriction_objection", "processors", "transfers"),
    "risks": ("measures", "illegitimate_access", "unwanted_change", "disappearance", "overview"),
    "validation": ("action_plan", "dpo_opinion", "data_subjects_opinion", "decision"),
}
RISK_PARTS = ("impacts", "threats", "sources", "measures", "severity", "likelihood")
DPIA_DECISIONS = ("", "accepted", "accepted_with_actions", "refused")


def check_dpia(content: Any) -> dict[str, Any]:
    """The DPIA content in the CNIL PIA structure; unknown sections or fields are refused by
    name, texts are bounded, severity and likelihood are 1-4."""
    if not isinstance(content, dict):
        raise InvalidInput.on("content", "must be an object")
    clean: dict[str, Any] = {}
    for section, value in content.items():
        if section not in DPIA_SECTIONS:
            raise InvalidInput.on(f"content.{section}", "unknown section")
        if not isinstance(value, dict):
            raise InvalidInput.on(f"content.{section}", "must be an object")
        part: dict[str, Any] = {}
        for name, text in value.items():
            where = f"content.{section}.{name}"
            if name not in DPIA_SECTIONS[section]:
                raise InvalidInput.on(where, "unknown field")
            if section == "risks" and name in THREATS:
                part[name] = _check_risk_part(where, text)
            elif section == "validation" and name == "decision":
                part[name] = check_choice(where, str(text), DPIA_DECISIONS)
            else:
                if not isinstance(text, str):
                    raise InvalidInput.on(where, "must be text")
                part[name] = check_text(where, text, 20000, required=False)
        clean[section] = part
    return clean


def _check_risk_part(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput.on(where, "must be an object")
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name not in RISK_PARTS:
            raise InvalidInput.on(f"{where}.{name}", "unknown field")
        if name in ("severity", "likelihood"):
            if item is None:
                out[name] = None
                continue
            if not isinstance(item, int) or isinstance(item, bool):
                raise InvalidInput.on(f"{where}.{name}", "must be 1-4")
            out[name] = check_score(f"{where}.{name}", item)
        else:
            if not isinstance(item, str):
                raise InvalidInput.on(f"{where}.{name}", "must be text")
            out[name] = check_text(f"{where}.{name}", item, 20000, required=False)
    return out


def dpia_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """DPIA content from the console's form, whose fields are named ``section.field`` (and
    ``risks.<threat>.<part>`` for a threat's analysis); an empty severity or likelihood is none,
    anything else must be a number 1-4 (refused naming the field). ``check_dpia`` checks the rest."""
    content: dict[str, Any] = {}
    for section, fields in DPIA_SECTIONS.items():
        part: dict[str, Any] = {}
        for name in fields:
            if section == "risks" and name in THREATS:
                risk: dict[str, Any] = {}
                for item in RISK_PARTS:
                    raw = str(form.get(f"risks.{name}.{item}", "")).strip()
                    if item in ("severity", "likelihood"):
                        if raw and not raw.isdigit():
                            raise InvalidInput.on(f"content.risks.{name}.{item}", "must be 1-4")
                        risk[item] = int(raw) if raw else None
                    else:
                        risk[item] = raw
                part[name] = risk
            else:
                part[name] = str(form.get(f"{section}.{name}", ""))
        content[section] = part
    return content


def create_dpia(session: Session, by: By, *, processing: str,
                content: dict[str, Any] | None = None) -> ControlDpia:
    dpia = ControlDpia(processing=check_text("processing", processing, 200))
    session.add(dpia)
    session.flush()
    session.add(ControlDpiaVersion(dpia_id=dpia.id, version=1, content=check_dpia(content or {}),
                                   author_user_id=by.user_id))
    audit(session, by, "control.dpia.create", f"control_dpia:{dpia.id}", version=1)
    return dpia


def save_dpia(session: Session, by: By, dpia_id: str, content: dict[str, Any]) -> ControlDpiaVersion:
    """A new version of the DPIA; earlier versions are kept."""
    dpia = get_dpia(session, dpia_id)
    clean = check_dpia(content)
    latest = session.scalar(select(func.max(ControlDpiaVersion.version)).where(
        ControlDpiaVersion.dpia_id == dpia.id)) or 0
    version = ControlDpiaVersion(dpia_id=dpia.id, version=latest + 1, content=clean,
                                 author_user_id=by.user_id)
    session.add(version)
    session.flush()
    audit(session, by, "control.dpia.save", f"control_dpia:{dpia.id}", version=latest + 1)
    return version


def get_dpia(session: Session, dpia_id: str) -> ControlDpia:
    dpia = session.get(ControlDpia, dpia_id)
    if dpia is None:
        raise NotFound()
    return dpia


def list_dpias(session: Session) -> list[ControlDpia]:
    return list(session.scalars(select(ControlDpia).order_by(ControlDpia.processing)))


def dpia_versions(session: Session, dpia_id: str) -> list[ControlDpiaVersion]:
    return list(session.scalars(select(ControlDpiaVersion).where(
        ControlDpiaVersion.dpia_id == dpia_id).order_by(ControlDpiaVersion.version.desc())))


def dpia_export(session: Session, dpia_id: str, version: int | None = None) -> dict[str, Any]:
    dpia = get_dpia(session, dpia_id)
    versions = dpia_versions(session, dpia.id)
    chosen = versions[0] if version is None else next(
        (v for v in versions if v.version == version), None)
    if chosen is None:
        raise NotFound()
    return {"id": dpia.id, "processing": dpia.processing, "structure": "CNIL PIA",
            "version": chosen.version, "saved_at": chosen.created_at.isoformat(),
            "author_user_id": chosen.author_user_id,
            "versions": [v.version for v in versions],
            "content": {s: {f: chosen.content.get(s, {}).get(f) for f in fields}
                        for s, fields in DPIA_SECTIONS.items()}}
