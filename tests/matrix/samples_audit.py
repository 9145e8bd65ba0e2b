"""Sample objects for the audit routes' path parameters."""

from __future__ import annotations

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.audit.models import AuditAlert
from vern.core.config import Settings
from vern.core.db import Database, Scope


def alert_of_vendor(db: Database, personas: Personas, settings: Settings) -> Sample:
    """An alert in the vendor's organisation (e.g. staff signing in from a new network):
    the vendor's auditors see it, a customer's people get 404."""
    with db.transaction(Scope.system("matrix sample alert")) as session:
        alert = AuditAlert(org_id=personas.vendor, kind="new_network",
                           subject=f"{personas.dave.user_id}:0123abcd", first_seq=0, last_seq=0,
                           count=1)
        session.add(alert)
        session.flush()
        return Sample(alert.id, personas.vendor)


SAMPLES = {"alert_id": alert_of_vendor}
