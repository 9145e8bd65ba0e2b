"""Demo data: the seed vendor's website purposes (statistics, marketing, newsletter), notices in
bokmål and English, and a few banner choices. Idempotent."""

from __future__ import annotations

from datetime import timedelta

from vern.consent import service
from vern.consent.service import Choice, PurposeInput
from vern.core.db import Database, Scope, utcnow

PURPOSES = [
    PurposeInput("necessary", "necessary", "f", "Nødvendige", "Strictly necessary",
                 "Husker valget ditt om informasjonskapsler og holder skjemaer trygge. Skjemadata "
                 "slettes etter 90 dager.",
                 "Remembers your cookie choice and keeps forms safe. Form data is deleted after "
                 "90 days.", data_categories=("user.behaviour",), retention="90 days",
                 cookies=({"name": "vern_consent", "provider": "Vern", "duration": "182 days"},
                          {"name": "wordpress_*", "provider": "WordPress", "duration": "90 days"})),
    PurposeInput("statistics", "statistics", "a", "Statistikk", "Statistics",
                 "Google Analytics teller besøk slik at vi kan forbedre nettstedet.",
                 "Google Analytics counts visits so that we can improve the website.",
                 data_categories=("user.behaviour", "user.device.user_agent"),
                 retention="14 months",
                 cookies=({"name": "_ga*", "provider": "Google", "duration": "2 years"},
                          {"name": "_gid", "provider": "Google", "duration": "24 hours"}),
                 in_banner=True),
    PurposeInput("marketing", "marketing", "a", "Markedsføring", "Marketing",
                 "Facebook Pixel måler effekten av annonsene våre.",
                 "Facebook Pixel measures how our adverts work.",
                 data_categories=("user.behaviour",), retention="90 days",
                 cookies=({"name": "_fbp", "provider": "Meta", "duration": "90 days"},),
                 in_banner=True),
    PurposeInput("newsletter", "other", "a", "Nyhetsbrev", "Newsletter",
                 "Kunder får nyhetsbrevet på grunnlag av berettiget interesse; andre etter samtykke.",
                 "Customers receive the newsletter on legitimate interest; others after consent.",
                 data_categories=("user.contact.email",), retention="Til du melder deg av"),
]

PRIVACY_NB = ("Vi behandler personopplysninger for å besvare henvendelser, sende nyhetsbrev og "
              "lage statistikk. Du har rett til innsyn, retting, sletting, begrensning, "
              "dataportabilitet og til å protestere. Klage kan sendes til Datatilsynet.")
PRIVACY_EN = ("We process personal data to answer enquiries, send newsletters and make statistics. "
              "You have the right of access, rectification, erasure, restriction, portability and "
              "to object. You may complain to Datatilsynet.")
COOKIE_NB = ("Informasjonskapsler som ikke er nødvendige, lagres bare med samtykke "
             "(ekomloven). Du kan endre valget når som helst.")
COOKIE_EN = ("Cookies that are not strictly necessary are stored only with your consent "
             "(Norwegian Electronic Communications Act). You can change your choice at any time.")


def load_demo(database: Database, orgs: dict[str, str]) -> None:
    for slug in ("solstrand", "fjellheim", "havbris"):
        org_id = orgs.get(slug)
        if org_id is None:
            continue
        with database.transaction(Scope.tenant(org_id)) as session:
            if service.list_purposes(session, include_retired=True):
                continue
            for purpose in PURPOSES:
                service.create_purpose(session, org_id=org_id, data=purpose, actor_user_id=None)
            service.publish_notice(session, org_id=org_id, kind="privacy", title_nb="Personvern",
                                   title_en="Privacy notice", body_nb=PRIVACY_NB,
                                   body_en=PRIVACY_EN, actor_user_id=None)
            service.publish_notice(session, org_id=org_id, kind="cookie",
                                   title_nb="Informasjonskapsler", title_en="Cookies",
                                   body_nb=COOKIE_NB, body_en=COOKIE_EN, actor_user_id=None)
            start = utcnow() - timedelta(days=6)
            for i, (stats, marketing, method) in enumerate([
                (True, True, "banner-accept"), (False, False, "banner-reject"),
                (True, False, "banner-save"), (False, False, "gpc"),
            ]):
                service.record_choices(
                    session, org_id=org_id, subject=f"demo-visitor-{i:04d}", method=method,
                    notice=1, at=start + timedelta(days=i),
                    choices=[Choice("statistics", "granted" if stats else "denied"),
                             Choice("marketing", "granted" if marketing else "denied")])
