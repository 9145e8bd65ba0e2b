"""Systems outside SQL: HTTP connectors against a real endpoint on loopback, manual tasks with a
named owner, and notices to recipients (Art. 19)."""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, text

from tests.conftest import Personas
from tests.rights.conftest import Product, file_request, request_row
from tests.rights.external_server import Endpoint, running_endpoint
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import InvalidInput
from vern.datamap.connect import engine_for
from vern.datamap.loader import MapError, load_map
from vern.datamap.model import DataMap
from vern.notify import service as notify
from vern.rights import demo, external, http_connector, service
from vern.rights.models import ExternalStep

SECRET = b"fjellheim-crm-hemmelighet-0123456789"
OWNER = "kundeservice@fjellheim.example.com"
NEWSLETTER = "personvern@nyhetsbrev.example.com"


def _map(extra: dict[str, Any]) -> DataMap:
    doc = yaml.safe_load(demo.map_text())
    doc["systems"].update(extra)
    return load_map(yaml.safe_dump(doc, allow_unicode=True))


def _crm(tmp_path: Path, **more: Any) -> dict[str, Any]:
    secret_file = tmp_path / "crm-secret"
    secret_file.write_bytes(SECRET)
    return {
        "crm": {
            "title": "Lime CRM",
            "recipients": [{"name": "Lime Technologies AB", "system": "crm"}],
            "http": {"url_env": "VERN_TEST_CRM_URL", "secret_file": str(secret_file), **more},
        }
    }


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    with running_endpoint(SECRET) as ep:
        monkeypatch.setenv("VERN_TEST_CRM_URL", ep.url)
        # no waiting between attempts in tests (the backoff itself is tested below)
        quick = functools.partial(http_connector.call, sleep=lambda _s: None)
        monkeypatch.setattr(http_connector, "call", quick)
        yield ep


def _steps(database: Database, request_id: str) -> list[ExternalStep]:
    with database.transaction(Scope.system("test")) as session:
        rows = list(session.scalars(select(ExternalStep).where(ExternalStep.request_id == request_id)))
        for r in rows:
            session.expunge(r)
        return rows


def _user_email(product: Product, user_id: Any) -> str:
    with engine_for(product.url).connect() as conn:
        return str(conn.execute(text("SELECT email FROM users WHERE id = :i"), {"i": user_id}).scalar_one())


def test_an_erasure_calls_the_crm_signed_with_an_idempotency_key_and_then_the_databases(
    sqlite_db: Database, world: Personas, sqlite_product: Product, endpoint: Endpoint, tmp_path: Path
) -> None:
    person = sqlite_product.person(world.tenant_a, 1)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})

    status = service.run(sqlite_db, request_id, data_map=_map(_crm(tmp_path)), urls=sqlite_product.urls)

    assert status == "done"
    assert endpoint.refused == []
    [call] = endpoint.calls
    assert call["path"] == "/rights/erasure"
    assert call["key"] == http_connector.idempotency_key(request_id, "crm", "erasure")
    assert call["payload"]["identities"] == {"email": person["email"]}
    assert call["payload"]["tenant"] == world.tenant_a
    assert endpoint.applied_count == 1
    assert _user_email(sqlite_product, person["id"]).startswith("slettet-")
    [step] = _steps(sqlite_db, request_id)
    assert (step.via, step.status, step.attempts) == ("http", "done", 1)


def test_an_access_answer_from_the_crm_goes_into_the_package(
    sqlite_db: Database, world: Personas, sqlite_product: Product, endpoint: Endpoint, tmp_path: Path
) -> None:
    person = sqlite_product.person(world.tenant_a, 2)
    endpoint.data = {"contacts": [{"email": person["email"], "segment": "Foresatt"}]}
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": person["email"]})

    status = service.run(sqlite_db, request_id, data_map=_map(_crm(tmp_path)), urls=sqlite_product.urls)

    assert status == "done"
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        body, _name = service.download_for_staff(session, request_id, actor_user_id=None)
    archive = zipfile.ZipFile(io.BytesIO(body))
    answer = json.loads(archive.read("external/crm.json"))
    assert answer["contacts"] == [{"email": person["email"], "segment": "Foresatt"}]
    data = json.loads(archive.read("data.json"))
    assert data["systems"]["crm"]["answer"]["contacts"][0]["segment"] == "Foresatt"
    assert data["systems"]["crm"]["recipients"] == ["Lime Technologies AB"]
    html = archive.read("summary.html").decode()
    assert "Foresatt" in html
    assert "Alle som får utlevert opplysningene dine" in html and "Lime Technologies AB" in html
    assert "Lime Technologies AB" in data["recipients"]
    assert [r["email"] for r in data["systems"]["laerbar"]["databases"]["main"]["users"]["rows"]] == [
        person["email"]
    ]


