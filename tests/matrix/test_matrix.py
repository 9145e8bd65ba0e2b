"""Every route × every persona, with the expected answer derived from the route's declared access
rule and the persona's role - never written by hand, so a new route is covered the moment it
exists.

Personas: anonymous; alice (tenant A admin), bob (tenant A member), carol (tenant B admin),
dave (vendor security officer, in the vendor's own organisation), dave_in_a (the same person
inside tenant A without an access grant from it: refused on all of tenant A's data),
dave_granted_in_a (inside tenant A under a grant its administrator approved: the vendor-in-tenant
permissions), erik (vendor privacy officer), token_a (an API token of tenant A with the tenant
admin role).

Path parameters are filled with objects created in tenant A by the sample factories in
``tests/matrix/samples_*.py``. The rules:

* a route without a declared access rule fails the test;
* anonymous callers get 401 (API) or a redirect to the sign-in page (console);
* a persona without the permission in its current organisation gets 403;
* a persona with the permission but in another organisation gets 404 for tenant A's objects -
  never 403, so that existence does not leak - and a successful answer to such a persona never
  contains the id of one of tenant A's objects;
* everyone else is let through (any status other than 401/403/404, and never a 5xx).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

import tests.matrix
from tests.conftest import Personas, make_api_token, session_cookie_for
from tests.matrix.samples import Sample
from vern.accounts.deps import Access, access_of, session_cookie_name
from vern.accounts.roles import OrgKind, Perm, Role, permissions
from vern.app.web import api_routes
from vern.core.config import Settings
from vern.core.db import Database, Scope, new_id, utcnow

PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
DENIAL_STATUSES = {401, 403, 404}


@dataclass(frozen=True)
class Who:
    name: str
    kind: str  # "anonymous" | "session" | "token"
    org_id: str | None
    perms: frozenset[Perm]
    grant: str | None = None  # "approved" | "expired" | "revoked": vendor staff's grant in org_id


def _samples() -> dict[str, Callable[..., Sample]]:
    found: dict[str, Callable[..., Sample]] = {}
    for mod in pkgutil.iter_modules(tests.matrix.__path__):
        if mod.name.startswith("samples_"):
            module = importlib.import_module(f"tests.matrix.{mod.name}")
            for key, factory in module.SAMPLES.items():
                assert key not in found, f"path parameter {key!r} has two sample factories"
                found[key] = factory
    return found


def _access(route: APIRoute) -> Access | None:
    found: list[Access] = []

    def walk(dependant: Any) -> None:
        for dep in dependant.dependencies:
            marker = access_of(dep.call)
            if marker is not None:
                found.append(marker)
            walk(dep)

    walk(route.dependant)
    if not found:
        return None
    kinds = {a.kind for a in found}
    if "perm" in kinds:
        perms = frozenset().union(*(a.perms for a in found if a.kind == "perm"))
        return Access("perm", perms)
    if "partial" in kinds:
        return Access("partial")
    return Access("public")


def _who(personas: Personas) -> list[Who]:
    def perms_of(role: Role, kind: OrgKind, home: bool, granted: bool = False
                 ) -> frozenset[Perm]:
        return permissions(role, org_kind=kind, home=home, granted=granted)

    a, b, v = personas.tenant_a, personas.tenant_b, personas.vendor
    return [
        Who("anonymous", "anonymous", None, frozenset()),
        Who("alice", "session", a, perms_of(Role.TENANT_ADMIN, OrgKind.TENANT, True)),
        Who("bob", "session", a, perms_of(Role.MEMBER, OrgKind.TENANT, True)),
        Who("carol", "session", b, perms_of(Role.TENANT_ADMIN, OrgKind.TENANT, True)),
        Who("dave", "session", v, perms_of(Role.SECURITY_OFFICER, OrgKind.VENDOR, True)),
        Who("dave_in_a", "session", a, perms_of(Role.SECURITY_OFFICER, OrgKind.TENANT, False)),
        Who("dave_granted_in_a", "session", a,
            perms_of(Role.SECURITY_OFFICER, OrgKind.TENANT, False, granted=True), "approved"),
        Who("erik", "session", v, perms_of(Role.PRIVACY_OFFICER, OrgKind.VENDOR, True)),
        Who("token_a", "token", a,
            perms_of(Role.TENANT_ADMIN, OrgKind.TENANT, True) - {Perm.SELF}),
    ]


def _persona_for(who: Who, personas: Personas) -> Any:
    base = who.name.split("_")[0]
    return personas.people[base]


def _client_for(who: Who, app: Any, db: Database, settings: Settings,
                personas: Personas) -> TestClient:
    client = TestClient(app, base_url="http://testserver", follow_redirects=False)
    if who.kind == "session":
        persona = _persona_for(who, personas)
        token, csrf = session_cookie_for(db, persona)
        if who.org_id != persona.org_id:
            from sqlalchemy import update

            from vern.accounts.models import AuthSession
            from vern.accounts.security import token_hash

            with db.transaction(Scope.system("matrix: switch org")) as session:
                session.execute(update(AuthSession)
                                .where(AuthSession.token_hash == token_hash(token))
                                .values(org_id=who.org_id))
            _grant_for(db, personas, persona, who.grant)
        client.cookies.set(session_cookie_name(settings), token)
        client.headers["X-CSRF-Token"] = csrf
    elif who.kind == "token":
        assert who.org_id is not None
        client.headers["Authorization"] = "Bearer " + make_api_token(
            db, who.org_id, Role.TENANT_ADMIN)
    return client


def _grant_for(db: Database, personas: Personas, persona: Any, state: str | None) -> None:
    """A grant tenant A's administrator approved for ``persona``; then ended as ``state`` says
    (``expired``: its end time has passed; ``revoked``: the administrator revoked it)."""
    from datetime import timedelta

    from sqlalchemy import update

    from tests.matrix.samples_access import actor_of, grant
    from vern.access import service as access
    from vern.access.models import AccessGrant

    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        # Grants persist per person: one made for an earlier call must not carry over.
        session.execute(update(AccessGrant).where(AccessGrant.grantee_user_id == persona.user_id)
                        .values(status="revoked"))
    if state is None:
        return
    staff = actor_of(persona, OrgKind.VENDOR)
    grant_id = grant(db, personas, staff, personas.tenant_a, approve_by=personas.alice)
    if state == "expired":
        with db.transaction(Scope.tenant(personas.tenant_a)) as session:
            now = utcnow()
            session.execute(update(AccessGrant).where(AccessGrant.id == grant_id).values(
                starts_at=now - timedelta(hours=3), ends_at=now - timedelta(seconds=1)))
    elif state == "revoked":
        with db.transaction(Scope.tenant(personas.tenant_a)) as session:
            access.revoke_grant(session, grant_id, actor=actor_of(personas.alice, OrgKind.TENANT))


def _expected(access: Access, who: Who, owners: set[str | None], console: bool) -> str:
    """'allow' or the denial: 'unauth', 'forbidden', 'notfound'."""
    if access.kind == "public":
        return "allow"
    if who.kind == "anonymous":
        return "unauth"
    if access.kind == "partial":
        return "unauth" if who.kind == "token" else "allow"
    if not access.perms <= who.perms:
        return "forbidden"
    foreign = {o for o in owners if o is not None and o != who.org_id}
    return "notfound" if foreign else "allow"


def _check(expected: str, res: Any, console: bool, label: str) -> None:
    status = res.status_code
    assert status < 500, f"{label}: server error {status}: {res.text[:300]}"
    if expected == "allow":
        if status == 403 and res.headers.get("x-vern-error") == "csrf-failed":
            return  # a public form refusing a post without its anonymous CSRF cookie
        assert status not in DENIAL_STATUSES, f"{label}: expected access, got {status}: {res.text[:200]}"
    elif expected == "unauth":
        if console:
            assert status == 303 and res.headers["location"].startswith("/login"), (
                f"{label}: expected a redirect to sign-in, got {status}")
        else:
            assert status == 401, f"{label}: expected 401, got {status}: {res.text[:200]}"
    elif expected == "forbidden":
        assert status == 403, f"{label}: expected 403, got {status}: {res.text[:200]}"
    else:
        assert status == 404, f"{label}: expected 404 (not 403), got {status}: {res.text[:200]}"


def _administers(who: Who, personas: Personas) -> bool:
    """The vendor's staff who administer customers see customers' pending role requests (the
    request's id, whom it is for, the role, the need) to decide them as the second person: by
    design, not a leak. Nothing else of tenant A's may show."""
    return who.org_id == personas.vendor and Perm.TENANTS_MANAGE in who.perms


PERSONAS = ["anonymous", "alice", "bob", "carol", "dave", "dave_in_a", "dave_granted_in_a", "erik",
            "token_a"]


def _checked_routes(app: Any) -> tuple[list[APIRoute], dict[str, Callable[..., Sample]]]:
    factories = _samples()
    routes = api_routes(app)
    assert len(routes) >= 20, "the app should expose its routes"
    undeclared = [f"{sorted(r.methods)} {r.path}" for r in routes if _access(r) is None]
    assert not undeclared, f"routes without an access rule: {undeclared}"
    missing = sorted({p for r in routes for p in PARAM.findall(r.path)} - set(factories))
    assert not missing, (
        f"no sample factory for path parameters {missing}; add them to tests/matrix/samples_*.py")
    return sorted(routes, key=lambda r: r.path), factories


class _Caller:
    """The persona's client, kept from call to call and made again (a new session, token and
    grant) after a call that may have changed what the persona holds: a write that succeeded,
    or an answer that sets the session cookie (signed out, switched organisation)."""

    def __init__(self, who: Who, app: Any, db: Database, settings: Settings,
                 personas: Personas) -> None:
        self.who, self.app, self.db, self.settings, self.personas = who, app, db, settings, personas
        self.cookie = session_cookie_name(settings)
        self.client: TestClient | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.client is None:
            self.client = _client_for(self.who, self.app, self.db, self.settings, self.personas)
        res = self.client.request(method, path, **kwargs)
        if (method != "GET" and res.status_code < 400) or any(
                header.startswith(f"{self.cookie}=")
                for header in res.headers.get_list("set-cookie")):
            self.close()
        return res

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_route_answers_every_persona_as_its_access_rule_says(
    app: Any, db: Database, settings: Settings, personas: Personas, persona: str
) -> None:
    routes, factories = _checked_routes(app)
    who = next(w for w in _who(personas) if w.name == persona)
    assert [w.name for w in _who(personas)] == PERSONAS
    # Tenant A's objects that must never show to a persona outside it: its people, one object of
    # every kind made before the first call, and every object made for a call since.
    tenant_a_values = {personas.alice.user_id, personas.bob.user_id}
    pending_requests: set[str] = set()

    def sample(name: str) -> Sample:
        made = factories[name](db, personas, settings)
        if made.org_id == personas.tenant_a:
            tenant_a_values.add(made.value)
            if name == "access_request_id":
                pending_requests.add(made.value)
        return made

    for name in sorted(factories):
        sample(name)
    caller = _Caller(who, app, db, settings, personas)
    checked = 0
    for route in routes:
        access = _access(route)
        assert access is not None
        params = PARAM.findall(route.path)
        console = route.path.startswith("/console")
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            # Fresh objects for every call: an allowed DELETE must not change the next answer.
            made = {name: sample(name) for name in params}
            owners = {m.org_id for m in made.values()}
            path = PARAM.sub(lambda m, v=made: v[m.group(1)].value, route.path)
            kwargs: dict[str, Any] = {}
            if method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {}
            res = caller.request(method, path, **kwargs)
            label = f"{method} {route.path} as {who.name}"
            expected = _expected(access, who, owners, console)
            if expected == "notfound" and res.status_code != 404:
                # Refused before the lookup (e.g. an invalid body): the answer must then be
                # the same as for an object that does not exist at all.
                ghost = PARAM.sub(lambda m: new_id(), route.path)
                other = caller.request(method, ghost, **kwargs)
                assert res.status_code >= 400 and other.status_code == res.status_code, (
                    f"{label}: {res.status_code} for tenant A's object but "
                    f"{other.status_code} for a missing one - existence leaks")
            else:
                _check(expected, res, console, label)
            if res.status_code < 300 and who.org_id != personas.tenant_a:
                shown = tenant_a_values - (pending_requests if _administers(who, personas)
                                           else set())
                for value in shown:
                    assert value not in res.text, f"{label}: leaked tenant A's {value}"
            checked += 1
    caller.close()
    assert checked >= len(routes)


def test_a_route_without_an_access_rule_is_caught() -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/api/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {"oops": "open"}

    route = next(r for r in router.routes if isinstance(r, APIRoute))
    assert _access(route) is None


@pytest.mark.parametrize("name", ["alice", "carol"])
def test_tenant_admins_hold_only_tenant_permissions(personas: Personas, name: str) -> None:
    who = next(w for w in _who(personas) if w.name == name)
    assert Perm.TENANTS_MANAGE not in who.perms
    assert Perm.AUDIT_READ_ALL not in who.perms


def _tenant_scoped(access: Access) -> bool:
    """A route that reaches an organisation's data: it needs more than one's own account."""
    return access.kind == "perm" and bool(access.perms - {Perm.SELF})


@pytest.mark.parametrize("state", ["expired", "revoked"])
def test_vendor_staff_reach_every_tenant_scoped_route_only_under_a_grant_in_force(
    app: Any, db: Database, settings: Settings, personas: Personas, state: str
) -> None:
    """Every route that reaches a customer's data (API and console), tried by the vendor's
    security officer inside tenant A after the grant expired or was revoked: 403 on every one,
    as without a grant. (Without a grant and under a grant in force are the personas
    ``dave_in_a`` and ``dave_granted_in_a`` of the test above, on every route.)"""
    factories = _samples()
    granted = state == "approved"
    perms = permissions(Role.SECURITY_OFFICER, org_kind=OrgKind.TENANT, home=False,
                        granted=granted)
    who = Who(f"dave_{state}_in_a", "session", personas.tenant_a, perms,
              None if state == "none" else state)
    client = _client_for(who, app, db, settings, personas)
    tried = 0
    for route in sorted(api_routes(app), key=lambda r: r.path):
        access = _access(route)
        assert access is not None
        if not _tenant_scoped(access):
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            samples = [(name, factories[name](db, personas, settings))
                       for name in PARAM.findall(route.path)]
            values = {name: sample.value for name, sample in samples}
            foreign = {sample.org_id for _n, sample in samples} - {None, personas.tenant_a}
            path = PARAM.sub(lambda m, v=values: v[m.group(1)], route.path)
            res = client.request(method, path,
                                 **({"json": {}} if method in ("POST", "PUT", "PATCH") else {}))
            label = f"{method} {route.path} as {who.name}"
            expected = "forbidden" if not access.perms <= perms \
                else "notfound" if foreign else "allow"
            _check(expected, res, route.path.startswith("/console"), label)
            tried += 1
    client.close()
    assert tried >= 50, "every tenant-scoped route should have been tried"
