"""A supplier's staff member's name is shredded when their access ends: at once when the day has
come, else by the worker on that day. What stays as evidence is the supplier, the function and
the agreements' dates; the key is destroyed, so the sealed name is gone from every copy."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from tests.conftest import Personas
from vern.audit.models import AuditEvent
from vern.control import jobs, service
from vern.control.models import ControlPerson
from vern.core.config import Settings
from vern.core.crypto import DataKey
from vern.core.db import Database, Scope
from vern.core.worker import run_due


def _add(db: Database, personas: Personas, name: str) -> tuple[str, str]:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        person = service.add_person(session, service.By(personas.vendor, personas.dave.user_id),
                                    name=name, supplier="Nordlys Drift AS", function="Drift")
        assert person.key_id is not None
        return person.id, person.key_id


def _end(db: Database, personas: Personas, person_id: str, on: date) -> None:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        service.end_person(session, service.By(personas.vendor, personas.dave.user_id), person_id,
                           ended_on=on)


def _state(db: Database, person_id: str, key_id: str) -> tuple[str | None, bool, str | None]:
    """The person's readable name, whether their key is destroyed, and their supplier."""
    with db.transaction(Scope.system("test")) as session:
        person = session.get(ControlPerson, person_id)
        key = session.get(DataKey, key_id)
        assert person is not None and key is not None
        return (person.name.value if person.name else None, key.destroyed_at is not None,
                person.supplier)


def test_an_ended_suppliers_name_is_shredded_that_day(db: Database, personas: Personas,
                                                       settings: Settings) -> None:
    today = date.today()
    now_id, now_key = _add(db, personas, "Kjetil Kvamme")
    later_id, later_key = _add(db, personas, "Lene Lunde")
    _end(db, personas, now_id, today)
    _end(db, personas, later_id, today + timedelta(days=10))

    assert _state(db, now_id, now_key) == (None, True, "Nordlys Drift AS")
    assert _state(db, later_id, later_key) == ("Lene Lunde", False, "Nordlys Drift AS")
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        listed = {row.name for row in service.personnel(session)}
    assert "Lene Lunde" in listed and "Kjetil Kvamme" not in listed

    # The worker runs every hour; before the day nothing happens, on the day the name goes.
    assert "control.shred_ended_names" in run_due(db, settings, jobs.JOBS)
    assert _state(db, later_id, later_key)[0] == "Lene Lunde"
    assert service.shred_ended_names(db, today=today + timedelta(days=10)) == 1
    assert _state(db, later_id, later_key) == (None, True, "Nordlys Drift AS")
    assert service.shred_ended_names(db, today=today + timedelta(days=11)) == 0
    with db.transaction(Scope.system("test")) as session:
        shredded = list(session.scalars(select(AuditEvent.resource).where(
            AuditEvent.action == "control.person.name_shredded")))
    assert sorted(shredded) == sorted([f"control_person:{now_id}", f"control_person:{later_id}"])
