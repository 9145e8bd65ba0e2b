"""Who is calling, and may they? The access rule of every route is declared with these.

* ``require(Perm.X, …)`` - signed in (session with MFA done, or an API token), holding every named
  permission in the current organisation.
* ``require_session(partial=True)`` - a signed-in person whose MFA step may still be open (only the
  MFA and sign-out pages use it).
* ``public`` - no sign-in (portal, banner, beacons, health).

Each returns a callable carrying ``__vern_access__``, which the role matrix test reads: a route
without one fails the test. ``TenantDB`` is a transaction scoped to the actor's organisation.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from vern.accounts import service
from vern.accounts.models import AuthSession, Membership, Organisation, User
from vern.accounts.roles import MFA_REQUIRED, Perm, Role
from vern.accounts.service import Actor
from vern.console.templating import ANON_CSRF_COOKIE
from vern.core.config import Settings
from vern.core.context import current_request
from vern.core.db import Database, Scope
from vern.core.errors import Forbidden, RateLimited, Unauthenticated, VernError
from vern.core.ratelimit import Limiter, network_of

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class MfaRequired(Unauthenticated):
    code = "mfa-required"
    title = "The second sign-in step is not done"


class MfaEnrolmentRequired(Forbidden):
    code = "mfa-enrolment-required"
    title = "Set up two-step sign-in first"


class PasswordChangeRequired(Forbidden):
    code = "password-change-required"
    title = "Your password has expired; choose a new one"


class CsrfFailed(Forbidden):
    code = "csrf-failed"
    title = "The form has expired; reload the page and try again"


@dataclass(frozen=True)
class Access:
    kind: str  # "perm" | "partial" | "public"
    perms: frozenset[Perm] = frozenset()


@dataclass
class Caller:
    """What the request carries: a live session or token, and the actor it resolves to."""

    actor: Actor | None = None
    auth_session: AuthSession | None = None
    user: User | None = None
    via: str | None = None  # "session" | "token"
    mfa_pending: bool = False
    must_enrol_mfa: bool = False
    password_expired: bool = False
    # Read once while resolving the caller and kept (detached) for the rest of the request, so
    # that routes and pages do not look them up again.
    org: Organisation | None = None
    memberships: list[tuple[Membership, Organisation]] = field(default_factory=list)


# Dependencies that do no I/O are ``async``: FastAPI runs a plain ``def`` dependency in a worker
# thread, a hop that costs more than the work itself on every request.
async def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def session_cookie_name(settings: Settings) -> str:
    # The __Host- prefix pins the cookie to this host, path / and Secure (outside dev).
    return "__Host-vern_session" if settings.is_production else "vern_session"


def resolve_caller(request: Request, db: DatabaseDep, settings: SettingsDep) -> Caller:
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    caller = Caller()
    auth = request.headers.get("authorization", "")
    cookie = request.cookies.get(session_cookie_name(settings))
    with db.transaction(Scope.system("resolve caller")) as session:
        if auth.lower().startswith("bearer "):
            actor = service.actor_for_token(session, auth[7:].strip())
            if actor is not None:
                org = session.get(Organisation, actor.org_id)  # already loaded: no query
                session.flush()
                session.expunge_all()
                caller = Caller(actor=actor, via="token", org=org)
        elif cookie:
            found = service.session_from_token(session, settings, cookie)
            if found is not None:
                caller = _session_caller(session, settings, *found)
    request.state.caller = caller
    if caller.actor is not None:
        request.state.actor = caller.actor
        if caller.actor.grant_id is not None:
            # Every audit record of this request (its own and the services') names the
            # customer's grant the vendor's staff act under.
            ctx = current_request()
            if ctx is not None:
                ctx.tags["access_grant"] = caller.actor.grant_id
    return caller


def _session_caller(
    session: Session, settings: Settings, auth_session: AuthSession, user: User
) -> Caller:
    memberships = service.memberships_of(session, user.id)
    actor = service.actor_for_session(session, auth_session, user, memberships)
    org = session.get(Organisation, actor.org_id) if actor is not None else None  # loaded
    roles = {Role(m.role) for m, _ in memberships}
    session.flush()  # the session's last-seen time, before the objects are detached
    session.expunge_all()
    return Caller(
        actor=actor,
        auth_session=auth_session,
        user=user,
        via="session",
        mfa_pending=user.mfa_enabled_at is not None and not auth_session.mfa_verified,
        must_enrol_mfa=user.mfa_enabled_at is None and bool(roles & MFA_REQUIRED),
        password_expired=service.password_expired(settings, user),
        org=org,
        memberships=memberships,
    )


CallerDep = Annotated[Caller, Depends(resolve_caller)]


def api_rate_key(caller: Caller, client_ip: str | None) -> tuple[str, str]:
    """The API rate-limit bucket of a resolved caller: its token or its person; anyone who
    resolves to no one (no, bad or malformed credentials) shares their source network's."""
    if caller.via == "token" and caller.actor is not None and caller.actor.token_id:
        return "token", caller.actor.token_id
    if caller.via == "session" and caller.user is not None:
        return "user", caller.user.id
    return "network", network_of(client_ip)


