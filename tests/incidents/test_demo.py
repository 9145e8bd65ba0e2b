"""The demo register loads once: a closed deviation and an open breach at Fjellheim barnehage
with its first notice sent and Datatilsynet's clock running; the console pages show them."""

from __future__ import annotations

from typing import Any

from tests.conftest import Personas
from tests.incidents.helpers import dave_actor
from vern.core.db import Database, Scope
from vern.incidents import demo, service


def _state(db: Database, personas: Personas) -> tuple[Any, ...]:
    actor = dave_actor(personas)
    with db.transaction(Scope.system("test: the register")) as session:
        incidents = service.list_incidents(session, actor, status=None)
        events = sum(len(service.timeline(session, i.id)) for i in incidents)
        notices = sum(len(service.notices_of_incident(session, i.id)) for i in incidents)
        return (sorted((i.title, i.status, i.personal_data) for i in incidents), events, notices,
                [(c["clock"], c["state"]) for c in service.clocks(session, actor)])


def test_demo_loads_once_and_shows(db: Database, personas: Personas, login: Any) -> None:
    orgs = {"solstrand": personas.vendor, "fjellheim": personas.tenant_a,
            "havbris": personas.tenant_b}
    demo.load_demo(db, orgs)
    first = _state(db, personas)
    demo.load_demo(db, orgs)
    assert _state(db, personas) == first
    incidents, _events, notices, clocks = first
    assert incidents == [("Feilsendt eksport fra kundestøtte", "open", True),
                         ("Nattlig sikkerhetskopi feilet to netter på rad", "closed", False)]
    assert notices == 1
    assert sorted(clocks) == [("authority", "running"), ("customer", "done")]

    dave = login(personas.dave)
    page = dave.get("/console/incidents")
    assert page.status_code == 200
    assert "Feilsendt eksport fra kundestøtte" in page.text
    closed = dave.get("/console/incidents", params={"status": "closed"})
    assert "Nattlig sikkerhetskopi feilet to netter på rad" in closed.text
    alice = login(personas.alice)
    notices_page = alice.get("/console/incidents/notices")
    assert notices_page.status_code == 200
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        notice_id = service.customer_notices(session)[0].id
    assert f"/console/incidents/notices/{notice_id}" in notices_page.text
    notice = alice.get(f"/console/incidents/notices/{notice_id}")
    assert notice.status_code == 200
    assert "Autofullføring valgte feil mottaker" in notice.text
    carol = login(personas.carol)
    assert "/console/incidents/notices/" not in carol.get("/console/incidents/notices").text
