"""The accounts domain's console pages: sign-in (password, then the second step), the account,
users and roles, customer organisations, API tokens, the organisation switcher. (The language
switcher is a GET form on every page, handled by ``vern.console.templating``.) The pages for
people and customers (``vern.accounts.userpages``), API tokens (``vern.accounts.tokenpages``) and
the e-mailed links before sign-in (``vern.accounts.linkpages``) are in modules of their own,
which register on the same router (``vern.accounts.pagerouter``).

Every page works as a plain HTML form; htmx (vendored) only boosts links and forms. Writes go
through ``vern.accounts.service`` in one transaction per request, so a refused form leaves nothing
half-written; refused sign-ins and second steps still commit their failure records.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import segno
from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.accounts import linkpages, security, service, tokenpages, userpages
from vern.accounts.deps import (
    Caller,
    CallerDep,
    DatabaseDep,
    MfaEnrolmentRequired,
    MfaRequired,
    SettingsDep,
    TenantDB,
    anon_csrf_token,
    check_anon_csrf,
    public,
    require,
    require_session,
)
from vern.accounts.models import RecoveryCode, User
from vern.accounts.pagerouter import pages
from vern.accounts.roles import ROLE_LABELS, Perm
from vern.accounts.service import Actor
from vern.accounts.signin import (
    clear_session_cookie,
    set_device_cookie,
    set_session_cookie,
    signin,
    signin_rate_limit,
)
from vern.accounts.userpages import add_person, roles_for
from vern.console.forms import DEFAULT_NEXT, form_data, redirect, safe_next
from vern.console.templating import gettext, pick_locale, render
from vern.core.db import Database, Scope
from vern.core.discover import domain_modules
from vern.core.errors import Conflict, InvalidInput, Locked, NotFound, RateLimited, Unauthenticated, VernError

# The modules whose pages register on the same router when imported: with them, the router holds
# every page of the domain.
PAGE_MODULES = (linkpages, tokenpages, userpages)

# Offered here for the accounts API and the CLI (``add_person``) and the other pages:
__all__ = ["NAV", "add_person", "pages", "roles_for", "signed_in_layout"]

NAV = [
    ("/console", "Overview", Perm.ORG_READ),
    ("/console/users", "Users", Perm.USERS_READ),
    ("/console/tenants", "Customers", Perm.TENANTS_READ),
    ("/console/tokens", "API tokens", Perm.TOKENS_MANAGE),
    ("/console/account", "My account", Perm.SELF),
]

Session_ = Annotated[Caller, Depends(require_session())]
SelfActor = Annotated[Actor, Depends(require(Perm.SELF))]
OrgReader = Annotated[Actor, Depends(require(Perm.ORG_READ))]



def _signed_in_actor(caller: Caller) -> Actor:
    """For pages open before every step is done: the MFA step must be done first."""
    if caller.mfa_pending:
        raise MfaRequired()
    if caller.actor is None:
        raise Unauthenticated()
    return caller.actor


def signed_in_layout(request: Request, caller: Caller, actor: Actor) -> dict[str, Any]:
    """What the console layout shows of the signed-in person (``vern.console.templating``, handed
    over by ``vern.app.web``): the organisations to switch to, the current one, the name."""
    user = caller.user
    if user is None:
        return {}
    database = request.app.state.db
    with database.transaction(Scope.system("console layout")) as session:
        orgs = [{"id": o.id, "name": o.name, "kind": o.kind}
                for o in service.switchable_orgs(session, user.id)]
        return {"orgs": orgs, "current_org": next((o for o in orgs if o["id"] == actor.org_id), None),
                "user_name": str(user.name)}


# -- sign-in -------------------------------------------------------------------------------------


def _login_page(request: Request, *, email: str = "", next_url: str = DEFAULT_NEXT,
                error: VernError | None = None, errors: dict[str, str] | None = None,
                status: int = 200, notice: str | None = None) -> Response:

    anon_csrf_token(request)  # sets request.state.set_anon_csrf when a new token is needed
    return render(request, "accounts/login.html", {
        "email": email, "next": next_url, "error": error, "errors": errors or {},
        "notice": notice,
    }, status=status)


@pages.get("/login", dependencies=[Depends(public)])
def login_form(request: Request, caller: CallerDep, next: str | None = None,
               done: str | None = None) -> Response:
    """The sign-in form (e-mail and password); someone already signed in goes on."""
    if caller.via == "session" and caller.actor is not None and not caller.mfa_pending:
        return redirect(safe_next(next))
    notice = done if done in ("signed-out", "password-reset") else None
    return _login_page(request, next_url=safe_next(next), notice=notice)


@pages.post("/login", dependencies=[Depends(public)])
async def login_submit(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    form = await form_data(request)
    email = form.get("email", "").strip()[:254]
    password = form.get("password", "")[:4096]
    next_url = safe_next(form.get("next"))
    try:
        await signin_rate_limit(request, settings)
    except RateLimited as exc:
        response = _login_page(request, email=email, next_url=next_url, error=exc, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    try:
        await check_anon_csrf(request)
    except VernError as exc:
        response = _login_page(request, email=email, next_url=next_url, error=exc, status=403)
        response.headers["X-Vern-Error"] = exc.code
        return response
    if not email or not password:
        errors = {}
        if not email:
            errors["email"] = "Enter your e-mail address"
        if not password:
            errors["password"] = "Enter your password"  # noqa: S105 - a form message, not a password
        return _login_page(request, email=email, next_url=next_url, errors=errors, status=422)
    try:
        result = signin(db, settings, request, email, password)
    except Locked as exc:
        response = _login_page(request, email=email, next_url=next_url, error=exc, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthenticated:
        return _login_page(request, email=email, next_url=next_url, status=401,
                           errors={"password": "Wrong e-mail address or password"})
    if result.needs_mfa:
        target = "/login/mfa" + ("" if next_url == DEFAULT_NEXT else f"?next={quote(next_url)}")
    elif result.must_enrol_mfa:
        target = "/console/account/mfa"
    elif result.password_expired:
        target = "/console/account/password"
    else:
        target = next_url
    response = redirect(target)
    set_session_cookie(response, settings, result.token)
    if not result.needs_mfa:
        set_device_cookie(response, settings, result.user.id)
    return response


@pages.get("/login/mfa")
def mfa_form(request: Request, caller: Session_, next: str | None = None) -> Response:
    """The second step: a code from the authenticator app or a recovery code."""
    if not caller.mfa_pending:
        return redirect(safe_next(next))
    return render(request, "accounts/login_mfa.html", {"next": safe_next(next)})


@pages.post("/login/mfa")
async def mfa_submit(
    request: Request, caller: Session_, db: DatabaseDep, settings: SettingsDep
) -> Response:
    form = await form_data(request)
    next_url = safe_next(form.get("next"))
    if not caller.mfa_pending:
        return redirect(next_url)
    assert caller.auth_session is not None
    code = form.get("code", "").strip()[:32]
    ctx: dict[str, Any] = {"next": next_url}
    try:
        await signin_rate_limit(request, settings)
        if not code:
            raise InvalidInput.on("code", "Enter the code")
        with db.transaction(Scope.system("mfa"), keep_on=(VernError,)) as session:
            service.verify_mfa(session, settings, auth_session=session.merge(caller.auth_session),
                               code=code)
    except (Locked, RateLimited) as exc:
        response = render(request, "accounts/login_mfa.html", {**ctx, "error": exc}, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Conflict:
        return redirect("/console/account/mfa")
    except InvalidInput as exc:
        return render(request, "accounts/login_mfa.html", {**ctx, "error": exc}, status=422)
    if caller.must_enrol_mfa:
        done = redirect("/console/account/mfa")
    elif caller.password_expired:
        done = redirect("/console/account/password")
    else:
        done = redirect(next_url)
    set_device_cookie(done, settings, caller.auth_session.user_id)
    return done


@pages.get("/logout")
def logout_form(request: Request, caller: Session_) -> Response:
    """Sign out: a button, so that a link elsewhere cannot sign anyone out."""
    return render(request, "accounts/logout.html", {})


@pages.post("/logout")
def logout(request: Request, caller: Session_, db: DatabaseDep, settings: SettingsDep) -> Response:
    assert caller.auth_session is not None
    with db.transaction(Scope.system("sign-out")) as session:
        service.end_session(session, session.merge(caller.auth_session))
    response = redirect("/login?done=signed-out")
    clear_session_cookie(response, settings)
    return response


# -- organisation switcher -----------------------------------------------------------------------


@pages.post("/console/org")
async def switch_org(request: Request, caller: Session_, db: DatabaseDep) -> Response:
    """Continue in another organisation (one's own, or a customer's for vendor staff)."""
    _signed_in_actor(caller)
    assert caller.auth_session is not None
    form = await form_data(request)
    org_id = form.get("org_id", "")[:36]
    if not org_id:
        raise InvalidInput.on("org_id", "Choose an organisation")
    with db.transaction(Scope.system("switch organisation")) as session:
        service.switch_org(session, auth_session=session.merge(caller.auth_session),
                           org_id=org_id)
    return redirect(DEFAULT_NEXT)


# -- overview ------------------------------------------------------------------------------------


@pages.get("/console")
def overview(request: Request, actor: OrgReader, db: TenantDB) -> Response:
    """The current organisation at a glance."""
    org = service.get_organisation(db, actor.org_id)
    members = service.list_members(db) if actor.can(Perm.USERS_READ) else []
    counts = {
        "users": len(members),
        "without_mfa": sum(1 for u, _m in members if u.mfa_enabled_at is None),
        "disabled": sum(1 for u, _m in members if u.disabled_at is not None),
    }
    tokens = len([t for t in service.list_tokens(db) if t.revoked_at is None]) \
        if actor.can(Perm.TOKENS_MANAGE) else None
    return render(request, "accounts/overview.html", {
        "org": org, "role_label": ROLE_LABELS[actor.role], "counts": counts, "tokens": tokens,
        "can_users": actor.can(Perm.USERS_READ), "backup": _backup_line(request.app.state.db),
    })


def _backup_line(database: Database) -> dict[str, Any] | None:
    """The backup state a domain reports for the overview (``vern/<domain>/status_line.py``)."""
    for module in domain_modules("status_line"):
        return module.line(database)
    return None


# -- my account ----------------------------------------------------------------------------------


def _own_user(db: Session, actor: Actor) -> User:
    user = db.get(User, actor.user_id) if actor.user_id else None
    if user is None:
        raise NotFound()
    return user


@pages.get("/console/account")
def account(request: Request, actor: SelfActor, database: DatabaseDep,
            done: str | None = None) -> Response:
    """Profile, password, two-step sign-in, sign out everywhere."""
    with database.transaction(Scope.system("own account")) as session:
        user = _own_user(session, actor)
        view = service.user_view(user)
    return render(request, "accounts/account.html", {
        "user": view, "role_label": ROLE_LABELS[actor.role], "done": done,
    })


def _password_page(request: Request, caller: Caller, *, error: VernError | None = None,
                   errors: dict[str, str] | None = None, status: int = 200) -> Response:
    ctx: dict[str, Any] = {"expired": caller.password_expired, "error": error}
    if errors is not None:
        ctx["errors"] = errors
    return render(request, "accounts/password.html", ctx, status=status)


@pages.get("/console/account/password")
def password_form(request: Request, caller: Session_) -> Response:
    """Change one's password (also where an expired password must be replaced)."""
    _signed_in_actor(caller)
    return _password_page(request, caller)


