"""Sample values for the offboarding routes' path parameters: an end of contract asked for
tenant A (a vendor-wide row: only the vendor's staff reach it)."""

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


SAMPLES = {"offboarding_id": offboarding_id}
