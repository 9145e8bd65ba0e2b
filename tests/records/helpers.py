"""A vendor with a registry, a product map, purposes and processing entries (fictional)."""

from __future__ import annotations

from datetime import date

from tests.conftest import Personas
from vern.consent import service as consent
from vern.core.db import Database, Scope
from vern.datamap.service import publish_map
from vern.records import service
from vern.rights import demo
from vern.vendor import service as vendor


def fill_registry(db: Database) -> dict[str, str]:
    """Officers, two sub-processors (one processing outside the EU/EEA, under SCCs) and two
    measures, through the vendor registry's own service."""
    with db.transaction(Scope.system("test registry")) as session:
        vendor.set_officer(session, role="dpo", name="Dina Personvern",
                           email="personvern@solstrand.example.com", phone="+47 22 00 00 01",
                           actor_user_id=None)
        vendor.set_officer(session, role="security", name="Sverre Sikker",
                           email="sikkerhet@solstrand.example.com", actor_user_id=None)
        drift, _ = vendor.save_subprocessor(session, vendor.SubprocessorInput(
            key="fjorddrift", name="Fjorddrift AS", service="Drift av servere",
            data_categories=("user.name", "user.contact.email"), storage_locations=("NO",),
            processing_locations=("NO",), agreement_date=date(2025, 1, 15), status="active"),
            actor_user_id=None)
        mail, _ = vendor.save_subprocessor(session, vendor.SubprocessorInput(
            key="postbud", name="Postbud Inc.", service="E-postutsending",
            data_categories=("user.contact.email",), storage_locations=("IE",),
            processing_locations=("US",), transfer_mechanism="scc", status="active"),
            actor_user_id=None)
        for key, category, nb, en in (("tls", "technical", "Kryptert overføring", "Encryption in transit"),
                                      ("training", "organisational", "Opplæring av ansatte",
                                       "Staff training")):
            vendor.save_measure(session, vendor.MeasureInput(key, category, nb, en, status="in_place"),
                                actor_user_id=None)
        return {"drift": drift.id, "mail": mail.id}


def add_subprocessor(db: Database, name: str) -> int:
    """A new sub-processor for every customer; returns how many customers were told."""
    with db.transaction(Scope.system("test registry")) as session:
        _, told = vendor.save_subprocessor(session, vendor.SubprocessorInput(
            key=name.lower().replace(" ", "-")[:40], name=name, service="Støtte",
            data_categories=("user.name",),
            storage_locations=("SE",), processing_locations=("SE",), status="active"),
            actor_user_id=None)
        return told


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
