"""A breach as the vendor's security officer would register it (fictional facts)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.conftest import Personas
from vern.accounts.roles import OrgKind, Role, permissions
from vern.accounts.service import Actor
from vern.core.db import Database, Scope, utcnow
from vern.incidents import service


def dave_actor(personas: Personas) -> Actor:
    return Actor(org_id=personas.vendor, org_kind=OrgKind.VENDOR, role=Role.SECURITY_OFFICER,
                 user_id=personas.dave.user_id,
                 perms=permissions(Role.SECURITY_OFFICER, org_kind=OrgKind.VENDOR, home=True))


def breach_body(personas: Personas, aware: datetime | None = None, **over: Any) -> dict[str, Any]:
    aware = aware or utcnow() - timedelta(hours=1)
    body: dict[str, Any] = {
        "title": "Feilsendt klasseliste",
        "personal_data": True,
        "risk": "risk",
        "occurred_from": (aware - timedelta(days=1)).isoformat(),
        "occurred_to": (aware - timedelta(hours=20)).isoformat(),
        "discovered_at": (aware - timedelta(minutes=30)).isoformat(),
        "aware_at": aware.isoformat(),
        "what_happened": "En eksport av klasselister ble sendt til feil barnehage.",
        "how_happened": "Feil mottakerliste i en planlagt jobb.",
        "subject_categories": ["barn", "foresatte"],
        "subjects_approx": 40,
        "data_categories": ["navn", "fødselsdato"],
        "records_approx": 80,
        "consequences": "Navn og fødselsdato kjent for uvedkommende.",
        "measures_taken": "Mottakeren har slettet e-posten og bekreftet det skriftlig.",
        "measures_proposed": "Fire øyne på nye mottakerlister.",
        "data_location": "Slettet hos mottakeren; originalen i Solstrands database.",
        "contact": "Personvernombud Erik Eide, personvern@solstrand.example.com",
        "customers": [personas.tenant_a, personas.tenant_b],
    }
    body.update(over)
    return body


def register(db: Database, personas: Personas, **over: Any) -> str:
    body = breach_body(personas, **over)
    customers = body.pop("customers")
    for key in service.MOMENT_FIELDS:
        if isinstance(body.get(key), str):
            body[key] = datetime.fromisoformat(body[key])
    with db.transaction(Scope.system("test register")) as session:
        inc = service.register(session, dave_actor(personas), service.IncidentInput(**body),
                               customers)
        return inc.id
