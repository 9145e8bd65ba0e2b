"""Consent records: append-only proof, decisions per legal basis, one-step withdrawal, isolation."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from tests.conftest import Personas
from tests.consent.helpers import setup_org
from vern.consent import service
from vern.consent.models import ConsentRecord, HistoryRewrite
from vern.consent.sdk import LocalConsent
from vern.consent.service import Choice
from vern.core.context import RequestContext, reset_request, set_request
from vern.core.db import Database, Scope
from vern.core.errors import InvalidInput

SUBJECT = "b4c1e2d3f4a5b6c7d8e9"


def _record(db: Database, org: str, choices: dict[str, str], method: str = "banner-save") -> None:
    with db.transaction(Scope.tenant(org)) as session:
        service.record_choices(session, org_id=org, subject=SUBJECT, method=method, notice=1,
                               choices=[Choice(k, v) for k, v in choices.items()])


def test_consent_based_purposes_are_closed_until_granted(db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    sdk = LocalConsent(db, personas.tenant_a)
    assert sdk.may_use(SUBJECT, "statistics") is False
    assert sdk.may_use(SUBJECT, "necessary") is True  # legitimate interest until objected
    assert sdk.may_use(SUBJECT, "no-such-purpose") is False
    _record(db, personas.tenant_a, {"statistics": "granted", "marketing": "denied"})
    assert sdk.may_use(SUBJECT, "statistics") is True
    assert sdk.may_use(SUBJECT, "marketing") is False


def test_withdrawal_is_one_step_and_keeps_the_history(db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    _record(db, personas.tenant_a, {"statistics": "granted", "marketing": "granted"})
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        rows = service.withdraw(session, org_id=personas.tenant_a, subject=SUBJECT, purposes=None,
                                method="banner-withdraw")
    assert {r.purpose_key: r.choice for r in rows} == {"statistics": "withdrawn",
                                                        "marketing": "withdrawn"}
    sdk = LocalConsent(db, personas.tenant_a)
    assert sdk.may_use(SUBJECT, "statistics") is False
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        history = service.history(session, SUBJECT)
    assert [r.choice for r in history].count("granted") == 2
    assert len(history) == 4


def test_an_objection_stops_a_legitimate_interest(db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        service.withdraw(session, org_id=personas.tenant_a, subject=SUBJECT,
                         purposes=["necessary"], method="api")
        decisions = service.decisions(session, SUBJECT)
    assert decisions["necessary"]["choice"] == "objected"
    assert decisions["necessary"]["allowed"] is False


def test_history_can_never_be_rewritten(db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    _record(db, personas.tenant_a, {"statistics": "granted"})
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        row = session.scalars(select(ConsentRecord)).one()
        row.choice = "denied"
        with pytest.raises(HistoryRewrite):
            session.flush()
        session.rollback()
    with pytest.raises(HistoryRewrite), db.transaction(Scope.tenant(personas.tenant_a)) as session:
        session.execute(update(ConsentRecord).values(choice="denied"))
    with pytest.raises(HistoryRewrite), db.transaction(Scope.tenant(personas.tenant_a)) as session:
        session.execute(delete(ConsentRecord))
    with pytest.raises(HistoryRewrite), db.transaction(Scope.tenant(personas.tenant_a)) as session:
        session.delete(session.scalars(select(ConsentRecord)).one())
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        assert session.scalars(select(ConsentRecord.choice)).all() == ["granted"]


def test_a_record_keeps_only_the_truncated_address(db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    token = set_request(RequestContext("r1", "195.159.103.82", "Firefox/128.0", "POST", "/c/x"))
    try:
        _record(db, personas.tenant_a, {"statistics": "granted"})
    finally:
        reset_request(token)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        row = session.scalars(select(ConsentRecord)).one()
    assert row.ip_truncated == "195.159.103.0"
    assert row.user_agent == "Firefox/128.0"


def test_another_tenant_neither_sees_nor_decides_on_tenant_a_records(
        db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    setup_org(db, personas.tenant_b)
    _record(db, personas.tenant_a, {"statistics": "granted"})
    assert LocalConsent(db, personas.tenant_b).may_use(SUBJECT, "statistics") is False
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        assert service.history(session, SUBJECT) == []


@pytest.mark.parametrize(("choices", "field"), [
    ({"unknown": "granted"}, "choices"),
    ({"statistics": "maybe"}, "choices"),
])
def test_it_refuses_bad_choices_and_stores_nothing(
        db: Database, personas: Personas, choices: dict[str, str], field: str) -> None:
    setup_org(db, personas.tenant_a)
    with pytest.raises(InvalidInput) as caught:
        _record(db, personas.tenant_a, {"statistics": "granted", **choices})
    assert caught.value.errors[0].field == field
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        assert session.scalars(select(ConsentRecord)).all() == []


def test_cookies_that_are_not_necessary_need_consent(db: Database, personas: Personas) -> None:
    bad = service.PurposeInput("ads", "marketing", "f", "Annonser", "Ads", in_banner=True)
    with pytest.raises(InvalidInput) as caught, db.transaction(Scope.tenant(personas.tenant_a)) as s:
        service.create_purpose(s, org_id=personas.tenant_a, data=bad, actor_user_id=None)
    assert caught.value.errors[0].field == "legal_basis"


def test_notices_are_versioned(db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        service.publish_notice(session, org_id=personas.tenant_a, kind="cookie", title_nb="Ny",
                               title_en="New", body_nb="Ny tekst", body_en="New text",
                               actor_user_id=None)
        current = service.current_notice(session, "cookie")
        first = service.notice_version(session, "cookie", 1)
    assert current is not None and current.version == 2
    assert first.body_en == "We use cookies."
