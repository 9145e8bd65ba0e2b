"""The five-year rules of the breach register (``incident-plus-5y``) and of the internal control
(``internal-control``), applied by the retention run through those domains' service functions,
on a fixed clock: what ended more than five years ago goes, what is open or in use never does,
legal holds keep what they name."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Personas, make_settings
from vern.audit.models import AuditEvent
from vern.control.models import (
    ControlChange,
    ControlChangeEvent,
    ControlCompletion,
    ControlEvidence,
    ControlMedia,
    ControlPerson,
    ControlRisk,
    ControlTask,
    ControlTraining,
)
from vern.core.crypto import DataKey
from vern.core.db import Database, Scope
from vern.core.errors import InvalidInput
from vern.incidents.models import AffectedCustomer, BreachNotice, Incident, IncidentEvent
from vern.retention import service

NOW = datetime(2032, 6, 1, 12, 0, tzinfo=UTC)  # the run's clock: five years back is 2027-06-02
OLD = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RECENT = datetime(2030, 9, 14, 9, 0, tzinfo=UTC)


def _incident(org: str, number: int, *, closed: datetime | None, created: datetime = OLD) -> Incident:
    return Incident(org_id=org, number=number, title=f"Avvik {number}: feilsendt e-post",
                    personal_data=True, status="closed" if closed else "open", closed_at=closed,
                    what_happened="Kari Nordmann fikk en annen kundes faktura", created_at=created,
                    updated_at=created)


def _register(db: Database, p: Personas) -> dict[str, str]:
    with db.transaction(Scope.system("test")) as s:
        old = _incident(p.vendor, 1, closed=OLD)
        recent = _incident(p.vendor, 2, closed=RECENT)
        still_open = _incident(p.vendor, 3, closed=None, created=datetime(2020, 1, 5, tzinfo=UTC))
        held = _incident(p.vendor, 4, closed=OLD)
        s.add_all([old, recent, still_open, held])
        s.flush()
        s.add(AffectedCustomer(org_id=p.vendor, incident_id=old.id, customer_id=p.tenant_a,
                               notified_at=OLD))
        s.add(BreachNotice(org_id=p.tenant_a, incident_id=old.id, sequence=1, phase="initial",
                           subject_nb="Avvik", subject_en="Breach", body_nb="…", body_en="…",
                           sent_at=OLD))
        s.add(IncidentEvent(org_id=p.vendor, incident_id=old.id, action="closed", at=OLD))
        s.add(IncidentEvent(org_id=p.vendor, incident_id=recent.id, action="closed", at=RECENT))
        return {"old": old.id, "recent": recent.id, "open": still_open.id, "held": held.id}


def _control(db: Database, p: Personas) -> dict[str, str]:
    dave = p.dave.user_id
    with db.transaction(Scope.system("test")) as s:
        once = ControlTask(title="Engangs gjennomgang", recurrence="once", closed_at=OLD,
                           created_at=OLD)
        yearly = ControlTask(title="Risikovurdering", recurrence="yearly",
                             due_on=date(2032, 9, 1), created_at=OLD)
        s.add_all([once, yearly])
        s.flush()
        c_once = ControlCompletion(task_id=once.id, completed_at=OLD, completed_by=dave)
        c_old = ControlCompletion(task_id=yearly.id, completed_at=OLD, completed_by=dave,
                                  note="Gjennomgått 2026")
        c_held = ControlCompletion(task_id=yearly.id, completed_at=OLD, completed_by=dave,
                                   note="Under tvist")
        c_new = ControlCompletion(task_id=yearly.id, completed_at=RECENT, completed_by=dave)
        s.add_all([c_once, c_old, c_held, c_new])
        s.flush()
        ev_old = ControlEvidence(task_id=yearly.id, completion_id=c_old.id, kind="link",
                                 title="Rapport 2026", url="https://intern.example.com/r/1",
                                 added_at=OLD)
        ev_new = ControlEvidence(task_id=yearly.id, completion_id=c_new.id, kind="link",
                                 title="Rapport 2030", url="https://intern.example.com/r/2",
                                 added_at=RECENT)
        ev_once = ControlEvidence(task_id=once.id, completion_id=c_once.id, kind="link",
                                  title="Engangs", url="https://intern.example.com/r/3", added_at=OLD)
        s.add_all([ev_old, ev_new, ev_once])
        done = ControlChange(title="Ny brannmurregel", description="…", risk="lav", rollback="…",
                             status="implemented", implemented_at=OLD, decided_at=OLD,
                             created_at=OLD)
        pending = ControlChange(title="Venter", description="…", risk="lav", rollback="…",
                                status="pending", created_at=OLD)
        s.add_all([done, pending])
        s.flush()
        s.add(ControlChangeEvent(change_id=done.id, action="implemented", at=OLD))
        ended = ControlPerson(supplier="Konsulent AS", function="drift", ended_on=OLD.date(),
                              created_at=OLD)
        active = ControlPerson(user_id=dave, function="sikkerhet", created_at=OLD)
        s.add_all([ended, active])
        s.flush()
        s.add(ControlTraining(person_id=ended.id, name="Informasjonssikkerhet",
                              completed_on=OLD.date()))
        s.add(ControlTraining(person_id=active.id, name="Informasjonssikkerhet",
                              completed_on=OLD.date()))
        m_old = ControlMedia(device="Samsung SSD 870", serial="S6PTNZ0R1", method="destroy",
                             done_on=OLD.date(), done_by=dave, witness=p.erik.user_id)
        m_new = ControlMedia(device="Samsung SSD 990", serial="S7XQ", method="purge",
                             done_on=RECENT.date(), done_by=dave, witness=p.erik.user_id)
        s.add_all([m_old, m_new])
        s.add(ControlRisk(asset="Kundedatabase", threat="disappearance", likelihood_before=2,
                          consequence_before=3, created_at=OLD, updated_at=OLD))
        s.flush()
        return {"once": once.id, "yearly": yearly.id, "c_old": c_old.id, "c_held": c_held.id,
                "c_new": c_new.id, "ev_new": ev_new.id, "done": done.id, "pending": pending.id,
                "ended": ended.id, "active": active.id, "m_old": m_old.id, "m_new": m_new.id}


def _ids(db: Database, model: type) -> set[str]:
    with db.transaction(Scope.system("test")) as s:
        return set(s.scalars(select(model.id)))  # type: ignore[attr-defined]


def test_closed_incidents_go_five_years_after_closing(db: Database, personas: Personas,
                                                      tmp_path: Path) -> None:
    ids = _register(db, personas)
    with db.transaction(Scope.system("test")) as s:
        service.create_hold(s, rule_key="incidents", record_id=ids["held"],
                            reason="Tvist om erstatning / claim under dispute")
    rules = {r.key: r for r in service.rules()}
    assert rules["incidents"].days == 1826 and rules["incidents"].kind == "function"
    assert rules["control"].days == 1826
    planned = {p["rule"]: p for p in service.plan(db, now=NOW)}
    assert planned["incidents"]["due"] == 1 and planned["incidents"]["held"] == 1
    # a day before the five years have passed for the old one, nothing is due
    early = datetime(2031, 3, 1, tzinfo=UTC)
    assert {p["rule"]: p for p in service.plan(db, now=early)}["incidents"]["due"] == 0

    run = service.run(db, make_settings(db.url, tmp_path), now=NOW, batch=10)
    assert run.counts["incidents"]["done"] == 1 and run.counts["incidents"]["days"] == 1826
    assert _ids(db, Incident) == {ids["recent"], ids["open"], ids["held"]}
    with db.transaction(Scope.system("test")) as s:
        assert set(s.scalars(select(IncidentEvent.incident_id))) == {ids["recent"]}
        assert not list(s.scalars(select(BreachNotice.id)))
        assert not list(s.scalars(select(AffectedCustomer.id)))
        assert "incidents.expired" in set(s.scalars(select(AuditEvent.action)))
    again = service.run(db, make_settings(db.url, tmp_path), now=NOW)
    assert again.counts["incidents"]["done"] == 0
    # even fifty years on, an open incident is never taken
    later = datetime(2070, 1, 1, tzinfo=UTC)
    run = service.run(db, make_settings(db.url, tmp_path), now=later)
    assert _ids(db, Incident) == {ids["open"], ids["held"]}


def test_internal_control_history_goes_five_years_after_its_end(db: Database, personas: Personas,
                                                                tmp_path: Path) -> None:
    ids = _control(db, personas)
    with db.transaction(Scope.system("test")) as s:
        service.create_hold(s, rule_key="control", record_id=ids["c_held"],
                            reason="Revisjon pågår / audit under way")
        key = DataKey(id="k-konsulent", wrapped_key=b"x" * 40)
        s.add(key)
        s.flush()
        person = s.get(ControlPerson, ids["ended"])
        assert person is not None
        person.key_id = key.id
    planned = {p["rule"]: p for p in service.plan(db, now=NOW)}
    # the closed task, one completion, the implemented change, the ended person, one medium
    assert planned["control"]["due"] == 5 and planned["control"]["held"] == 1

    run = service.run(db, make_settings(db.url, tmp_path), now=NOW, batch=2)
    assert run.counts["control"]["done"] == 5
    assert _ids(db, ControlTask) == {ids["yearly"]}
    assert _ids(db, ControlCompletion) == {ids["c_held"], ids["c_new"]}
    assert _ids(db, ControlEvidence) == {ids["ev_new"]}
    assert _ids(db, ControlChange) == {ids["pending"]}
    assert not _ids(db, ControlChangeEvent)
    assert _ids(db, ControlPerson) == {ids["active"]}
    assert len(_ids(db, ControlTraining)) == 1
    assert _ids(db, ControlMedia) == {ids["m_new"]}
    assert len(_ids(db, ControlRisk)) == 1  # the register is in use: kept
    with db.transaction(Scope.system("test")) as s:
        assert s.get(DataKey, "k-konsulent").destroyed_at is not None  # type: ignore[union-attr]
    assert service.run(db, make_settings(db.url, tmp_path), now=NOW).counts["control"]["done"] == 0


def test_a_vendor_may_lengthen_the_five_years_not_go_below_three(db: Database,
                                                                 personas: Personas) -> None:
    _register(db, personas)
    with db.transaction(Scope.system("test")) as s, pytest.raises(InvalidInput) as refused:
        service.set_period(s, rule_key="incidents", days=365, reason="kortere",
                           actor_user_id=personas.dave.user_id)
    assert refused.value.errors[0].field == "days"
    with db.transaction(Scope.system("test")) as s:
        service.set_period(s, rule_key="incidents", days=3653, reason="ti år etter avtale",
                           actor_user_id=personas.dave.user_id)
    # ten years: the breach closed in March 2026 is not due in June 2032 any more
    assert {p["rule"]: p for p in service.plan(db, now=NOW)}["incidents"]["due"] == 0
    # ten years on: the two closed in March 2026 (no hold in this test); never the open one
    later = datetime(2036, 6, 1, tzinfo=UTC)
    due = service.plan(db, now=later)
    assert {p["rule"]: p for p in due}["incidents"]["due"] == 2
    with db.transaction(Scope.system("test")) as s:
        assert service.rule(s, "incidents").days == 3653
