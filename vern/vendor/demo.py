"""Demo data of the vendor's registry: the seed documents' measures, officers, systems, three
sub-processors (one outside the EU/EEA under standard contractual clauses, whose notice the
customers can object to), customer profiles and a maintenance notice. Idempotent."""

from __future__ import annotations

from datetime import date, timedelta

from vern.core.db import Database, Scope, utcnow
from vern.vendor import service
from vern.vendor.service import MaintenanceInput, MeasureInput, SubprocessorInput, SystemInput

SYSTEMS = [
    SystemInput("product", "Læringsplattformen", "The product's database and file store",
                ("NO",), ("NO",)),
    SystemInput("backups", "Sikkerhetskopier", "Nightly copies in three places", ("NO", "SE"),
                ("NO",)),
    SystemInput("helpdesk", "Kundestøtte", "Support tickets", ("IE",), ("IE", "US"), "scc",
                "Standard contractual clauses (2021/914), module 3, with a transfer impact "
                "assessment"),
]


def _subprocessors(customer: str | None) -> list[SubprocessorInput]:
    return [
        SubprocessorInput("datacentre", "Fjordhall Drift AS", "Operation of the data centres",
                          ("user.name", "user.contact.email", "user.content"), ("NO",), ("NO",),
                          agreement_date=date(2025, 1, 15), status="active",
                          processings=("product", "backups")),
        SubprocessorInput("cloud", "Skyvik Cloud Ireland Ltd", "Off-site backup storage",
                          ("user.name", "user.content"), ("IE", "NL"), ("IE",),
                          agreement_date=date(2025, 3, 1), status="active",
                          processings=("backups",)),
        SubprocessorInput("support", "Nordlys Support Inc", "Helpdesk for customer support",
                          ("user.name", "user.contact.email"), ("IE",), ("US",), "scc",
                          "Standard contractual clauses (2021/914), module 3",
                          agreement_date=date(2026, 11, 20), status="planned",
                          all_customers=customer is None,
                          customer_ids=(customer,) if customer else ()),
    ]


def load_demo(database: Database, orgs: dict[str, str]) -> None:
    with database.transaction(Scope.system("demo: vendor registry")) as session:
        if service.list_subprocessors(session, include_retired=True):
            return
        service.seed_measures(session, actor_user_id=None)
        for key, owner in (("encryption-in-transit", "Driftsleder"),
                           ("backups", "Driftsleder"), ("access-control", "Sikkerhetsansvarlig")):
            m = service.measure_view(service.get_measure(session, key))
            service.save_measure(session, MeasureInput(
                key=m.key, category=m.category, title_nb=m.title_nb, title_en=m.title_en,
                description_nb=m.description_nb, description_en=m.description_en, area=m.area,
                owner=owner, status="in_place", source=m.source,
                evidence=(("Rutinebeskrivelse", "https://intranett.solstrand.example.com/rutiner/"
                           + key),)), actor_user_id=None)
        service.set_officer(session, role="dpo", name="Pia Personvern",
                            email="personvernombud@solstrand.example.com", phone="+47 400 00 001",
                            actor_user_id=None)
        service.set_officer(session, role="security", name="Sigurd Sikker",
                            email="sikkerhet@solstrand.example.com", phone="+47 400 00 002",
                            actor_user_id=None)
        for system in SYSTEMS:
            service.save_system(session, system, actor_user_id=None)
        for slug, start in (("fjellheim", date(2025, 8, 1)), ("havbris", date(2026, 1, 1))):
            if slug in orgs:
                profile = service.customer_profile(session, orgs[slug])
                service.set_customer_profile(session, orgs[slug], org_number=profile.org_number,
                                             contract_start=start, contract_end=None)
        for sub in _subprocessors(orgs.get("fjellheim")):
            service.save_subprocessor(session, sub, actor_user_id=None)
        service.record_subprocessor_audit(session, "datacentre", audited_on=date(2026, 6, 12),
                                          result="passed", actor_user_id=None)
        start = (utcnow() + timedelta(days=3)).replace(hour=21, minute=0, second=0,
                                                       microsecond=0)
        service.schedule_maintenance(session, MaintenanceInput(
            "Oppgradering av databasen", "Database upgrade", start, start + timedelta(hours=2),
            "Tjenesten kan være utilgjengelig i opptil to timer.",
            "The service may be unavailable for up to two hours."), actor_user_id=None)
