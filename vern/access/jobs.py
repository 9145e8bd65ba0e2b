"""Scheduled work of access control: open the periodic access review campaigns."""

from __future__ import annotations

import logging
from datetime import timedelta

from vern.access import service
from vern.accounts import service as accounts
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.worker import Job

log = logging.getLogger("vern.access.jobs")


def open_reviews(database: Database, settings: Settings) -> int:
    """This period's campaign in every active organisation that has none yet (each in its own
    transaction, so one organisation's failure leaves the others' campaigns standing)."""
    months = settings.access_review_months
    if not months:
        return 0
    with database.transaction(Scope.system("access reviews: organisations")) as session:
        vendor = accounts.vendor_org(session)
        orgs = [o.id for o in [vendor, *accounts.list_tenants(session)]
                if o is not None and o.disabled_at is None]
    opened = 0
    failed = 0
    for org_id in orgs:
        try:
            with database.transaction(Scope.tenant(org_id)) as session:
                if service.open_scheduled_review(session, org_id=org_id,
                                                 months=months) is not None:
                    opened += 1
        except Exception:  # tried again at the next run: nothing of it was kept
            log.exception("access review for organisation %s could not be opened", org_id)
            failed += 1
    if failed:
        raise RuntimeError(f"{failed} of {len(orgs)} organisations' access reviews failed")
    return opened


# Hourly: a new period's campaign opens within the hour it starts; the check is cheap.
JOBS = [Job("access.reviews", timedelta(hours=1), open_reviews)]
