"""Sample values in tenant A for the consent and statistics routes' path parameters."""

from __future__ import annotations

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.consent import service as consent
from vern.core.config import Settings
from vern.core.db import Database, Scope, new_id
from vern.stats import service as stats


def consent_org(db: Database, personas: Personas, settings: Settings) -> Sample:
    """The public slug of tenant A (the banner's and declaration's address): public by design."""
    return Sample("fjellheim", None)


def consent_subject(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A subject with a record in tenant A. Subject ids are the caller's own pseudonyms: another
    organisation asking about the same string gets its own (empty) answer, never tenant A's, so
    the value itself belongs to no tenant (the consent tests check that isolation)."""
    subject = "matrix-" + new_id().replace("-", "")
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        if consent.current_notice(session, "cookie") is None:
            consent.create_purpose(session, org_id=personas.tenant_a, actor_user_id=None,
                                   data=consent.PurposeInput("statistics", "statistics", "a",
                                                             "Statistikk", "Statistics"))
        consent.record_choices(session, org_id=personas.tenant_a, subject=subject, method="api",
                               notice=None, choices=[consent.Choice("statistics", "granted")])
        if consent.current_notice(session, "cookie") is None:
            consent.publish_notice(session, org_id=personas.tenant_a, kind="cookie",
                                   title_nb="Informasjonskapsler", title_en="Cookies",
                                   body_nb="Tekst", body_en="Text", actor_user_id=None)
    return Sample(subject, None)


def notice_kind(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A published privacy notice of tenant A (the public page of the slug above)."""
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        if consent.current_notice(session, "privacy") is None:
            consent.publish_notice(session, org_id=personas.tenant_a, kind="privacy",
                                   title_nb="Personvern", title_en="Privacy", body_nb="Tekst",
                                   body_en="Text", actor_user_id=None)
    return Sample("privacy", None)


def purpose_key(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A purpose of tenant A: another tenant's key of the same name is its own purpose."""
    key = "matrix-" + new_id()[-12:]
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        consent.create_purpose(session, org_id=personas.tenant_a, actor_user_id=None,
                               data=consent.PurposeInput(key, "other", "f", "Formål", "Purpose"))
    return Sample(key, personas.tenant_a)


def newsletter_step(db: Database, personas: Personas, settings: Settings) -> Sample:
    return Sample("unsubscribe", None)


def stats_site(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        site = stats.create_site(session, org_id=personas.tenant_a, name="Nettsiden",
                                 domain="www.fjellheim.example.com", actor_user_id=None)
        return Sample(site.id, personas.tenant_a)


SAMPLES = {
    "consent_org": consent_org,
    "consent_subject": consent_subject,
    "notice_kind": notice_kind,
    "newsletter_step": newsletter_step,
    "purpose_key": purpose_key,
    "stats_site": stats_site,
}
