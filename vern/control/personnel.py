"""The personnel with access: vendor staff (from the accounts) and supplier staff (a sealed
name), their confidentiality agreements and trainings, the end of their access (a supplier
staff member's name is shredded) and the list exported for a customer's audit.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.control.catalogue import REQUIRED_TRAININGS
from vern.control.common import By, audit, check_choice, check_text, staff, staff_member
from vern.control.models import ControlPerson, ControlTraining
from vern.core.crypto import PII, keyring
from vern.core.csvsafe import safe_cell
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import InvalidInput, NotFound


def _person_for_user(session: Session, by: By, user_id: str) -> ControlPerson:
    staff_member(session, "user_id", user_id)
    person = session.scalar(select(ControlPerson).where(ControlPerson.user_id == user_id))
    if person is None:
        person = ControlPerson(user_id=user_id, sensitive_access=True)
        session.add(person)
        session.flush()
        audit(session, by, "control.person.create", f"control_person:{person.id}",
              user=user_id)
    return person


def add_person(session: Session, by: By, *, user_id: str | None = None, name: str | None = None,
               supplier: str | None = None, function: str = "",
               sensitive_access: bool = True) -> ControlPerson:
    """A vendor staff member's record (``user_id``), or a supplier's staff member without an
    account (``name`` and ``supplier``; the name is sealed under its own data key)."""
    if user_id:
        person = _person_for_user(session, by, user_id)
        person.function = check_text("function", function, 200, required=False) or person.function
        person.sensitive_access = sensitive_access
        return person
    name = check_text("name", name, 200)
    supplier = check_text("supplier", supplier, 200)
    key_id = keyring().create(session)
    person = ControlPerson(key_id=key_id, name=PII(key_id, name), supplier=supplier,
                           function=check_text("function", function, 200, required=False),
                           sensitive_access=sensitive_access)
    session.add(person)
    session.flush()
    audit(session, by, "control.person.create", f"control_person:{person.id}",
          supplier=supplier)
    return person


def get_person(session: Session, person_id: str) -> ControlPerson:
    person = session.get(ControlPerson, person_id)
    if person is None:
        raise NotFound()
    if person.user_id is not None:
        try:
            accounts.get_member(session, person.user_id)
        except NotFound:
            raise NotFound() from None
    return person


def person_for_user(session: Session, by: By, user_id: str) -> ControlPerson:
    return _person_for_user(session, by, user_id)


def record_nda(session: Session, by: By, person_id: str, *, signed_on: date,
               version: str) -> ControlPerson:
    person = get_person(session, person_id)
    if signed_on > utcnow().date():
        raise InvalidInput.on("signed_on", "cannot be in the future")
    person.nda_signed_on = signed_on
    person.nda_version = check_text("version", version, 40)
    audit(session, by, "control.person.nda", f"control_person:{person.id}",
          signed_on=signed_on.isoformat(), version=person.nda_version)
    return person


def record_training(session: Session, by: By, person_id: str, *, name: str,
                    completed_on: date) -> ControlTraining:
    person = get_person(session, person_id)
    if completed_on > utcnow().date():
        raise InvalidInput.on("completed_on", "cannot be in the future")
    row = ControlTraining(person_id=person.id, name=check_text("name", name, 200),
                          completed_on=completed_on)
    session.add(row)
    session.flush()
    audit(session, by, "control.person.training", f"control_person:{person.id}",
          training=row.name, completed_on=completed_on.isoformat())
    return row


def end_person(session: Session, by: By, person_id: str, *, ended_on: date) -> ControlPerson:
    """The person's access ends on ``ended_on``. A supplier's staff member's name is shredded
    that day (now, when the day has come; else by the worker, ``shred_ended_names``): what stays
    as evidence is the supplier, the function and the agreements' dates."""
    person = get_person(session, person_id)
    person.ended_on = ended_on
    audit(session, by, "control.person.end", f"control_person:{person.id}",
          ended_on=ended_on.isoformat())
    if ended_on <= utcnow().date():
        _shred_name(session, by, person)
    return person


def _shred_name(session: Session, by: By, person: ControlPerson) -> None:
    if person.user_id is not None or person.key_id is None:
        return
    keyring().shred(session, person.key_id)
    person.key_id, person.name = None, None
    audit(session, by, "control.person.name_shredded", f"control_person:{person.id}",
          ended_on=person.ended_on.isoformat() if person.ended_on else None)


def shred_ended_names(database: Database, *, today: date | None = None) -> int:
    """Shred the names of supplier staff whose access has ended (``end_person`` with a later
    day); each in the transaction that records it. Returns how many were shredded."""
    today = today or utcnow().date()
    with database.transaction(Scope.system("control: find the vendor")) as session:
        vendor = accounts.vendor_org(session)
        if vendor is None:
            return 0
        vendor_id = vendor.id
    with database.transaction(Scope.tenant(vendor_id)) as session:
        due = list(session.scalars(select(ControlPerson).where(
            ControlPerson.user_id.is_(None), ControlPerson.key_id.is_not(None),
            ControlPerson.ended_on.is_not(None), ControlPerson.ended_on <= today)))
        for person in due:
            _shred_name(session, By(vendor_id), person)
        return len(due)


