"""Shared steps of the control tests."""

from __future__ import annotations

from datetime import date

from tests.conftest import Personas
from vern.control import service
from vern.core.db import Database, Scope

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def make_task(db: Database, personas: Personas, *, title: str = "Tilgangskontroll Q4",
              recurrence: str = "quarterly", due_on: date) -> str:
    [task_id] = service.create_tasks(db, personas.vendor, personas.dave.user_id,
                                     [(title, recurrence, due_on)])
    return task_id


def task(db: Database, personas: Personas, task_id: str) -> dict[str, object]:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        return service.task_view(service.get_task(session, task_id), date.today())
