"""Purposes and notices for consent tests (the seed vendor's own setup, fictional)."""

from __future__ import annotations

from vern.consent import service
from vern.consent.service import PurposeInput
from vern.core.db import Database, Scope

PURPOSES = [
    PurposeInput("necessary", "necessary", "f", "Nødvendige", "Necessary",
                 "Husker valget ditt om informasjonskapsler.", "Remembers your cookie choice.",
                 cookies=({"name": "vern_consent", "provider": "Vern", "duration": "182 dager"},)),
    PurposeInput("statistics", "statistics", "a", "Statistikk", "Statistics",
                 "Teller besøk for å forbedre nettstedet.", "Counts visits to improve the site.",
                 data_categories=("user.behaviour",), retention="14 måneder",
                 cookies=({"name": "_track", "provider": "Sporing AS", "duration": "1 dag"},),
                 in_banner=True),
    PurposeInput("marketing", "marketing", "a", "Markedsføring", "Marketing",
                 "Annonser tilpasset deg.", "Ads tailored to you.",
                 cookies=({"name": "_ads*", "provider": "Annonse AS", "duration": "90 dager"},),
                 in_banner=True),
    PurposeInput("newsletter", "other", "a", "Nyhetsbrev", "Newsletter",
                 "Nyheter fra oss på e-post.", "News from us by e-mail.",
                 data_categories=("user.contact.email",), retention="Til du melder deg av"),
]


def setup_org(db: Database, org_id: str) -> None:
    with db.transaction(Scope.tenant(org_id)) as session:
        for p in PURPOSES:
            service.create_purpose(session, org_id=org_id, data=p, actor_user_id=None)
        service.publish_notice(session, org_id=org_id, kind="cookie", title_nb="Informasjonskapsler",
                               title_en="Cookies", body_nb="Vi bruker informasjonskapsler.",
                               body_en="We use cookies.", actor_user_id=None)
        service.publish_notice(session, org_id=org_id, kind="privacy", title_nb="Personvern",
                               title_en="Privacy", body_nb="Slik behandler vi personopplysninger.",
                               body_en="How we process personal data.", actor_user_id=None)