def test_a_failing_endpoint_leaves_the_request_partial_before_any_database_write_then_a_retry_finishes(
    sqlite_db: Database, world: Personas, sqlite_product: Product, endpoint: Endpoint, tmp_path: Path
) -> None:
    person = sqlite_product.person(world.tenant_a, 3)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})
    endpoint.fail_next = [503, 503, 503]
    data_map = _map(_crm(tmp_path))

    status = service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls)

    assert status == "partial"
    assert len(endpoint.calls) == 3  # tried three times, then given up for this run
    assert "crm (http): HTTP 503" in (request_row(sqlite_db, request_id).error or "")
    assert _user_email(sqlite_product, person["id"]) == person["email"]  # nothing written yet
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        service.retry(session, request_id, actor_user_id=None)

    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "done"
    assert endpoint.applied_count == 1
    assert _user_email(sqlite_product, person["id"]).startswith("slettet-")


def test_a_refused_signature_is_not_retried(
    sqlite_db: Database, world: Personas, sqlite_product: Product, endpoint: Endpoint,
    tmp_path: Path,
) -> None:
    (tmp_path / "other-secret").write_bytes(b"not the endpoint's secret")
    crm = _crm(tmp_path)
    crm["crm"]["http"]["secret_file"] = str(tmp_path / "other-secret")
    person = sqlite_product.person(world.tenant_a, 0)
    request_id = file_request(sqlite_db, world.tenant_a, "restriction", {"email": person["email"]})

    status = service.run(sqlite_db, request_id, data_map=_map(crm), urls=sqlite_product.urls)

    assert status == "partial"
    assert endpoint.refused == ["signature"]  # once: a 401 is not tried again
    [step] = _steps(sqlite_db, request_id)
    assert step.status == "failed" and step.error == "HTTP 401 from restriction"


def test_a_crash_after_the_call_is_resumed_and_not_applied_twice(  # noqa: PLR0917 - fixtures
    sqlite_db: Database, world: Personas, sqlite_product: Product, endpoint: Endpoint,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    person = sqlite_product.person(world.tenant_a, 4)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})
    data_map = _map(_crm(tmp_path))
    real = external._record_call

    def crash(*_args: Any) -> None:
        raise RuntimeError("the process died after the endpoint answered")

    monkeypatch.setattr(external, "_record_call", crash)
    with pytest.raises(RuntimeError):
        service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls)
    assert request_row(sqlite_db, request_id).status == "queued"
    [step] = _steps(sqlite_db, request_id)
    assert step.status == "pending"  # the step was stored before the call
    monkeypatch.setattr(external, "_record_call", real)

    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "done"

    assert [c["key"] for c in endpoint.calls] == [step.idempotency_key] * 2
    assert endpoint.applied_count == 1  # the endpoint recognised the repeat
    assert _user_email(sqlite_product, person["id"]).startswith("slettet-")


def test_the_signature_covers_method_path_timestamp_and_body_within_the_window() -> None:
    sig = http_connector.signature(SECRET, "POST", "/rights/erasure", "1700000000", b'{"a":1}')
    ok = functools.partial(http_connector.verify_signature, SECRET, "POST", "/rights/erasure")
    assert ok("1700000000", b'{"a":1}', sig, now=1700000100)
    assert not ok("1700000000", b'{"a":2}', sig, now=1700000100)  # body changed
    assert not ok("1700000000", b'{"a":1}', sig, now=1700000000 + 301)  # replayed too late
    assert not ok("1700000001", b'{"a":1}', sig, now=1700000100)  # timestamp changed
    assert not http_connector.verify_signature(SECRET, "POST", "/rights/access", "1700000000", b'{"a":1}',
                                               sig, now=1700000100)


