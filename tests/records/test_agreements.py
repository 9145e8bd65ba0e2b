"""Agreements per customer (Art. 28(3)) and published documents with versions and diffs."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import Personas
from tests.records.helpers import add_subprocessor, fill_vendor
from vern.consent import service as consent
from vern.core.db import Database, Scope
from vern.core.errors import Conflict, InvalidInput
from vern.notify.models import OutboxMessage
from vern.records import documents, render, service


def _agreement(db: Database, org_id: str) -> str:
    assert documents.publish_dpa(db, org_id=org_id, actor_user_id=None) is not None
    with db.transaction(Scope.tenant(org_id)) as session:
        pending = service.agreement_status(session)["pending"]
        assert pending is not None
        return str(pending["id"])


def test_a_new_agreement_is_mailed_to_the_customers_admins(db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)
    _agreement(db, personas.tenant_a)
    with db.transaction(Scope.system("test outbox")) as session:
        mails = list(session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "records.agreement_sent")))
    assert [m.recipient.value for m in mails] == ["alice.aasen@fjellheim.example.com"]
    assert "Fjellheim barnehage" in mails[0].body.value
    # Unchanged text: no new version, no new mail.
    assert documents.publish_dpa(db, org_id=personas.tenant_a, actor_user_id=None) is None


@pytest.mark.parametrize(("signer", "day", "field"), [
    (None, date(2026, 1, 5), "signer_name"),
    ("   ", date(2026, 1, 5), "signer_name"),
    ("Alice Aasen", None, "signed_on"),
])
def test_an_agreement_is_not_signed_without_signer_and_date(
        db: Database, personas: Personas, signer: str | None, day: date | None, field: str) -> None:
    fill_vendor(db, personas)
    agreement_id = _agreement(db, personas.tenant_a)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session, \
            pytest.raises(InvalidInput) as caught:
        service.sign_agreement(session, agreement_id=agreement_id, signer_name=signer,
                               signed_on=day, actor_user_id=personas.alice.user_id)
    assert caught.value.errors[0].field == field
    assert "cannot be marked signed" in caught.value.errors[0].message
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        assert service.get_agreement(session, agreement_id).status == "sent"


def test_signing_freezes_the_annexes_as_they_stood(db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)
    agreement_id = _agreement(db, personas.tenant_a)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        service.sign_agreement(session, agreement_id=agreement_id, signer_name="Alice Aasen",
                               signed_on=date.today(), actor_user_id=personas.alice.user_id)
    add_subprocessor(db, "Skybert AB")
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        row = service.get_agreement(session, agreement_id)
        assert row.status == "signed" and row.signer_name == "Alice Aasen"
        assert sorted(s["name"] for s in row.annex_subprocessors or []) == ["Fjorddrift AS", "Postbud Inc."]
        signed_text = documents.signed_dpa_html(session, row, "en")
        assert "Skybert AB" not in signed_text and "Postbud Inc." in signed_text
        with pytest.raises(Conflict):
            service.sign_agreement(session, agreement_id=agreement_id, signer_name="Alice Aasen",
                                   signed_on=date.today(), actor_user_id=None)
    # The changed annex makes a new version; the signed one stays signed until that is signed.
    assert documents.publish_dpa(db, org_id=personas.tenant_a, actor_user_id=None) is not None
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        status = service.agreement_status(session)
        assert status["signed"]["version"] == 1 and status["pending"]["version"] == 2
        with pytest.raises(InvalidInput) as caught:
            service.sign_agreement(session, agreement_id=status["pending"]["id"], signer_name="A",
                                   signed_on=date.today() + timedelta(days=2), actor_user_id=None)
        assert caught.value.errors[0].field == "signed_on"


def test_the_dpa_holds_every_art_28_3_clause_in_both_languages(db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        nb, en = documents.dpa_html(session, org_id=personas.tenant_a, version=1)
    for letter in "abcdefgh":
        assert f"<h3>({letter})" in nb and f"<h3>({letter})" in en
    assert "Databehandleravtale" in nb and "Data processing agreement" in en
    assert "Vedlegg 1: Underdatabehandlere" in nb and "Fjorddrift AS" in nb
    assert "personvern@solstrand.example.com" in en and "Datatilsynet" in en


def test_a_new_privacy_statement_is_kept_diffed_and_makes_the_banner_ask_again(
        db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)
    first = documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
    assert first is not None and first.version == 1
    assert documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None) is None
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        cookie_before = consent.current_notice(session, "cookie")
        assert cookie_before is not None
        consent.create_purpose(session, org_id=personas.vendor, actor_user_id=None,
                               data=consent.PurposeInput("support", "other", "b", "Brukerstøtte",
                                                         "Support", retention="1 year"))
        entry = service.get_entry(session, "newsletter")
        entry.purpose_keys = ["newsletter", "support"]
    second = documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
    assert second is not None and second.version == 2
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        versions = [d.version for d in service.document_versions(session, "privacy")]
        assert versions == [2, 1]
        one, two = (service.document_version(session, "privacy", v) for v in (1, 2))
        changes = render.diff(one.html_en, two.html_en, "v1", "v2")
        assert any(line.startswith("+") and "Support" in line for line in changes)
        assert consent.current_notice(session, "privacy").version == 2  # type: ignore[union-attr]
        # Consent in the banner depends on it: a new cookie policy version, so the banner asks again.
        assert consent.current_notice(session, "cookie").version == cookie_before.version + 1  # type: ignore[union-attr]


def test_the_record_and_cookie_policy_are_published_from_their_sources(db: Database,
                                                                        personas: Personas) -> None:
    fill_vendor(db, personas)
    record = documents.publish(db, kind="record", vendor_org_id=personas.vendor, actor_user_id=None)
    cookie = documents.publish(db, kind="cookie", vendor_org_id=personas.vendor, actor_user_id=None)
    assert record is not None and "Havbris skole" in record.html_nb
    assert cookie is not None and "_vs" in cookie.html_en and "Statistikk" in cookie.html_nb
    assert render.pdf(record.html_nb).startswith(b"%PDF")
