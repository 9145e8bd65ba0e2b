"""A vendor with a registry, a product map, purposes and processing entries (fictional)."""

from __future__ import annotations

from datetime import date

from tests.conftest import Personas
from vern.consent import service as consent
from vern.datamap.service import publish_map
from vern.db import Database, Scope
from vern.records import service
from vern.rights import demo
from vern.vendor.models import Measure, Officer, Subprocessor


def fill_registry(db: Database) -> dict[str, str]:
    """Officers, two sub-processors (one outside the EU/EEA, with SCCs) and two measures.

    The registry's own write functions are used as soon as it has them; until then the rows are
    added as its models define them."""
    with db.transaction(Scope.system("test registry")) as session:
        session.add_all([
            Officer(role="dpo", name="Dina Personvern", email="personvern@solstrand.example.com",
                    phone="+47 22 00 00 01"),
            Officer(role="security", name="Sverre Sikker", email="sikkerhet@solstrand.example.com"),
        ])
        drift = Subprocessor(key="fjorddrift", name="Fjorddrift AS", service="Drift av servere",
                             data_categories=["user.name", "user.contact.email"],
                             storage_locations=["NO"], processing_locations=["NO"],
                             agreement_date=date(2025, 1, 15), status="active")
        mail = Subprocessor(key="postbud", name="Postbud Inc.", service="E-postutsending",
                            data_categories=["user.contact.email"], storage_locations=["IE"],
                            processing_locations=["US"], transfer_mechanism="scc",
                            status="active")
        session.add_all([drift, mail])
        session.add_all([
            Measure(key="tls", category="technical", area="crypto", title_nb="Kryptert overføring",
                    title_en="Encryption in transit", status="in_place"),
            Measure(key="training", category="organisational", area="staff",
                    title_nb="Opplæring av ansatte", title_en="Staff training", status="in_place"),
        ])
        session.flush()
        return {"drift": drift.id, "mail": mail.id}


def add_subprocessor(db: Database, name: str) -> None:
    with db.transaction(Scope.system("test registry")) as session:
        session.add(Subprocessor(key=name.lower()[:40], name=name, service="Støtte",
                                 storage_locations=["SE"], processing_locations=["SE"],
                                 status="active"))


def fill_vendor(db: Database, personas: Personas) -> dict[str, str]:
    subs = fill_registry(db)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        publish_map(session, demo.map_text(), source="laerbar.yaml")
        consent.create_purpose(session, org_id=personas.vendor, actor_user_id=None,
                               data=consent.PurposeInput(
                                   "newsletter", "other", "f", "Nyhetsbrev", "Newsletter",
                                   description_nb="Nyheter til kunder", description_en="News to customers",
                                   data_categories=("user.contact.email",), retention="2 years"))
        consent.create_purpose(session, org_id=personas.vendor, actor_user_id=None,
                               data=consent.PurposeInput(
                                   "statistics", "statistics", "a", "Statistikk", "Statistics",
                                   retention="13 months",
                                   cookies=({"name": "_vs", "provider": "Solstrand",
                                             "duration": "13 months"},), in_banner=True))
        service.create_entry(session, org_id=personas.vendor, actor_user_id=None,
                             data=service.EntryInput(
                                 key="newsletter", name_nb="Nyhetsbrev", name_en="Newsletter",
                                 purpose_keys=("newsletter",), subjects=("newsletter_subscribers",),
                                 own_tables=("consent_newsletter",), subprocessors=(subs["mail"],)))
    return subs
