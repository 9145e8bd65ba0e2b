"""The banner's endpoints, the consent API for the product, newsletter flows, and the console."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import Personas
from tests.consent.helpers import setup_org
from tests.stats.server import free_port, serve
from vern.accounts.roles import Role
from vern.consent.models import ConsentRecord
from vern.core.db import Database, Scope
from vern.notify.service import MemoryMailer, install_mailer
from vern.sdk import ConsentClient, ConsentError
from vern.stats.models import PublicReject

SUBJECT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def _visitor(app: Any) -> TestClient:
    return TestClient(app, base_url="http://testserver", client=("195.159.103.82", 40000))


def _choose(c: TestClient, choices: dict[str, bool], method: str, version: int = 1) -> Any:
    body = {"subject": SUBJECT, "version": version, "choices": choices, "method": method}
    return c.post("/c/fjellheim/consent", content=json.dumps(body),
                  headers={"content-type": "text/plain", "user-agent": "Firefox/128.0"})


def test_the_banner_gets_its_purposes_and_words_in_both_languages(
        app: Any, db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    with _visitor(app) as c:
        nb = c.get("/c/fjellheim/config?lang=nb").json()
        en = c.get("/c/fjellheim/config?lang=en").json()
        script = c.get("/c/vern-consent.js")
    assert nb["version"] == 1
    assert [p["key"] for p in nb["purposes"]] == ["marketing", "necessary", "statistics"]
    assert next(p for p in nb["purposes"] if p["key"] == "necessary")["required"] is True
    assert nb["texts"]["reject"] == "Avvis alle" and en["texts"]["reject"] == "Reject all"
    assert "Fjellheim barnehage" in en["texts"]["body"]
    assert script.headers["content-type"].startswith("text/javascript")


def test_each_banner_choice_becomes_a_record_and_withdrawal_is_recorded_as_such(
        app: Any, db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    with _visitor(app) as c:
        assert _choose(c, {"statistics": True, "marketing": True}, "banner-accept").status_code == 201
        assert _choose(c, {"statistics": False, "marketing": False}, "banner-save").status_code == 201
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        rows = session.scalars(select(ConsentRecord).order_by(ConsentRecord.recorded_at,
                                                              ConsentRecord.purpose_key)).all()
    assert [(r.purpose_key, r.choice) for r in rows] == [
        ("marketing", "granted"), ("statistics", "granted"),
        ("marketing", "withdrawn"), ("statistics", "withdrawn")]
    assert {r.ip_truncated for r in rows} == {"195.159.103.0"}
    assert {r.notice_version for r in rows} == {1}


def test_bad_banner_posts_are_refused_whole_and_counted(
        app: Any, db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    with _visitor(app) as c:
        assert _choose(c, {"statistics": True}, "banner-save").status_code == 422  # incomplete
        assert _choose(c, {"statistics": True, "marketing": True}, "banner-accept",
                       version=0).status_code == 409  # an old policy version
        assert _choose(c, {"statistics": True, "marketing": True}, "sneaky").status_code == 422
        assert c.post("/c/fjellheim/consent", content=b"{").status_code == 422
        assert c.post("/c/nobody/consent", content=json.dumps(
            {"subject": SUBJECT, "version": 1, "choices": {}, "method": "gpc"})).status_code == 404
    with db.transaction(Scope.system("test read")) as session:
        assert session.scalars(select(ConsentRecord)).all() == []
        counts = {r.reason: r.count for r in session.scalars(select(PublicReject))}
    assert counts == {"invalid-input": 1, "conflict": 1, "bad-shape": 2, "unknown-org": 1}


def test_the_product_asks_over_http_and_learns_of_a_withdrawal(
        app: Any, db: Database, personas: Personas, api_token: Any) -> None:
    """The SDK's consent client against a real server: ask, record, withdraw in one call, and
    the change feed that tells the product of the withdrawal."""
    setup_org(db, personas.tenant_a)
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    since = datetime.now(UTC) - timedelta(seconds=5)
    with serve(app) as url, ConsentClient(url, token) as sdk:
        assert sdk.may_use(SUBJECT, "statistics") is False
        recorded = sdk.record(SUBJECT, {"statistics": "granted", "newsletter": "granted"})
        assert {r["choice"] for r in recorded} == {"granted"}
        assert sdk.may_use(SUBJECT, "statistics") is True
        assert sdk.may_use(SUBJECT, "unknown") is False
        assert sdk.decisions(SUBJECT)["newsletter"]["allowed"] is True
        assert {r["purpose"] for r in sdk.withdraw(SUBJECT)} == {"statistics", "newsletter"}
        assert sdk.may_use(SUBJECT, "statistics") is False
        assert sdk.may_use(SUBJECT, "newsletter") is False
        feed = sdk.changes(since)
        assert [r["choice"] for r in feed] == ["granted", "granted", "withdrawn", "withdrawn"]
        assert {r["purpose"] for r in feed[2:]} == {"newsletter", "statistics"}
        assert len(sdk.history(SUBJECT)) == 4
        with pytest.raises(ConsentError) as refused:
            sdk.record(SUBJECT, {"x": "granted"})
        assert refused.value.status == 422
        assert sdk.failures == 0
    with TestClient(app, base_url="http://testserver") as raw:
        raw.headers["Authorization"] = f"Bearer {token}"
        assert raw.post(f"/api/v1/consent/{SUBJECT}", json={"choices": {"x": "granted"},
                                                           "extra": 1}).status_code == 422


def test_the_consent_client_says_no_when_vern_cannot_answer_and_refuses_a_bad_token(
        app: Any, db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    with ConsentClient(f"http://127.0.0.1:{free_port()}", "vt_nothing") as offline:
        assert offline.may_use(SUBJECT, "statistics") is False  # nobody listens: strictest answer
        assert offline.failures == 1
    with serve(app) as url, ConsentClient(url, "vt_not-a-token") as wrong:
        with pytest.raises(ConsentError) as refused:
            wrong.may_use(SUBJECT, "statistics")
        assert refused.value.status == 401


def test_another_tenant_gets_its_own_empty_answer(
        app: Any, db: Database, personas: Personas, api_token: Any) -> None:
    setup_org(db, personas.tenant_a)
    setup_org(db, personas.tenant_b)
    with _visitor(app) as c:
        _choose(c, {"statistics": True, "marketing": True}, "banner-accept")
    token_b = api_token(personas.tenant_b, Role.TENANT_ADMIN)
    with TestClient(app, base_url="http://testserver") as raw:
        raw.headers["Authorization"] = f"Bearer {token_b}"
        answer = raw.get(f"/api/v1/consent/{SUBJECT}").json()
        assert answer["purposes"]["statistics"]["allowed"] is False
        assert raw.get(f"/api/v1/consent/{SUBJECT}/history").json()["records"] == []


def test_the_cookie_declaration_lists_every_cookie(app: Any, db: Database, personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    with _visitor(app) as c:
        nb = c.get("/c/fjellheim/cookies?lang=nb")
        en = c.get("/c/fjellheim/cookies?lang=en")
        notice = c.get("/c/fjellheim/notice/privacy?lang=en")
    assert nb.status_code == 200 and "_track" in nb.text and "Sporing AS" in nb.text
    assert 'lang="en"' in en.text and "Statistics" in en.text
    assert "How we process personal data." in notice.text


def _issue(alice: TestClient, subject: str) -> Any:
    res = alice.post("/api/v1/consent/newsletter/issues", json={"subject": subject, "body": "Hei!"})
    assert res.status_code == 201, res.text
    return res.json()["recipients"]


def test_newsletter_double_opt_in_and_one_click_opt_out_are_recorded(
        app: Any, db: Database, personas: Personas, login: Any) -> None:
    setup_org(db, personas.tenant_a)
    mailer = MemoryMailer()
    install_mailer(mailer)
    with _visitor(app) as c:
        form = c.get("/c/fjellheim/newsletter?lang=nb")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        res = c.post("/c/fjellheim/newsletter", data={"email": "kari.nordmann@example.com",
                                                      "csrf_token": csrf.group(1), "lang": "nb"})
        assert res.status_code == 200
        mail = mailer.last_to("kari.nordmann@example.com")
        assert mail is not None
        link = re.search(r"/c/fjellheim/newsletter/confirm\?t=([\w-]+)", mail.body)
        assert link is not None
        with db.transaction(Scope.tenant(personas.tenant_a)) as session:
            assert session.scalars(select(ConsentRecord)).all() == []  # nothing before confirming
        alice = login(personas.alice)
        assert _issue(alice, "Ikke ennå") == 0  # not confirmed: no mail
        assert c.get(f"/c/fjellheim/newsletter/confirm?t={link.group(1)}").status_code == 200
        assert c.post("/c/fjellheim/newsletter/confirm", data={"t": link.group(1)}).status_code == 200
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        rows = session.scalars(select(ConsentRecord)).all()
        assert [(r.purpose_key, r.choice, r.method, r.subject_kind) for r in rows] == [
            ("newsletter", "granted", "double-opt-in", "verified")]
        assert "kari" not in rows[0].subject
    links = []
    for title in ("Nytt fra oss", "Mer nytt"):
        assert _issue(alice, title) == 1
        issue = mailer.last_to("kari.nordmann@example.com")
        assert issue is not None and issue.subject == title
        out = re.search(r"/c/fjellheim/newsletter/unsubscribe\?t=([\w-]+)", issue.body)
        assert out is not None
        links.append(out.group(1))
    assert links[0] == links[1]  # the link in an older mail keeps working
    with _visitor(app) as c:
        assert c.post("/c/fjellheim/newsletter/unsubscribe", data={"t": links[0]}).status_code == 200
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        last = session.scalars(select(ConsentRecord).order_by(ConsentRecord.recorded_at.desc())).first()
    assert last is not None and (last.choice, last.method) == ("withdrawn", "opt-out-link")
    assert _issue(alice, "Etter avmelding") == 0


def test_a_customer_is_recorded_on_legitimate_interest_and_their_objection_sticks(
        app: Any, db: Database, personas: Personas, login: Any) -> None:
    setup_org(db, personas.tenant_a)
    mailer = MemoryMailer()
    install_mailer(mailer)
    alice = login(personas.alice)
    res = alice.post("/api/v1/consent/newsletter/customers", json={"email": "per@example.com"})
    assert res.status_code == 201, res.text
    subject, optout = res.json()["subject"], res.json()["unsubscribe_url"]
    decision = alice.get(f"/api/v1/consent/{subject}?purpose=newsletter").json()
    assert (decision["allowed"], decision["legal_basis"], decision["choice"]) == (
        True, "f", "legitimate-interest")
    assert _issue(alice, "Kundeavis") == 1
    mail = mailer.last_to("per@example.com")
    assert mail is not None and optout.removeprefix("http://testserver") in mail.body
    with _visitor(app) as c:  # the one-click opt-out from the mail: an objection (Art. 21)
        token = optout.rsplit("t=", 1)[1]
        assert c.post("/c/fjellheim/newsletter/unsubscribe", data={"t": token}).status_code == 200
    latest = alice.get(f"/api/v1/consent/{subject}?purpose=newsletter").json()
    assert (latest["allowed"], latest["choice"], latest["method"]) == (False, "objected",
                                                                       "opt-out-link")
    again = alice.post("/api/v1/consent/newsletter/customers", json={"email": "per@example.com"})
    assert again.status_code == 201 and again.json()["unsubscribe_url"] is None
    assert alice.get(f"/api/v1/consent/{subject}?purpose=newsletter").json()["allowed"] is False
    assert _issue(alice, "Kundeavis 2") == 0


def test_a_retired_purpose_is_never_allowed_again_and_its_records_stay(
        app: Any, db: Database, personas: Personas, login: Any) -> None:
    setup_org(db, personas.tenant_a)
    alice = login(personas.alice)
    assert alice.post(f"/api/v1/consent/{SUBJECT}",
                      json={"choices": {"marketing": "granted"}}).status_code == 201
    assert alice.get(f"/api/v1/consent/{SUBJECT}?purpose=marketing").json()["allowed"] is True
    res = alice.post("/api/v1/consent/purposes/marketing/retire", json={})
    assert res.status_code == 200 and res.json()["retired"] is True
    assert alice.get(f"/api/v1/consent/{SUBJECT}?purpose=marketing").status_code == 404
    assert "marketing" not in alice.get(f"/api/v1/consent/{SUBJECT}").json()["purposes"]
    history = alice.get(f"/api/v1/consent/{SUBJECT}/history").json()["records"]
    assert [r["purpose"] for r in history] == ["marketing"]
    with _visitor(app) as c:
        keys = [p["key"] for p in c.get("/c/fjellheim/config").json()["purposes"]]
    assert "marketing" not in keys
    assert alice.post("/api/v1/consent/purposes/nothing/retire", json={}).status_code == 404


def test_the_console_shows_purposes_and_a_subjects_history(
        app: Any, db: Database, personas: Personas, login: Any) -> None:
    setup_org(db, personas.tenant_a)
    with _visitor(app) as c:
        _choose(c, {"statistics": True, "marketing": False}, "banner-save")
    alice = login(personas.alice)
    page = alice.get("/console/consent")
    assert page.status_code == 200 and "data-org=&#34;fjellheim&#34;" not in page.text
    assert "vern-consent.js" in page.text and "statistics" in page.text
    res = alice.post("/console/consent/purposes", data={
        "key": "video", "kind": "marketing", "legal_basis": "a", "name_nb": "Video",
        "name_en": "Video", "cookies": "yt_* | YouTube | 180 dager",
        "data_categories": "user.behaviour, user.device", "scripts": "https://video.example.com/e.js",
        "csrf_token": alice.headers["X-CSRF-Token"]}, follow_redirects=False)
    assert res.status_code == 303
    declaration = alice.get("/c/fjellheim/cookies?lang=en").text
    assert "user.behaviour, user.device" in declaration and "https://video.example.com/e.js" in declaration
    retire = alice.post("/console/consent/purposes/video/retire",
                        data={"csrf_token": alice.headers["X-CSRF-Token"]}, follow_redirects=False)
    assert retire.status_code == 303
    assert "https://video.example.com/e.js" not in alice.get("/c/fjellheim/cookies").text
    subject = alice.get(f"/console/consent/subject?subject={SUBJECT}")
    assert "195.159.103.0" in subject.text and "banner-save" in subject.text
    bob = login(personas.bob)
    assert bob.get("/console/consent", follow_redirects=False).status_code == 403


def test_the_cookie_declaration_gives_durations_in_the_readers_language(
        app: Any, db: Database, personas: Personas) -> None:
    """Durations entered in bokmål ("90 dager") are kept as "90 days" and shown in each language."""
    setup_org(db, personas.tenant_a)
    with _visitor(app) as c:
        en = c.get("/c/fjellheim/cookies?lang=en").text
        nb = c.get("/c/fjellheim/cookies?lang=nb").text
    assert "90 days" in en and "182 days" in en and "1 day" in en and "14 months" in en
    assert "dager" not in en and "måneder" not in en
    assert "90 dager" in nb and "182 dager" in nb and "1 dag<" in nb and "14 måneder" in nb
