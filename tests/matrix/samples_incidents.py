"""Sample values for the incidents routes' path parameters: a breach in the vendor's register
(affecting tenant A) and a notice of it sent to tenant A."""

from __future__ import annotations

from tests.conftest import Personas
from tests.incidents.helpers import dave_actor, register
from tests.matrix.samples import Sample
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.incidents import service


def incident_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    return Sample(register(db, personas, customers=[personas.tenant_a]), personas.vendor)


def breach_notice_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    inc = register(db, personas, customers=[personas.tenant_a])
    with db.transaction(Scope.system("matrix: a notice")) as session:
        [sent] = service.send_notices(session, dave_actor(personas), inc)
    return Sample(sent.notice_id, personas.tenant_a)


SAMPLES = {"incident_id": incident_id, "breach_notice_id": breach_notice_id}