@pages.post("/console/account/password")
async def password_submit(request: Request, caller: Session_, db: DatabaseDep,
                          settings: SettingsDep) -> Response:
    actor = _signed_in_actor(caller)
    if caller.must_enrol_mfa:
        raise MfaEnrolmentRequired()
    form = await form_data(request)
    current = form.get("current_password", "")[:4096]
    new = form.get("new_password", "")[:4096]
    repeat = form.get("new_password_repeat", "")[:4096]
    errors: dict[str, str] = {}
    if not current:
        # S105 is wrong here: a form message, not a password
        errors["current_password"] = "Enter your current password"  # noqa: S105
    if not new:
        errors["new_password"] = "Choose a new password"  # noqa: S105 - a form message, not a password
    elif new != repeat:
        # S105 is wrong here: a form message, not a password
        errors["new_password_repeat"] = "The two new passwords are not the same"  # noqa: S105
    if errors:
        return _password_page(request, caller, errors=errors, status=422)
    try:
        # A wrong current password is recorded in the audit trail even though nothing changes.
        # (The service refuses before it changes anything, so committing on refusal is safe.)
        with db.transaction(Scope.system("password change"), keep_on=(InvalidInput,)) as session:
            service.change_own_password(session, settings, actor=actor, current=current, new=new,
                                        source_ip=getattr(request.state, "client_ip", None))
    except InvalidInput as exc:
        mapped = {("new_password" if e.field == "password" else e.field): e.message
                  for e in exc.errors}
        return _password_page(request, caller, error=exc, errors=mapped, status=422)
    return redirect("/console/account?done=password")