def test_retries_wait_longer_each_time(endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.fail_next = [503, 429]
    waits: list[float] = []
    connector = _map(_crm(tmp_path)).systems["crm"].http
    assert connector is not None
    original = http_connector.call.func  # type: ignore[attr-defined] - the fixture's partial
    answer = original(connector, "erasure", {"x": 1}, "k" * 64, attempts=3, backoff=0.5, sleep=waits.append)
    assert answer == {"status": "done"}
    assert waits == [0.5, 1.0]


def test_a_manual_task_holds_the_request_until_its_owner_confirms_and_is_reminded(
    sqlite_db: Database, world: Personas, sqlite_product: Product, mailer: notify.MemoryMailer
) -> None:
    data_map = _map({"helpdesk": {"title": "Brukerstøtte", "manual": {
        "owner": OWNER, "instructions": "Slett sakene i brukerstøtteverktøyet."}}})
    person = sqlite_product.person(world.tenant_a, 5)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})

    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "awaiting_tasks"
    assert _user_email(sqlite_product, person["id"]) == person["email"]
    notify.deliver_pending(sqlite_db)
    mail = mailer.last_to(OWNER)
    assert mail is not None and "Slett sakene" in mail.body and request_id in mail.body
    # running again changes nothing while the task is open
    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "awaiting_tasks"
    [step] = _steps(sqlite_db, request_id)

    # the deadline nears: the owner is reminded once
    near = request_row(sqlite_db, request_id).deadline - timedelta(days=2)
    assert external.remind_tasks(sqlite_db, data_map, now=near) == 1
    assert external.remind_tasks(sqlite_db, data_map, now=near) == 0

    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session, pytest.raises(InvalidInput) as bad:
        external.confirm_task(session, step.id, note="  ", actor_user_id=None)
    assert bad.value.errors[0].field == "note"
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        external.confirm_task(session, step.id, note="Sak 4711 slettet", actor_user_id=None)
    assert request_row(sqlite_db, request_id).status == "queued"

    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "done"
    assert _user_email(sqlite_product, person["id"]).startswith("slettet-")


def test_recipients_are_told_of_an_erasure_once(
    sqlite_db: Database, world: Personas, sqlite_product: Product, mailer: notify.MemoryMailer
) -> None:
    newsletter = {
        "title": "Nyhetsbrev",
        "manual": {"owner": OWNER, "operations": ["access"]},
        "recipients": [{"name": "Nyhetsbrev AS", "email": NEWSLETTER}, "Revisor (listed only)"],
    }
    data_map = _map({"newsletter": newsletter})
    person = sqlite_product.person(world.tenant_a, 0)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})

    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "done"
    assert external.send_notices(sqlite_db, data_map) == 0  # already sent with the run
    notify.deliver_pending(sqlite_db)
    mail = mailer.last_to(NEWSLETTER)
    assert mail is not None and person["email"] in mail.body and "art. 19" in mail.body
    names = data_map.recipient_names()
    assert {"Nyhetsbrev AS", "Revisor (listed only)"} <= set(names)
    assert "Driftsleverandør: Nordlys Drift AS (Norge), databehandler" in names


def test_the_map_format_for_systems_outside_sql_is_checked() -> None:
    with pytest.raises(MapError) as bad:
        _map({
            "crm": {"http": {"url": "https://crm.example.com", "secret": "x"}},
            "helpdesk": {"manual": {"owner": "not an address", "operations": ["shred"]}},
            "x": {"title": "X", "recipients": [{"name": "Y", "system": "nowhere"}],
                  "manual": {"owner": OWNER}},
        })
    text_ = str(bad.value)
    for expected in (
        "systems.crm.http.url: URLs never go in the map",
        "systems.crm.http.secret: secrets never go in the map",
        "systems.crm.http: needs url_env or url_file",
        "systems.helpdesk.manual.owner: must be the e-mail address",
        "systems.helpdesk.manual.operations: unknown operation 'shred'",
        "systems.x.recipients[0].system: 'nowhere' is not a system with an http connector",
    ):
        assert expected in text_
    # the old form still loads: recipients as texts, every system with databases
    assert load_map(demo.map_text()).systems["laerbar"].notify == ()


def test_remind_skips_tasks_far_from_their_deadline(
    sqlite_db: Database, world: Personas, sqlite_product: Product
) -> None:
    data_map = _map({"helpdesk": {"manual": {"owner": OWNER}}})
    person = sqlite_product.person(world.tenant_a, 1)
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": person["email"]})
    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "awaiting_tasks"
    assert external.remind_tasks(sqlite_db, data_map, now=utcnow()) == 0


