"""Sample objects in tenant A for the rights routes' path parameters."""

from __future__ import annotations

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.core.config import Settings
from vern.core.db import Database, Scope, new_id
from vern.rights import service
from vern.rights.models import Flag


def rights_request_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A request made through tenant A's portal, waiting for its code."""
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        req = service.create_request(
            session,
            org_id=personas.tenant_a,
            kind="access",
            identities={"email": f"kari.{new_id()[-8:]}@example.com"},
            channel="portal",
            locale="nb",
        )
        return Sample(req.id, personas.tenant_a)


def rights_flag_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        flag = Flag(org_id=personas.tenant_a, kind="restriction", subject_ref=new_id().replace("-", ""))
        session.add(flag)
        session.flush()
        return Sample(flag.id, personas.tenant_a)


def rights_task_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    """An open manual task (a system outside SQL) of a request in tenant A."""
    from vern.rights.http_connector import idempotency_key
    from vern.rights.models import ExternalStep

    request = rights_request_in_a(db, personas, settings)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        step = ExternalStep(
            org_id=personas.tenant_a,
            request_id=request.value,
            system="helpdesk",
            via="manual",
            operation="access",
            owner="brukerstotte@fjellheim.example.com",
            idempotency_key=idempotency_key(request.value, "helpdesk", "access"),
        )
        session.add(step)
        session.flush()
        return Sample(step.id, personas.tenant_a)


def portal_of_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    return Sample("fjellheim", None)


def download_token_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        req = service.create_request(
            session,
            org_id=personas.tenant_a,
            kind="access",
            identities={"email": "ola.nordmann@example.com"},
            channel="staff",
            verified_by="attested",
            details={"note": "ID-kort kontrollert"},
        )
        link = service._new_package(session, req, b"PK\x05\x06" + b"\x00" * 18, "fjellheim")
    return Sample(link.rsplit("/", 1)[1], None)


# ``tenant_id`` (the vendor's routes about a customer) is sampled by samples_accounts.tenant_a.
SAMPLES = {
    "rights_request_id": rights_request_in_a,
    "rights_flag_id": rights_flag_in_a,
    "rights_task_id": rights_task_in_a,
    "dsr_tenant": portal_of_a,
    "download_token": download_token_in_a,
}