@pages.post("/console/account/signout-everywhere")
def signout_everywhere(request: Request, actor: SelfActor, db: DatabaseDep,
                       settings: SettingsDep) -> Response:
    """Every session of this person ends, this one included."""
    with db.transaction(Scope.system("sign-out everywhere")) as session:
        service.end_all_sessions(session, actor=actor)
    response = redirect("/login?done=signed-out")
    clear_session_cookie(response, settings)
    return response


# -- two-step sign-in (TOTP) ---------------------------------------------------------------------


def qr_svg(uri: str, title: str) -> str:
    """The otpauth URI as an inline SVG QR code (no script, no style attribute)."""
    code = segno.make(uri, error="m")
    svg: str = code.svg_inline(scale=5, omitsize=True, title=title, dark="#1b1f24", light="#ffffff",
                               svgclass="qr", lineclass=None)
    return svg.replace("<svg ", '<svg role="img" aria-labelledby="qr-title" ', 1).replace(
        "<title>", '<title id="qr-title">', 1)


def _mfa_page(request: Request, caller: Caller, database: Any, *, error: VernError | None = None,
              status: int = 200) -> Response:
    assert caller.user is not None
    with database.transaction(Scope.system("mfa enrolment")) as session:
        user = session.get(User, caller.user.id)
        if user is None:
            raise NotFound()
        enabled = user.mfa_enabled_at is not None
        ctx: dict[str, Any] = {"enabled": enabled, "required": caller.must_enrol_mfa,
                               "error": error}
        if not enabled:
            pending = user.mfa_secret.value if user.mfa_secret is not None else None
            secret = pending or service.begin_mfa_enrolment(session, user=user)
            uri = security.totp_uri(secret, str(user.email))
            ctx["secret"] = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
            ctx["qr"] = qr_svg(uri, gettext(pick_locale(request),
                                            "QR code for the authenticator app"))
        else:
            ctx["codes_left"] = session.scalar(
                select(func.count()).select_from(RecoveryCode)
                .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)))
    return render(request, "accounts/mfa.html", ctx, status=status)


