"""Deadlines of requests (Art. 12(3)): when an answer is due, and how near a request is to it."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from vern.core.config import RightsSettings, rights_settings
from vern.core.db import utcnow
from vern.rights.models import OPEN_STATUSES, RightsRequest


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year = moment.year + month // 12
    month = month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_date(received: datetime, cfg: RightsSettings | None = None) -> datetime:
    cfg = cfg or rights_settings()
    if cfg.due_days:
        return received + timedelta(days=cfg.due_days)
    return add_months(received, cfg.due_months)


def due_state(req: RightsRequest, now: datetime | None = None) -> str:
    now = now or utcnow()
    if req.status not in [s.value for s in OPEN_STATUSES]:
        return "closed"
    if req.deadline <= now:
        return "overdue"
    if req.deadline - now <= timedelta(days=rights_settings().remind_days_before):
        return "due_soon"
    return "ok"
