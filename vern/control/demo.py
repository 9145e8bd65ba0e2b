"""Demo internal control for the vendor Solstrand Læring AS: the catalogue of control tasks (one
of them overdue), a risk with a measure, a change request waiting for a second person, a
supplier's staff member and a wiped disk. Loaded once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from vern.accounts.roles import Role
from vern.control import service
from vern.control.models import ControlTask
from vern.core.db import Database, Scope, utcnow


def load_demo(database: Database, orgs: dict[str, str]) -> None:
    vendor = orgs.get("solstrand")
    if vendor is None:
        return
    with database.transaction(Scope.tenant(vendor)) as session:
        if session.scalar(select(ControlTask.id).limit(1)) is not None:
            return
        by_role = {m.role: u.id for u, m in service.staff(session)}
        officer = by_role.get(Role.SECURITY_OFFICER.value)
        privacy = by_role.get(Role.PRIVACY_OFFICER.value)
        if officer is None or privacy is None:
            return
        by = service.By(vendor, officer)
        today = utcnow().date()
        tasks = {t.key: t for t in service.seed(session, by, owner_user_id=officer, today=today)}
        tasks["access_review"].due_on = today - timedelta(days=10)
        risk = service.create_risk(
            session, by, asset="Elevdatabasen (PostgreSQL)", threat="disappearance",
            description="Tap av data ved feil i lagring eller sletting ved en feil",
            likelihood_before=2, consequence_before=4, likelihood_after=1, consequence_after=4,
            owner_user_id=officer)
        service.add_measure(session, by, risk.id, text="Nattlig sikkerhetskopi i tre kopier",
                            owner_user_id=officer, status="done")
        service.create_change(
            session, by, title="Øk max_connections i produksjon fra 100 til 200",
            description="Flere samtidige brukere ved skolestart",
            risk="Mer minnebruk på databaseserveren",
            rollback="Sett verdien tilbake til 100 og start databasen på nytt")
        service.add_person(session, by, name="Sigrid Strand", supplier="Driftspartner AS",
                           function="Driftstekniker")
        service.log_media(session, by, device="Samsung SSD 870 EVO 1 TB", serial="S6PTNZ0R123456",
                          method="destroy", done_on=today - timedelta(days=30), done_by=officer,
                          witness=privacy, note="Knust hos Driftspartner AS")
