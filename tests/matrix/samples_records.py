"""Sample values for the records and trust routes' path parameters."""

from __future__ import annotations

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.core.config import Settings
from vern.core.db import Database, Scope, new_id
from vern.records import documents
from vern.records import service as records
from vern.trust import service as trust


def entry_key(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A processing entry of the vendor (as controller)."""
    key = "matrix-" + new_id()[-12:]
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        records.create_entry(session, org_id=personas.vendor, actor_user_id=None,
                             data=records.EntryInput(key, "Behandling", "Processing"))
    return Sample(key, personas.vendor)


def document_kind(db: Database, personas: Personas, settings: Settings) -> Sample:
    """The vendor's privacy statement, published at least once."""
    documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
    return Sample("privacy", personas.vendor)


def document_version(db: Database, personas: Personas, settings: Settings) -> Sample:
    documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
    return Sample("1", personas.vendor)


def agreement_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    """Tenant A's agreement waiting for its signature."""
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        pending = records.agreement_status(session)["pending"]
    if pending is None:
        documents.publish_dpa(db, org_id=personas.tenant_a, actor_user_id=None)
        with db.transaction(Scope.tenant(personas.tenant_a)) as session:
            pending = records.agreement_status(session)["pending"]
    assert pending is not None
    return Sample(str(pending["id"]), personas.tenant_a)


def _upload(db: Database, personas: Personas) -> str:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        row = trust.upload_file(session, org_id=personas.vendor, title="Penetrasjonstest 2026",
                                filename="pentest.pdf", content_type="application/pdf",
                                content=b"%PDF-1.4 test", actor_user_id=None)
        return row.id


def trust_share_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    """Tenant A's share of a file the vendor shares with it."""
    file_id = _upload(db, personas)
    trust.share_file(db, vendor_org_id=personas.vendor, file_id=file_id,
                     org_ids=[personas.tenant_a], actor_user_id=None)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        share = next(f for f in trust.shared_files(session) if f["filename"] == "pentest.pdf")
        return Sample(share["id"], personas.tenant_a)


def shared_file_id(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A file of the vendor's, not yet shared (the vendor chooses the customers)."""
    return Sample(_upload(db, personas), personas.vendor)


SAMPLES = {
    "entry_key": entry_key,
    "document_kind": document_kind,
    "document_version": document_version,
    "agreement_id": agreement_id,
    "trust_share_id": trust_share_id,
    "shared_file_id": shared_file_id,
}
