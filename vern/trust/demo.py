"""Demo trust page: a short, fictional summary of a penetration test of the product, kept by the
vendor Solstrand Læring AS and shared with one customer (Fjellheim barnehage) only. Idempotent."""

from __future__ import annotations

from vern.core.db import Database, Scope
from vern.trust import service

TITLE = "Sammendrag av penetrasjonstest 2026 / Penetration test summary 2026"

SUMMARY = """\
Solstrand Læring AS - sammendrag av penetrasjonstest / penetration test summary
==============================================================================

Utført av / performed by: Fjordvakt Sikkerhet AS (fiktivt / fictional)
Periode / period: 2.-13. november 2026
Omfang / scope: Læringsplattformen (web og API), pålogging med tofaktor, kundekonsollen
                The learning platform (web and API), sign-in with two factors, the customer console

Resultat / result
-----------------
Ingen kritiske eller høye funn. / No critical or high findings.
2 middels / medium:
  - Manglende hastighetsbegrensning på ett API-endepunkt for eksport (rettet 20.11.2026)
    Missing rate limit on one export API endpoint (fixed 2026-11-20)
  - Detaljerte feilmeldinger ved ugyldig filopplasting (rettet 24.11.2026)
    Verbose error messages on invalid file upload (fixed 2026-11-24)
3 lave / low: informasjonshoder og informasjonskapselattributter (planlagt desember 2026)
              response headers and cookie attributes (planned December 2026)

Retest av middels funn bestått 27.11.2026. / Retest of the medium findings passed 2026-11-27.

Kontakt / contact: sikkerhet@solstrand.example.com
"""


def load_demo(database: Database, orgs: dict[str, str]) -> None:
    vendor, customer = orgs.get("solstrand"), orgs.get("fjellheim")
    if vendor is None or customer is None:
        return
    with database.transaction(Scope.tenant(vendor)) as session:
        if service.list_files(session):
            return
        row = service.upload_file(session, org_id=vendor, title=TITLE,
                                  filename="penetrasjonstest-2026-sammendrag.txt",
                                  content_type="text/plain", content=SUMMARY.encode(),
                                  actor_user_id=None)
        file_id = row.id
    service.share_file(database, vendor_org_id=vendor, file_id=file_id, org_ids=[customer],
                       actor_user_id=None)