@dataclass
class PersonRow:
    """One line of the personnel list, vendor staff and supplier staff alike."""

    person_id: str | None
    user_id: str | None
    name: str
    email: str | None
    organisation: str
    kind: str  # vendor | supplier
    role: str | None
    function: str
    sensitive_access: bool
    nda_signed_on: date | None
    nda_version: str | None
    trainings: list[tuple[str, date]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"person_id": self.person_id, "user_id": self.user_id, "name": self.name,
                "email": self.email, "organisation": self.organisation, "kind": self.kind,
                "role": self.role, "function": self.function,
                "sensitive_access": self.sensitive_access,
                "nda_signed_on": self.nda_signed_on.isoformat() if self.nda_signed_on else None,
                "nda_version": self.nda_version,
                "trainings": [{"name": n, "completed_on": d.isoformat()} for n, d in self.trainings],
                "missing": self.missing}


def _missing(person: ControlPerson | None, trainings: list[tuple[str, date]], today: date) -> list[str]:
    found = []
    if person is None or person.nda_signed_on is None:
        found.append("confidentiality_agreement")
    year_ago = today - timedelta(days=365)
    done = {n.strip().lower() for n, d in trainings if d >= year_ago}
    found += [f"training:{t}" for t in REQUIRED_TRAININGS if t.lower() not in done]
    return found


def personnel(session: Session, *, today: date | None = None,
              sensitive_only: bool = False) -> list[PersonRow]:
    """Every vendor staff member (from the accounts) and every supplier staff member still with
    access, with confidentiality agreement, trainings and what is missing."""
    today = today or utcnow().date()
    people = list(session.scalars(select(ControlPerson)))
    trainings: dict[str, list[tuple[str, date]]] = {}
    for t in session.scalars(select(ControlTraining).order_by(ControlTraining.completed_on)):
        trainings.setdefault(t.person_id, []).append((t.name, t.completed_on))
    vendor = accounts.get_organisation(session, _scope_org(session))
    rows = (_vendor_rows(session, vendor.name, people, trainings, today)
            + _supplier_rows(people, trainings, today))
    if sensitive_only:
        rows = [r for r in rows if r.sensitive_access]
    return rows


def _has_ended(person: ControlPerson | None, today: date) -> bool:
    return person is not None and person.ended_on is not None and person.ended_on <= today


def _vendor_rows(session: Session, organisation: str, people: list[ControlPerson],
                 trainings: dict[str, list[tuple[str, date]]], today: date) -> list[PersonRow]:
    """The vendor's staff accounts still enabled, each with its person record if it has one."""
    by_user = {p.user_id: p for p in people if p.user_id}
    rows = []
    for user, membership in staff(session):
        if user.disabled_at is not None:
            continue
        person = by_user.get(user.id)
        if _has_ended(person, today):
            continue
        done = trainings.get(person.id, []) if person else []
        rows.append(PersonRow(
            person.id if person else None, user.id, user.name.value or "", user.email.value,
            organisation, "vendor", membership.role, person.function if person else "",
            person.sensitive_access if person else True,
            person.nda_signed_on if person else None, person.nda_version if person else None,
            done, _missing(person, done, today)))
    return rows


def _supplier_rows(people: list[ControlPerson], trainings: dict[str, list[tuple[str, date]]],
                   today: date) -> list[PersonRow]:
    """The suppliers' staff whose access has not ended."""
    rows = []
    for person in people:
        if person.user_id or _has_ended(person, today):
            continue
        done = trainings.get(person.id, [])
        rows.append(PersonRow(
            person.id, None, (person.name.value if person.name else None) or "", None,
            person.supplier or "", "supplier", None, person.function, person.sensitive_access,
            person.nda_signed_on, person.nda_version, done, _missing(person, done, today)))
    return rows


def _scope_org(session: Session) -> str:
    scope = session.info.get("scope")
    org = getattr(scope, "org_id", None)
    if not org:
        raise RuntimeError("the personnel list needs the vendor's scope")
    return str(org)


EXPORT_COLUMNS = ("name", "email", "organisation", "kind", "role", "function", "nda_signed_on",
                  "nda_version", "trainings", "missing")


def export_personnel(session: Session, by: By, fmt: str) -> tuple[str, str]:
    """The people with access to sensitive data, for a customer's audit: (text, media type)."""
    fmt = check_choice("format", fmt, ("csv", "json"))
    rows = personnel(session, sensitive_only=True)
    audit(session, by, "control.personnel.export", "control_person:*", format=fmt,
          count=len(rows))
    if fmt == "json":
        return (json.dumps({"generated_at": utcnow().isoformat(),
                            "people": [r.as_dict() for r in rows]}, ensure_ascii=False, indent=2),
                "application/json")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(EXPORT_COLUMNS)
    for r in rows:
        d = r.as_dict()
        d["trainings"] = "; ".join(f"{t['name']} ({t['completed_on']})" for t in d["trainings"])
        d["missing"] = "; ".join(d["missing"])
        writer.writerow([safe_cell(d[c] if d[c] is not None else "") for c in EXPORT_COLUMNS])
    return buf.getvalue(), "text/csv; charset=utf-8"
