"""Demo register of deviations of the vendor Solstrand Læring AS: a closed deviation without
personal data (a failed nightly backup), and an open breach affecting one customer (Fjellheim
barnehage): its first notice sent, and Datatilsynet's 72-hour clock still running because the
vendor is also controller of part of the data (its own contact persons at the customer).
Idempotent."""

from __future__ import annotations

from datetime import datetime, timedelta

from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind, Role, permissions
from vern.accounts.service import Actor
from vern.core.config import get_settings
from vern.core.db import Database, Scope, utcnow
from vern.incidents import service
from vern.incidents.service import IncidentInput


def _officer(database: Database, vendor: str) -> Actor | None:
    """The vendor's security officer, who keeps the register."""
    with database.transaction(Scope.tenant(vendor)) as session:
        user_id = next((u.id for u, m in accounts.list_members(session)
                        if m.role == Role.SECURITY_OFFICER.value), None)
    if user_id is None:
        return None
    return Actor(org_id=vendor, org_kind=OrgKind.VENDOR, role=Role.SECURITY_OFFICER,
                 user_id=user_id,
                 perms=permissions(Role.SECURITY_OFFICER, org_kind=OrgKind.VENDOR, home=True))


def _deviation(now: datetime) -> IncidentInput:
    return IncidentInput(
        title="Nattlig sikkerhetskopi feilet to netter på rad",
        personal_data=False, risk="none",
        discovered_at=now - timedelta(days=40),
        what_happened="Sikkerhetskopien til den andre lokasjonen stoppet etter en "
                      "sertifikatfornyelse. Ingen data gikk tapt; de to andre kopiene var i orden.",
        how_happened="Et utløpt klientsertifikat hos driftsleverandøren.",
        measures_taken="Sertifikatet er fornyet og kopiene er kjørt på nytt og kontrollert.",
        measures_proposed="Varsel 30 dager før et sertifikat utløper.")


def load_demo(database: Database, orgs: dict[str, str]) -> None:
    vendor, customer = orgs.get("solstrand"), orgs.get("fjellheim")
    if vendor is None or customer is None:
        return
    actor = _officer(database, vendor)
    if actor is None:
        return
    now = utcnow()
    with database.transaction(Scope.system("demo: the vendor's register")) as session:
        if service.list_incidents(session, actor, status=None, limit=1):
            return
        closed = service.register(session, actor, _deviation(now), now=now - timedelta(days=40))
        service.close(session, actor, closed.id,
                      cause="Klientsertifikatet ble ikke fornyet automatisk.",
                      lessons="Utløpsdatoer for sertifikater overvåkes nå sammen med kopiene.",
                      now=now - timedelta(days=38))
        aware = now - timedelta(hours=20)
        breach = service.register(session, actor, IncidentInput(
            title="Feilsendt eksport fra kundestøtte",
            personal_data=True, risk="risk",
            occurred_from=aware - timedelta(hours=6), occurred_to=aware - timedelta(hours=5),
            discovered_at=aware - timedelta(minutes=40), aware_at=aware,
            what_happened="En eksport av en supportsak med navn på barn og foresatte i Fjellheim "
                          "barnehage ble sendt til feil e-postadresse hos en annen kunde.",
            how_happened="Autofullføring valgte feil mottaker i kundestøttesystemet.",
            subject_categories=["barn", "foresatte", "kontaktpersoner hos kunden"],
            subjects_approx=14,
            data_categories=["navn", "avdeling", "e-postadresse"],
            records_approx=14,
            consequences="Navn og avdeling kjent for én uvedkommende mottaker; lav sannsynlighet "
                         "for videre spredning.",
            measures_taken="Mottakeren har slettet e-posten og bekreftet det skriftlig.",
            measures_proposed="Autofullføring av mottakere slås av i kundestøttesystemet.",
            data_location="Slettet hos mottakeren; originalen i Solstrands kundestøttesystem.",
            contact="Personvernombud Pia Personvern, personvernombud@solstrand.example.com",
            vendor_is_controller=True), [customer], now=now - timedelta(hours=19))
        service.send_notices(session, actor, breach.id, base_url=get_settings().base_url,
                             now=now - timedelta(hours=16))
