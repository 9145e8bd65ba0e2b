"""``vern rights`` does what the console does: enter a code, download the answer, page through
the list, list and confirm manual tasks."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import Personas
from tests.rights.conftest import Product, file_request, request_row
from vern.accounts.models import Organisation
from vern.core.db import Database, Scope
from vern.datamap.loader import load_map
from vern.notify import service as notify
from vern.rights import cli, demo, runtime, service

runner = CliRunner()


@pytest.fixture(autouse=True)
def _cli_database(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "vern_database", lambda: sqlite_db)


def _slug(database: Database, org_id: str) -> str:
    with database.transaction(Scope.system("test")) as session:
        org = session.get(Organisation, org_id)
        assert org is not None
        return org.slug


def test_a_code_is_entered_from_the_command_line(
    sqlite_db: Database, world: Personas, mailer: notify.MemoryMailer
) -> None:
    email = "kari.nordmann.7@example.com"
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        req = service.create_request(
            session, org_id=world.tenant_a, kind="access", identities={"email": email}, channel="staff"
        )
        service.send_code(session, req.id)
        request_id = req.id
    notify.deliver_pending(sqlite_db)
    mail = mailer.last_to(email)
    assert mail is not None
    found = re.search(r"\b(\d{6})\b", mail.body)
    assert found is not None
    code = found.group(1)

    wrong = runner.invoke(cli.app, ["verify", request_id, f"{(int(code) + 1) % 1_000_000:06d}"])
    assert wrong.exit_code == 1 and "code:" in wrong.output
    assert request_row(sqlite_db, request_id).status == "unverified"

    ok = runner.invoke(cli.app, ["verify", request_id, code])
    assert ok.exit_code == 0, ok.output
    assert "queued" in ok.output
    assert request_row(sqlite_db, request_id).verification_method == "email_code"


def test_the_answer_is_downloaded_to_a_file(
    sqlite_db: Database, world: Personas, sqlite_product: Product, tmp_path: Path
) -> None:
    person = sqlite_product.person(world.tenant_a, 1)
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": person["email"]})
    status = service.run(sqlite_db, request_id, data_map=sqlite_product.data_map, urls=sqlite_product.urls)
    assert status == "done"
    target = tmp_path / "svar.zip"

    result = runner.invoke(cli.app, ["package", request_id, "-o", str(target)])

    assert result.exit_code == 0, result.output
    assert "data.json" in zipfile.ZipFile(io.BytesIO(target.read_bytes())).namelist()
    again = runner.invoke(cli.app, ["package", request_id, "-o", str(target)])
    assert again.exit_code == 2 and "--output" in again.output  # never overwritten silently
    missing = runner.invoke(cli.app, ["package", "no-such-request", "-o", str(tmp_path / "x.zip")])
    assert missing.exit_code == 1 and not (tmp_path / "x.zip").exists()


def test_the_list_pages_beyond_the_first_page(sqlite_db: Database, world: Personas) -> None:
    ids = [
        file_request(sqlite_db, world.tenant_a, "access", {"email": f"ola.nordmann.{i}@example.com"})
        for i in range(5)
    ]
    slug = _slug(sqlite_db, world.tenant_a)

    seen: list[str] = []
    offset = 0
    for _ in range(10):  # bounded
        result = runner.invoke(cli.app, ["list", "--org", slug, "--status", "all", "--limit", "2",
                                         "--offset", str(offset)])
        assert result.exit_code == 0, result.output
        seen += [i for i in ids if i in result.output]
        more = re.search(r"more: --offset (\d+)", result.output)
        if not more:
            break
        offset = int(more.group(1))
    assert sorted(seen) == sorted(ids)  # every request once, on exactly one page
    bad = runner.invoke(cli.app, ["list", "--org", slug, "--limit", "0"])
    assert bad.exit_code == 2 and "--limit" in bad.output


def test_manual_tasks_are_listed_and_confirmed_from_the_command_line(
    sqlite_db: Database, world: Personas, sqlite_product: Product
) -> None:
    doc = yaml.safe_load(demo.map_text())
    owner = "brukerstotte@fjellheim.example.com"
    doc["systems"]["helpdesk"] = {"title": "Brukerstøtte", "manual": {"owner": owner}}
    data_map = load_map(yaml.safe_dump(doc, allow_unicode=True))
    person = sqlite_product.person(world.tenant_a, 2)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})
    assert service.run(sqlite_db, request_id, data_map=data_map, urls=sqlite_product.urls) == "awaiting_tasks"
    slug = _slug(sqlite_db, world.tenant_a)

    listed = runner.invoke(cli.app, ["tasks", "--org", slug])
    assert listed.exit_code == 0, listed.output
    task_id = re.search(r"([0-9a-f-]{36})\W+" + re.escape(request_id), listed.output)
    assert task_id is not None, listed.output

    empty = runner.invoke(cli.app, ["confirm", task_id.group(1), "--note", " "])
    assert empty.exit_code == 1 and "note" in empty.output
    done = runner.invoke(cli.app, ["confirm", task_id.group(1), "--note", "Sak 4711 slettet"])
    assert done.exit_code == 0, done.output
    assert request_row(sqlite_db, request_id).status == "queued"
    assert request_id not in runner.invoke(cli.app, ["tasks", "--org", slug]).output
