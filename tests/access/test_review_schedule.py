"""The worker opens an access review campaign in every organisation once per period (quarterly
by default, ``VERN_ACCESS_REVIEW_MONTHS``), never twice in one period whatever restarts, and
tells the reviewers through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from tests.conftest import Personas
from vern.access import jobs
from vern.access import service as access
from vern.access.models import AccessReview, AccessReviewItem
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.worker import run_due
from vern.notify import service as notify


def _reviews(db: Database) -> list[Any]:
    with db.transaction(Scope.system("test read")) as session:
        return list(session.execute(select(AccessReview.org_id, AccessReview.title,
                                           AccessReview.opened_by)).all())


def test_the_period_is_a_quarter_by_default_and_its_name_says_which() -> None:
    now = datetime(2026, 12, 6, 10, 45, tzinfo=UTC)
    assert access.review_period(now, 3) == (datetime(2026, 10, 1, tzinfo=UTC), "2026-Q4")
    assert access.review_period(now, 12)[1] == "2026"
    assert access.review_period(now, 6)[0] == datetime(2026, 7, 1, tzinfo=UTC)
    assert Settings(env="test").access_review_months == 3
    with pytest.raises(ValidationError):
        Settings(env="test", access_review_months=5)


def test_the_worker_opens_one_campaign_per_organisation_and_period_and_mails_reviewers(
    mailer: notify.MemoryMailer, db: Database, settings: Settings, personas: Personas
) -> None:
    assert run_due(db, settings, jobs=jobs.JOBS) == ["access.reviews"]
    notify.deliver_pending(db)
    alice_mail = mailer.last_to(personas.alice.email)
    dave_mail = mailer.last_to(personas.dave.email)
    bob_mail = mailer.last_to(personas.bob.email)
    erik_mail = mailer.last_to(personas.erik.email)
    opened = _reviews(db)
    assert sorted(r.org_id for r in opened) == sorted(
        [personas.vendor, personas.tenant_a, personas.tenant_b])
    assert all(r.opened_by is None and r.title.startswith("Access review 20") for r in opened)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        review_id = session.scalar(select(AccessReview.id))
        listed = session.execute(select(AccessReviewItem.user_id, AccessReviewItem.role)).all()
    assert [(r.user_id, r.role) for r in listed] == [(personas.alice.user_id, "tenant_admin")]
    # The reviewers (who may manage access there) are told; members and others are not.
    assert alice_mail is not None and f"/console/access/reviews/{review_id}" in alice_mail.body
    assert dave_mail is not None and "Solstrand" in dave_mail.subject
    assert bob_mail is None and erik_mail is None
    # Run again - as after a restart, when the worker's own schedule says it is due - and
    # nothing more is opened in the same period.
    assert jobs.open_reviews(db, settings) == 0
    assert len(_reviews(db)) == 3
    # A new period opens a new campaign.
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        later = datetime(2099, 1, 2, tzinfo=UTC)
        assert access.open_scheduled_review(session, org_id=personas.tenant_a, months=3,
                                            now=later) is not None
        assert access.open_scheduled_review(session, org_id=personas.tenant_a, months=3,
                                            now=later) is None
    assert len(_reviews(db)) == 4


def test_a_campaign_opened_by_hand_does_not_stand_in_and_zero_turns_it_off(
    login: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    assert jobs.open_reviews(db, settings.model_copy(update={"access_review_months": 0})) == 0
    assert _reviews(db) == []
    alice = login(personas.alice)
    assert alice.post("/api/v1/access/reviews", json={}).status_code == 201
    assert jobs.open_reviews(db, settings) == 3
