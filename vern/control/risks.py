"""The risk register: each risk's likelihood and consequence before and after its measures, and
the measures with their owners and status.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.control.common import By, audit, check_choice, check_score, check_text, staff_member
from vern.control.models import ControlMeasure, ControlRisk
from vern.core.db import utcnow
from vern.core.errors import InvalidInput, NotFound

THREATS = ("illegitimate_access", "unwanted_change", "disappearance")
MEASURE_STATUSES = ("planned", "in_progress", "done")


def risk_level(likelihood: int | None, consequence: int | None) -> str | None:
    if likelihood is None or consequence is None:
        return None
    score = likelihood * consequence
    return "low" if score <= 3 else "medium" if score <= 8 else "high"


def create_risk(
    session: Session, by: By, *, asset: str, threat: str, likelihood_before: int,
    consequence_before: int, description: str = "", likelihood_after: int | None = None,
    consequence_after: int | None = None, owner_user_id: str | None = None,
) -> ControlRisk:
    risk = ControlRisk(
        asset=check_text("asset", asset, 200), threat=check_choice("threat", threat, THREATS),
        description=check_text("description", description, 5000, required=False),
        likelihood_before=check_score("likelihood_before", likelihood_before),
        consequence_before=check_score("consequence_before", consequence_before),
        likelihood_after=check_score("likelihood_after", likelihood_after, required=False),
        consequence_after=check_score("consequence_after", consequence_after, required=False),
        owner_user_id=(staff_member(session, "owner", owner_user_id) if owner_user_id
                       else None),
    )
    session.add(risk)
    session.flush()
    audit(session, by, "control.risk.create", f"control_risk:{risk.id}", threat=threat,
          before=[likelihood_before, consequence_before],
          after=[likelihood_after, consequence_after])
    return risk


def update_risk(session: Session, by: By, risk_id: str, **changes: Any) -> ControlRisk:
    risk = get_risk(session, risk_id)
    old, new = {}, {}
    for name, given in changes.items():
        if given is None:
            continue
        value: Any = given
        if name in ("likelihood_before", "consequence_before", "likelihood_after",
                    "consequence_after"):
            value = check_score(name, value)
        elif name == "threat":
            value = check_choice("threat", value, THREATS)
        elif name == "asset":
            value = check_text("asset", value, 200)
        elif name == "description":
            value = check_text("description", value, 5000, required=False)
        elif name == "owner_user_id":
            value = staff_member(session, "owner", value)
        else:
            raise InvalidInput.on(name, "unknown field")
        old[name], new[name] = getattr(risk, name), value
        setattr(risk, name, value)
    risk.updated_at = utcnow()
    audit(session, by, "control.risk.update", f"control_risk:{risk.id}", old=old, new=new)
    return risk


def get_risk(session: Session, risk_id: str) -> ControlRisk:
    risk = session.get(ControlRisk, risk_id)
    if risk is None:
        raise NotFound()
    return risk


def list_risks(session: Session) -> list[ControlRisk]:
    rows = list(session.scalars(select(ControlRisk).order_by(ControlRisk.asset)))
    rows.sort(key=lambda r: -(r.likelihood_before * r.consequence_before))
    return rows


def add_measure(session: Session, by: By, risk_id: str, *, text: str,
                owner_user_id: str | None = None, status: str = "planned") -> ControlMeasure:
    risk = get_risk(session, risk_id)
    m = ControlMeasure(risk_id=risk.id, text=check_text("text", text, 2000),
                       owner_user_id=(staff_member(session, "owner", owner_user_id)
                                      if owner_user_id else None),
                       status=check_choice("status", status, MEASURE_STATUSES))
    session.add(m)
    session.flush()
    audit(session, by, "control.measure.add", f"control_risk:{risk.id}", measure=m.id,
          status=status)
    return m


def set_measure_status(session: Session, by: By, measure_id: str, status: str) -> ControlMeasure:
    m = session.get(ControlMeasure, measure_id)
    if m is None:
        raise NotFound()
    old, m.status = m.status, check_choice("status", status, MEASURE_STATUSES)
    audit(session, by, "control.measure.status", f"control_risk:{m.risk_id}", measure=m.id,
          old=old, new=status)
    return m


def measures_of(session: Session, risk_id: str) -> list[ControlMeasure]:
    return list(session.scalars(select(ControlMeasure).where(ControlMeasure.risk_id == risk_id)
                                .order_by(ControlMeasure.created_at)))


def risk_view(session: Session, risk: ControlRisk) -> dict[str, Any]:
    return {
        "id": risk.id, "asset": risk.asset, "threat": risk.threat,
        "description": risk.description,
        "before": {"likelihood": risk.likelihood_before, "consequence": risk.consequence_before,
                   "score": risk.likelihood_before * risk.consequence_before,
                   "level": risk_level(risk.likelihood_before, risk.consequence_before)},
        "after": {"likelihood": risk.likelihood_after, "consequence": risk.consequence_after,
                  "score": (risk.likelihood_after * risk.consequence_after
                            if risk.likelihood_after and risk.consequence_after else None),
                  "level": risk_level(risk.likelihood_after, risk.consequence_after)},
        "owner_user_id": risk.owner_user_id,
        "measures": [{"id": m.id, "text": m.text, "owner_user_id": m.owner_user_id,
                      "status": m.status} for m in measures_of(session, risk.id)],
        "updated_at": risk.updated_at.isoformat(),
    }
