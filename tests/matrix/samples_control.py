"""Sample values for the internal control routes' path parameters. These are the vendor's own
records, owned by no customer (org None): only vendor roles hold the ``control.*`` permissions."""

from __future__ import annotations

from datetime import date

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.control import service
from vern.core.config import Settings
from vern.core.db import Database, Scope, new_id


def _by(personas: Personas) -> service.By:
    return service.By(personas.vendor, personas.dave.user_id)


def _third_person(db: Database, personas: Personas, settings: Settings) -> service.By:
    """Another member of the vendor's staff (neither dave nor erik), so that both may approve
    what this one asked for."""
    from vern.accounts import service as accounts

    with db.transaction(Scope.system("matrix: third staff member")) as session:
        user = accounts.create_user(session, settings,
                                    email=f"tredje-{new_id()[-12:]}@solstrand.example.com",
                                    name="Frida Fjell", org_id=personas.vendor,
                                    role="support", password=None, actor=None)
        return service.By(personas.vendor, user.id)


def control_task(db: Database, personas: Personas, settings: Settings) -> Sample:
    [task_id] = service.create_tasks(db, personas.vendor, personas.dave.user_id,
                                     [("Tilgangskontroll", "quarterly", date.today())])
    return Sample(task_id, None)


def control_evidence(db: Database, personas: Personas, settings: Settings) -> Sample:
    task = control_task(db, personas, settings).value
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        ev = service.add_file(session, _by(personas), task, title="Notat", filename="notat.txt",
                              content_type="text/plain", data=b"Gjennomgang")
        ev_id = ev.id
    third = _third_person(db, personas, settings)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        service.request_deletion(session, third, ev_id, reason="Feil fil")
    return Sample(ev_id, None)


def control_framework(db: Database, personas: Personas, settings: Settings) -> Sample:
    return Sample("iso27001-2022", None)


def control_risk(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        risk = service.create_risk(session, _by(personas), asset="Elevdatabase",
                                   threat="disappearance", likelihood_before=2,
                                   consequence_before=3)
        return Sample(risk.id, None)


def control_measure(db: Database, personas: Personas, settings: Settings) -> Sample:
    risk = control_risk(db, personas, settings).value
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        m = service.add_measure(session, _by(personas), risk, text="Daglig sikkerhetskopi")
        return Sample(m.id, None)


def control_dpia(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        dpia = service.create_dpia(session, _by(personas), processing="Læringsanalyse")
        return Sample(dpia.id, None)


def control_change(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A pending change request filed by a third person (so dave and erik may approve it)."""
    third = _third_person(db, personas, settings)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        change = service.create_change(
            session, third, title="Brannmurregel",
            description="Åpne port 5432 mot driftsnettet", risk="Lav", rollback="Fjern regelen")
        return Sample(change.id, None)


def control_person(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        person = service.add_person(session, _by(personas), name="Sigrid Strand",
                                    supplier="Driftspartner AS")
        return Sample(person.id, None)


SAMPLES = {
    "control_task": control_task,
    "control_evidence": control_evidence,
    "control_framework": control_framework,
    "control_risk": control_risk,
    "control_measure": control_measure,
    "control_dpia": control_dpia,
    "control_change": control_change,
    "control_person": control_person,
}