def test_a_request_waiting_for_a_task_the_map_no_longer_has_goes_on(
    sqlite_db: Database, world: Personas, sqlite_product: Product
) -> None:
    with_task = _map({"helpdesk": {"manual": {"owner": OWNER}}})
    person = sqlite_product.person(world.tenant_a, 2)
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": person["email"]})
    status = service.run(sqlite_db, request_id, data_map=with_task, urls=sqlite_product.urls)
    assert status == "awaiting_tasks"
    [step] = _steps(sqlite_db, request_id)
    with sqlite_db.transaction(Scope.system("test")) as session:  # the task is dropped by hand
        session.execute(text("DELETE FROM rights_external_steps WHERE id = :i"), {"i": step.id})
    without = _map({"helpdesk": {"http": {"url_env": "VERN_TEST_NONE", "secret_env": "VERN_TEST_NONE",
                                          "operations": ["erasure"]}}})

    assert service.run(sqlite_db, request_id, data_map=without, urls=sqlite_product.urls) == "done"


def test_a_connector_without_its_secret_leaves_the_request_partial_saying_which(
    sqlite_db: Database, world: Personas, sqlite_product: Product, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERN_TEST_CRM_URL", "http://127.0.0.1:9/rights")
    monkeypatch.delenv("VERN_TEST_CRM_SECRET", raising=False)
    data_map = _map({"crm": {"http": {"url_env": "VERN_TEST_CRM_URL", "secret_env": "VERN_TEST_CRM_SECRET"}}})
    person = sqlite_product.person(world.tenant_a, 3)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})

    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "partial"

    error = request_row(sqlite_db, request_id).error or ""
    assert "crm (http): secret: the environment variable VERN_TEST_CRM_SECRET is not set" in error
    assert _user_email(sqlite_product, person["id"]) == person["email"]


def test_datamap_check_names_a_connector_whose_url_or_secret_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vern.datamap.check import check_connectors

    monkeypatch.setenv("VERN_TEST_CRM_URL", "ftp://crm.example.com")
    monkeypatch.delenv("VERN_TEST_NEWS_URL", raising=False)
    data_map = _map({
        "crm": {"http": {"url_env": "VERN_TEST_CRM_URL", "secret_file": str(tmp_path / "missing")}},
        "news": {"http": {"url_env": "VERN_TEST_NEWS_URL", "secret_env": "X"}},
    })
    found = sorted(str(f) for f in check_connectors(data_map))
    assert found == [
        "crm (http): connection: url: must start with https:// or http://",
        "news (http): connection: url: the environment variable VERN_TEST_NEWS_URL is not set",
    ]
    (tmp_path / "missing").write_text("hemmelig")
    monkeypatch.setenv("VERN_TEST_CRM_URL", "https://crm.example.com/rights")
    assert [str(f) for f in check_connectors(data_map)] == [found[1]]


def test_the_worker_reminds_owners_and_sends_notices_a_crash_left_behind(
    sqlite_db: Database, world: Personas, sqlite_product: Product, mailer: notify.MemoryMailer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy import update

    from vern.datamap.service import publish_map
    from vern.rights import jobs
    from vern.rights.models import RightsRequest

    doc = yaml.safe_load(demo.map_text())
    doc["systems"]["helpdesk"] = {"manual": {"owner": OWNER, "operations": ["access"]},
                                  "recipients": [{"name": "Nyhetsbrev AS", "email": NEWSLETTER}]}
    with sqlite_db.transaction(Scope.system("test map")) as session:
        publish_map(session, yaml.safe_dump(doc, allow_unicode=True), source="laerbar.yaml")
    data_map = load_map(yaml.safe_dump(doc, allow_unicode=True))
    first, second = (sqlite_product.person(world.tenant_a, i)["email"] for i in (0, 1))
    waiting = file_request(sqlite_db, world.tenant_a, "access", {"email": first})
    assert service.run(sqlite_db, waiting, data_map=data_map, urls=sqlite_product.urls) == "awaiting_tasks"
    with sqlite_db.transaction(Scope.system("test")) as session:  # the deadline is two days away
        session.execute(update(RightsRequest).where(RightsRequest.id == waiting)
                        .values(due_at=utcnow() + timedelta(days=2)))
    erased = file_request(sqlite_db, world.tenant_a, "erasure", {"email": second})
    monkeypatch.setattr(external, "send_notices", lambda *_a, **_k: 0)  # the process dies after the finish
    assert service.run(sqlite_db, erased, data_map=data_map, urls=sqlite_product.urls) == "done"
    monkeypatch.undo()
    notify.deliver_pending(sqlite_db)  # the task's first mail
    mailer.sent.clear()

    jobs._remind(sqlite_db, None)  # type: ignore[arg-type] - the job does not read the settings

    notify.deliver_pending(sqlite_db)
    to = sorted(m.to for m in mailer.sent if m.kind in ("rights.task", "rights.notice"))
    assert to == sorted([NEWSLETTER, OWNER])
    assert external.send_notices(sqlite_db, data_map) == 0
    assert external.remind_tasks(sqlite_db, data_map) == 0


def test_a_step_whose_system_left_the_map_is_named_not_crashed_on(
    sqlite_db: Database, world: Personas, sqlite_product: Product, endpoint: Endpoint, tmp_path: Path
) -> None:
    endpoint.fail_next = [503, 503, 503]
    person = sqlite_product.person(world.tenant_a, 4)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})
    status = service.run(sqlite_db, request_id, data_map=_map(_crm(tmp_path)), urls=sqlite_product.urls)
    assert status == "partial"
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        service.retry(session, request_id, actor_user_id=None)
    other = _map({"helpdesk": {"manual": {"owner": OWNER, "operations": ["access"]}}})  # no crm any more

    assert service.run(sqlite_db, request_id, data_map=other, urls=sqlite_product.urls) == "partial"
    assert "crm (http): no connector in the map" in (request_row(sqlite_db, request_id).error or "")


