"""Demo records of the vendor Solstrand Læring AS: two Art. 30(1) processing entries where the
vendor is itself the controller (its website and newsletter, its customer contacts), and a data
processing agreement sent to each demo customer, the one of Fjellheim barnehage signed by its
administrator. The agreement's annexes name the vendor registry's sub-processors and measures, so
that registry's demo data is loaded first (it adds nothing when already there). Idempotent."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.consent import service as consent
from vern.core.db import Database, Scope, utcnow
from vern.records import documents, registry, service
from vern.records.service import EntryInput
from vern.vendor import demo as vendor_demo

ENTRIES = [
    EntryInput("website", "Nettsted og nyhetsbrev", "Website and newsletter",
               purpose_keys=("statistics", "newsletter"),
               subjects=("website_visitors", "newsletter_subscribers"),
               own_tables=("consent_records", "consent_newsletter", "stats_visits"),
               recipients=("Ingen utenfor Solstrand Læring AS",)),
    EntryInput("customer-contacts", "Kontaktpersoner hos kunder", "Contact persons at customers",
               subjects=("customer_contacts", "support_requesters"),
               own_tables=("organisations", "users"),
               subprocessors=("datacentre",),
               recipients=("Regnskapsfører (Tall og Tabell AS)",)),
]


def _sign(database: Database, org_id: str) -> None:
    """The customer's administrator signs the agreement waiting for a signature."""
    with database.transaction(Scope.tenant(org_id)) as session:
        pending = service.agreement_status(session)["pending"]
        admins = accounts.active_admins(session, org_id)
        if pending is None or not admins:
            return
        admin = admins[0]
        service.sign_agreement(session, agreement_id=pending["id"], signer_name=admin.name.value,
                               signed_on=utcnow().date(), actor_user_id=admin.id)


def _has_entries(session: Session) -> bool:
    return bool(service.list_entries(session, include_retired=True))


def load_demo(database: Database, orgs: dict[str, str]) -> None:
    vendor = orgs.get("solstrand")
    if vendor is None:
        return
    with database.transaction(Scope.tenant(vendor)) as session:
        if _has_entries(session):
            return
    vendor_demo.load_demo(database, orgs)
    with database.transaction(Scope.tenant(vendor)) as session:
        # Entries name sub-processors by their id in the registry (the demo knows their keys)
        # and the consent register's purposes (its demo data is loaded before this one).
        ids = {s["key"]: s["id"] for s in registry.subprocessors(session)}
        purposes = {p.key for p in consent.list_purposes(session)}
        for entry in ENTRIES:
            subs = tuple(ids[k] for k in entry.subprocessors if k in ids)
            keys = tuple(k for k in entry.purpose_keys if k in purposes)
            service.create_entry(session, org_id=vendor, actor_user_id=None,
                                 data=replace(entry, subprocessors=subs, purpose_keys=keys))
    for slug in ("fjellheim", "havbris"):
        if slug in orgs:
            documents.publish_dpa(database, org_id=orgs[slug], actor_user_id=None)
    if "fjellheim" in orgs:
        _sign(database, orgs["fjellheim"])
