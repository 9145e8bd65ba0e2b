"""A one-time code is never kept in clear: not in any table, log or file.

After a person asks for their data through the portal (which mails them a code), every text and
binary column of every table in Vern's database, every file in the test's directories and every
log line is searched for the code. An occurrence inside a run of hexadecimal characters (a hash
or an id that happens to contain the six digits) does not count; anything else does.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect
from starlette.testclient import TestClient

from tests.conftest import Personas
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.datamap.service import publish_map
from vern.notify import service as notify
from vern.rights import demo


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


def _pattern(code: str) -> tuple[re.Pattern[str], re.Pattern[bytes]]:
    text = rf"(?<![0-9A-Fa-f]){code}|{code}(?![0-9A-Fa-f])"
    return re.compile(text), re.compile(text.encode())


def _found_in(value: object, patterns: tuple[re.Pattern[str], re.Pattern[bytes]]) -> bool:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, str):
        return patterns[0].search(value) is not None
    if isinstance(value, bytes):
        return patterns[1].search(value) is not None
    return False


def _tables_with(database: Database, code: str) -> list[str]:
    patterns = _pattern(code)
    hits = []
    with database.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the schema
                for column, value in row._mapping.items():
                    if _found_in(value, patterns):
                        hits.append(f"{table}.{column}")
    return hits


def _files_with(folders: list[Path], code: str) -> list[str]:
    patterns = _pattern(code)
    hits = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and _found_in(path.read_bytes(), patterns):
                hits.append(str(path))
    return hits


def test_the_portal_code_is_in_no_table_log_or_file(  # noqa: PLR0917 - fixtures
    app: Any, db: Database, laerbar: list[dict[str, Any]], tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    person = laerbar[0]
    memory = notify.MemoryMailer()
    previous = notify.mailer()
    notify.install_mailer(memory)
    try:
        with caplog.at_level(logging.DEBUG), TestClient(app, base_url="http://testserver") as client:
            form = client.get("/p/fjellheim/rights/new?kind=access")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            sent = client.post("/p/fjellheim/rights/new", follow_redirects=False,
                               data={"csrf_token": token.group(1), "kind": "access",
                                     "email": person["email"]})
            assert sent.status_code == 303
    finally:
        notify.install_mailer(previous)
    mail = memory.last_to(person["email"])
    assert mail is not None and mail.kind == "rights.code"
    found = re.search(r"\b(\d{6})\b", mail.body)
    assert found is not None
    code = found.group(1)
    assert code in mail.subject  # the person still sees it where they expect it

    assert _tables_with(db, code) == []
    assert _files_with([tmp_path, Path(os.environ["VERN_DATA_DIR"])], code) == []
    assert code not in caplog.text
    out, err = capfd.readouterr()
    assert code not in out and code not in err