def test_two_runners_making_the_same_steps_at_once_leave_the_request_to_the_first(
    sqlite_db: Database, world: Personas, sqlite_product: Product, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import IntegrityError

    data_map = _map({"helpdesk": {"manual": {"owner": OWNER}}})
    person = sqlite_product.person(world.tenant_a, 5)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})
    real = external._ensure_steps

    def raced(session: Any, req: Any, dm: DataMap) -> Any:
        real(session, req, dm)  # the unique key (request, system, operation) refuses the second
        raise IntegrityError("INSERT INTO rights_external_steps", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(external, "_ensure_steps", raced)
    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "queued"
    assert _steps(sqlite_db, request_id) == []  # rolled back: nothing half-written
    monkeypatch.undo()
    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "awaiting_tasks"


def test_a_rectification_sends_the_corrections_and_the_recipient_system_is_told_by_its_call(
    sqlite_db: Database, world: Personas, sqlite_product: Product, endpoint: Endpoint, tmp_path: Path
) -> None:
    person = sqlite_product.person(world.tenant_a, 0)
    request_id = file_request(sqlite_db, world.tenant_a, "rectification", {"email": person["email"]},
                              details={"corrections": {"user.name": "Kari Nordmann-Berg"}})

    status = service.run(sqlite_db, request_id, data_map=_map(_crm(tmp_path)), urls=sqlite_product.urls)

    assert status == "done"
    [call] = endpoint.calls
    assert call["path"] == "/rights/rectification"
    assert call["payload"]["corrections"] == {"user.name": "Kari Nordmann-Berg"}
    assert [s.via for s in _steps(sqlite_db, request_id)] == ["http"]  # no e-mail notice for a system


def test_a_damaged_request_does_not_hold_up_the_ones_behind_it_in_the_worker(
    sqlite_db: Database, world: Personas, sqlite_product: Product, caplog: pytest.LogCaptureFixture
) -> None:
    """With systems outside SQL the worker runs requests one at a time; one whose sealed
    identities can no longer be opened fails alone, the next is carried out."""
    from vern.datamap.service import publish_map

    doc = yaml.safe_load(demo.map_text())
    doc["systems"]["helpdesk"] = {"recipients": [{"name": "Nyhetsbrev AS", "email": NEWSLETTER}]}
    doc["systems"]["helpdesk"]["manual"] = {"owner": OWNER, "operations": ["erasure"]}
    with sqlite_db.transaction(Scope.system("test map")) as session:
        publish_map(session, yaml.safe_dump(doc, allow_unicode=True), source="laerbar.yaml")
    first, second = (sqlite_product.person(world.tenant_a, i)["email"] for i in (0, 1))
    damaged = file_request(sqlite_db, world.tenant_a, "access", {"email": first})
    fine = file_request(sqlite_db, world.tenant_a, "access", {"email": second})
    with sqlite_db.transaction(Scope.system("test")) as session:
        sealed = session.execute(
            text("SELECT identities FROM rights_requests WHERE id = :i"), {"i": damaged}
        ).scalar_one()
        broken = bytes(sealed)[:-4] + b"\x00\x00\x00\x00"  # the tag no longer fits
        session.execute(
            text("UPDATE rights_requests SET identities = :b WHERE id = :i"), {"b": broken, "i": damaged}
        )

    results = dict(service.run_pending(sqlite_db, urls=sqlite_product.urls))

    assert results[damaged].startswith("failed: ")
    assert results[fine] == "done"
    assert request_row(sqlite_db, fine).status == "done"
    assert first not in caplog.text and second not in caplog.text