async def _api_limit(request: Request, kind: str, key: str) -> None:
    limiter: Limiter | None = getattr(request.app.state, "limiter", None)
    if limiter is None:
        return
    settings: Settings = request.app.state.settings
    limit = settings.rate_limit_api_unauthenticated if kind == "network" \
        else settings.rate_limit_api
    verdict = await limiter.hit(limit, f"api-{kind}", key)
    if not verdict.allowed:
        raise RateLimited(retry_after=verdict.retry_after)


async def api_rate_limited(request: Request, caller: CallerDep) -> Caller:
    """The API rate limit, applied after the caller is resolved (every signed-in route passes
    here; ``public`` routes count on their network): ``VERN_RATE_LIMIT_API`` per token or
    person, ``VERN_RATE_LIMIT_API_UNAUTHENTICATED`` per source network for the rest."""
    if request.url.path.startswith("/api/"):
        await _api_limit(request, *api_rate_key(caller, getattr(request.state, "client_ip", None)))
    return caller


async def _csrf_checked(
    request: Request, caller: Annotated[Caller, Depends(api_rate_limited)]
) -> Caller:
    """Cookie-authenticated writes must carry the session's CSRF token (form field
    ``csrf_token`` or header ``X-CSRF-Token``). Bearer tokens are not sent by browsers."""
    if request.method in UNSAFE and caller.via == "session" and caller.auth_session is not None:
        given = request.headers.get("x-csrf-token")
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
        if not given or not hmac.compare_digest(given, caller.auth_session.csrf_token):
            raise CsrfFailed()
    return caller


def permitted_actor(caller: Caller, needed: frozenset[Perm]) -> Actor:
    """The check of ``require``: the caller's actor if it holds every permission in ``needed``."""
    if caller.via == "session":
        if caller.mfa_pending:
            raise MfaRequired()
        if caller.must_enrol_mfa:
            raise MfaEnrolmentRequired()
        if caller.password_expired:
            raise PasswordChangeRequired()
    if caller.actor is None:
        raise Unauthenticated()
    if not needed <= caller.actor.perms:
        raise Forbidden()
    return caller.actor


def require(*perms: Perm) -> Callable[..., Awaitable[Actor]]:
    needed = frozenset(perms)

    async def dependency(caller: Annotated[Caller, Depends(_csrf_checked)]) -> Actor:
        return permitted_actor(caller, needed)

    dependency.__vern_access__ = Access("perm", needed)  # type: ignore[attr-defined]
    dependency.__name__ = "require_" + "_".join(p.value.replace(".", "_") for p in perms)
    return dependency


def require_session(*, partial: bool = True) -> Callable[..., Caller]:
    """A signed-in person, possibly before the MFA step (for the MFA pages themselves)."""

    def dependency(caller: Annotated[Caller, Depends(_csrf_checked)]) -> Caller:
        if caller.via != "session" or caller.auth_session is None:
            raise Unauthenticated()
        return caller

    dependency.__vern_access__ = Access("partial")  # type: ignore[attr-defined]
    return dependency


async def public(request: Request) -> None:
    """Marks a route as open to anyone (it must protect itself in other ways). Under ``/api/``
    the request counts on its source network's API limit, as one that resolves to no one."""
    if request.url.path.startswith("/api/"):
        await _api_limit(request, "network", network_of(getattr(request.state, "client_ip", None)))


public.__vern_access__ = Access("public")  # type: ignore[attr-defined]


def tenant_db(
    caller: Annotated[Caller, Depends(_csrf_checked)], db: DatabaseDep
) -> Iterator[Session]:
    """One transaction for the route, scoped to the actor's organisation; commits before the
    response is sent, rolls back on any error."""
    if caller.actor is None:
        raise Unauthenticated()
    with db.transaction(Scope.tenant(caller.actor.org_id)) as session:
        yield session


TenantDB = Annotated[Session, Depends(tenant_db, scope="function")]


def anon_csrf_token(request: Request) -> str:
    """The double-submit token for forms shown before sign-in (the sign-in form itself)."""
    token = request.cookies.get(ANON_CSRF_COOKIE)
    if not token or len(token) < 20:
        token = secrets.token_urlsafe(24)
        request.state.set_anon_csrf = token
    return token


async def check_anon_csrf(request: Request) -> None:
    cookie = request.cookies.get(ANON_CSRF_COOKIE)
    form = await request.form()
    given = form.get("csrf_token")
    if not cookie or not isinstance(given, str) or not hmac.compare_digest(cookie, given):
        raise CsrfFailed()


def access_of(dependency: Any) -> Access | None:
    return getattr(dependency, "__vern_access__", None)


def error_is_auth(exc: VernError) -> bool:
    return isinstance(exc, Unauthenticated | MfaEnrolmentRequired | PasswordChangeRequired)
