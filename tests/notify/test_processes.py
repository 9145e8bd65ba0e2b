"""Every process sends through the configured transport: the CLI and `vern worker` (real
processes) as well as the web app; and the demo's mail page lets a person finish the portal's
e-mail code by hand."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import Personas, make_settings, sign_in
from vern.core.config import DEV_MASTER_KEY, DEV_SECRET_KEY, Settings
from vern.core.crypto import KeyRing, install_keyring, keyring
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.datamap.service import publish_map
from vern.notify import service as notify
from vern.notify import sink as mail_sink
from vern.notify.models import OutboxMessage
from vern.notify.sink import MailSink
from vern.rights import demo

VERN = [sys.executable, "-m", "vern.app.cli"]
SENDER = "personvern@solstrand.example.com"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [*VERN, *args], env=env, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with MailSink() as running:
        yield running


def test_the_cli_and_the_worker_send_through_the_configured_smtp_server(
    tmp_path: Path, sink: MailSink
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({
        "VERN_ENV": "dev", "VERN_DATABASE_URL": f"sqlite:///{tmp_path / 'vern.db'}",
        "VERN_DATA_DIR": str(tmp_path / "data"), "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"),
        "VERN_SMTP_URL": sink.url, "VERN_MAIL_FROM": SENDER, "COLUMNS": "200",
    })
    assert run(["init"], env).returncode == 0
    assert run(["tenant", "create", "--name", "Fjellheim barnehage", "--slug", "fjellheim"],
               env).returncode == 0
    filed = run(["rights", "file", "--org", "fjellheim", "--kind", "access",
                 "--email", "kari.nordmann@example.com"], env)
    assert filed.returncode == 0, filed.stderr
    [code_mail] = sink.messages()
    assert code_mail.to == ["kari.nordmann@example.com"] and code_mail.sender == SENDER
    assert re.search(r"\b\d{6}\b", code_mail.body)

    # A message queued by another process is sent by `vern worker`, and marked sent only then.
    settings = Settings(env="dev", data_dir=tmp_path / "data", database_url=env["VERN_DATABASE_URL"])
    database = Database(settings.database_url)
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    try:
        with database.transaction(Scope.system("test queue")) as session:
            key_id = keyring().create(session)
            notify.queue(session, key_id=key_id, to="ola.nordmann@example.com",
                         subject="Påminnelse", body="Hei Ola.", kind="test.notice")
        worker = run(["worker", "--once"], env)
        assert worker.returncode == 0, worker.stderr
        assert [m.subject for m in sink.messages()] == ["Påminnelse", code_mail.subject]
        with database.transaction(Scope.system("test read")) as session:
            rows = session.scalars(select(OutboxMessage)).all()
            assert all(r.sent_at is not None and r.last_error is None for r in rows)
    finally:
        database.dispose()


@pytest.fixture
def laerbar(
    db: Database, personas: Personas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    url = f"sqlite:///{tmp_path / 'laerbar.db'}"
    demo.create_product(engine_for(url))
    people = demo.fill(engine_for(url), [personas.tenant_a, personas.tenant_b], people_per_tenant=3)
    monkeypatch.setenv("LAERBAR_DATABASE_URL", url)
    with db.transaction(Scope.system("test map")) as session:
        publish_map(session, demo.map_text(), source="laerbar.yaml")
    yield people
    forget(url)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_the_demo_mail_page_lets_a_person_finish_the_portal_code_by_hand(
    db: Database, personas: Personas, laerbar: list[dict[str, Any]], tmp_path: Path,
    sink: MailSink,
) -> None:
    from vern.app.web import create_app

    settings = make_settings(db.url, tmp_path, env="demo", smtp_url=sink.url,
                             secret_key=DEV_SECRET_KEY, master_key=DEV_MASTER_KEY)
    previous = notify.mailer()
    app = create_app(settings, db)
    mail_sink.install(sink)
    person = laerbar[0]
    try:
        with TestClient(app, base_url="http://testserver") as visitor, \
                TestClient(app, base_url="http://testserver") as staff:
            form = visitor.get("/p/fjellheim/rights/new?kind=access")
            sent = visitor.post("/p/fjellheim/rights/new", follow_redirects=False,
                                data={"csrf_token": _csrf(form.text), "kind": "access",
                                      "email": person["email"]})
            assert sent.status_code == 303
            verify_url = sent.headers["location"]

            sign_in(staff, personas.dave)
            page = staff.get("/console/mail", headers={"Accept-Language": "en"})
            assert page.status_code == 200
            assert person["email"] in page.text
            found = re.search(r"Your code: (\d{6})|Koden din: (\d{6})", page.text)
            assert found is not None, page.text
            code = found.group(1) or found.group(2)

            check = visitor.get(verify_url)
            done = visitor.post(verify_url, data={"csrf_token": _csrf(check.text), "code": code},
                                follow_redirects=False)
            assert done.status_code == 303
            status = visitor.get(done.headers["location"], headers={"Accept-Language": "en"})
            assert "done" in status.text
            # The answer with its download link arrives on the same page.
            later = staff.get("/console/mail")
            assert "/p/fjellheim/download/" in later.text
            # Customers' staff do not see the vendor's demo mail.
            with TestClient(app, base_url="http://testserver") as customer:
                sign_in(customer, personas.alice)
                assert customer.get("/console/mail").status_code == 403
    finally:
        mail_sink.install(None)
        notify.install_mailer(previous)


def test_outside_the_demo_the_mail_page_shows_nothing(
    app: Any, personas: Personas, sink: MailSink
) -> None:
    mail_sink.install(sink)
    try:
        with TestClient(app, base_url="http://testserver") as staff:
            sign_in(staff, personas.dave)
            page = staff.get("/console/mail", headers={"Accept-Language": "en"})
        assert page.status_code == 200
        assert "only shows mail in the demo" in page.text
    finally:
        mail_sink.install(None)


def test_the_port_moves_the_statistics_tag_without_a_base_url(
    db: Database, personas: Personas, tmp_path: Path
) -> None:
    """With only the port changed, the snippet a customer copies points at that port."""
    from tests.stats.helpers import make_site
    from vern.app.web import create_app

    settings = make_settings(db.url, tmp_path, port=8123)
    make_site(db, personas.tenant_a)
    with TestClient(create_app(settings, db), base_url="http://testserver") as alice:
        sign_in(alice, personas.alice)
        page = alice.get("/console/stats")
    assert page.status_code == 200
    assert "http://127.0.0.1:8123/s/vern-stats.js" in page.text
    assert ":8000" not in page.text