@pages.get("/console/account/mfa")
def mfa_setup(request: Request, caller: Session_, database: DatabaseDep) -> Response:
    """Set up two-step sign-in: scan the QR code (or type the secret), confirm with a code."""
    _signed_in_actor(caller)
    return _mfa_page(request, caller, database)


@pages.post("/console/account/mfa")
async def mfa_confirm(request: Request, caller: Session_, database: DatabaseDep,
                      settings: SettingsDep) -> Response:
    _signed_in_actor(caller)
    assert caller.user is not None and caller.auth_session is not None
    form = await form_data(request)
    code = form.get("code", "").strip()[:32]
    try:
        if not code:
            raise InvalidInput.on("code", "Enter the code")
        with database.transaction(Scope.system("mfa enrolment"),
                                  keep_on=(InvalidInput,)) as session:
            user = session.get(User, caller.user.id)
            if user is None:
                raise NotFound()
            codes = service.confirm_mfa_enrolment(
                session, settings, user=user, auth_session=session.merge(caller.auth_session),
                code=code)
    except InvalidInput as exc:
        return _mfa_page(request, caller, database, error=exc, status=422)
    except Conflict:
        return redirect("/console/account/mfa")
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "first": True})


@pages.post("/console/account/mfa/recovery-codes")
def mfa_new_codes(request: Request, actor: SelfActor, db: DatabaseDep,
                  settings: SettingsDep) -> Response:
    """Replace the recovery codes; the old ones stop working. Shown once."""
    with db.transaction(Scope.system("recovery codes")) as session:
        codes = service.regenerate_recovery_codes(session, settings, actor=actor)
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "first": False})

