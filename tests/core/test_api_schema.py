"""The API description is true: Schemathesis generates requests for every operation from
``/api/openapi.json`` - anonymous, with an API token and with a browser session - and every answer
must be declared there (status, media type, headers, body schema) and never a server error.

The app runs once for the module, on SQLite, with the usual personas; the generated requests
change its state as a real client's would. An operation whose access rule refuses the caller
whatever it sends (the role matrix's rule) gets two cases, enough to check that the refusal is
declared; every other operation gets ten.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis import checks as st_checks
from starlette.testclient import TestClient

from tests.conftest import (
    create_personas,
    make_api_token,
    make_settings,
    session_cookie_for,
    sqlite_database,
)
from tests.matrix.test_matrix import Who, _access, _expected, _who
from vern.accounts.deps import session_cookie_name
from vern.accounts.roles import Role
from vern.app.web import api_routes
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import import_models

CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


class _Api:
    def __init__(self, app: Any, headers: dict[str, dict[str, str]],
                 cookies: dict[str, dict[str, str]], whos: dict[str, Who]) -> None:
        self.app = app
        self.headers = headers
        self.cookies = cookies
        self.whos = whos  # the role matrix's persona behind each caller
        self.routes = {(method, route.path): route for route in api_routes(app)
                       for method in route.methods}

    def refused(self, who: str, method: str, path: str) -> bool:
        """The caller's access rule refuses ``who`` whatever the input (401 or 403)."""
        route = self.routes.get((method.upper(), path))
        access = _access(route) if route is not None else None
        return access is not None and _expected(access, self.whos[who], set(), False) in (
            "unauth", "forbidden")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Api]:
    from vern.app.web import create_app

    tmp: Path = tmp_path_factory.mktemp("schema")
    import_models()
    database = sqlite_database(tmp / "vern.db")
    vern_settings = make_settings(database.url, tmp)
    install_keyring(KeyRing(database.engine, vern_settings.master_key_bytes))
    people = create_personas(database, vern_settings)
    app = create_app(vern_settings, database)
    token = make_api_token(database, people.tenant_a, Role.TENANT_ADMIN)
    cookie, csrf = session_cookie_for(database, people.dave)
    by_name = {who.name: who for who in _who(people)}
    with TestClient(app):  # runs the lifespan (background writers)
        yield _Api(
            app,
            headers={"anonymous": {}, "token": {"Authorization": f"Bearer {token}"},
                     "session": {"X-CSRF-Token": csrf}},
            cookies={"anonymous": {}, "token": {},
                     "session": {session_cookie_name(vern_settings): cookie}},
            whos={"anonymous": by_name["anonymous"], "token": by_name["token_a"],
                  "session": by_name["dave"]},
        )
    database.dispose()


@pytest.fixture(scope="module")
def api_schema(api: _Api) -> Any:
    return schemathesis.openapi.from_asgi("/api/openapi.json", api.app)


EXAMPLES = 10  # generated cases per operation the caller may use
EXAMPLES_REFUSED = 2  # per operation its access rule refuses the caller: the answer is the refusal


def _run_everywhere(api_schema: Any, api: _Api, who: str) -> None:
    """Every operation, a few generated cases each; all failures are collected and reported."""
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE))

        examples = EXAMPLES_REFUSED if api.refused(who, operation.method, operation.path) \
            else EXAMPLES

        @given(case=cases)
        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=api.headers[who], cookies=api.cookies[who],
                                   checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is reported
            failures.append(f"{operation.method.upper()} {operation.path}: {_describe(exc)}")
    assert operations > 40, "the API description lost its operations"
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("who", ["anonymous", "token", "session"])
def test_every_answer_is_declared(api_schema: Any, api: _Api, who: str) -> None:
    _run_everywhere(api_schema, api, who)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} " + " | ".join(
        line.strip() for line in str(exc).splitlines()[1:6] if line.strip())
