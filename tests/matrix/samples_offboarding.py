"""Sample values for the offboarding routes' path parameters: an end of contract asked for
tenant A (a vendor-wide row: only the vendor's staff reach it through ``offboarding_id``; tenant
A's administrator reaches its own through ``end_of_contract_id``)."""

from __future__ import annotations

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.offboarding import service


def offboarding_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.system("matrix sample")) as session:
        found = service.open_for(session, personas.tenant_a)
        if found is None:
            found = service.request(session, org_id=personas.tenant_a, notice_days=30, reason="",
                                    actor_user_id=personas.erik.user_id)
        return Sample(found.id, None)


def end_of_contract_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    """The same end of contract seen from the customer's side (its customer reference): tenant
    A's own; another customer gets 404, the vendor's staff lack the permission."""
    found = offboarding_id(db, personas, settings).value
    with db.transaction(Scope.system("matrix sample")) as session:
        return Sample(service.customer_ref(service.get(session, found)), personas.tenant_a)


SAMPLES = {"offboarding_id": offboarding_id, "end_of_contract_id": end_of_contract_id}
