"""The accounts domain's console pages: sign-in (password, then the second step), the account,
users and roles, customer organisations, API tokens, the organisation switcher. (The language
switcher is a GET form on every page, handled by ``vern.console.templating``.)

Every page works as a plain HTML form; htmx (vendored) only boosts links and forms. Writes go
through ``vern.accounts.service`` in one transaction per request, so a refused form leaves nothing
half-written; refused sign-ins and second steps still commit their failure records.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import segno
from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.access import service as access
from vern.accounts import flows, security, service
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
from vern.accounts.models import ApiToken, Membership, RecoveryCode, User
from vern.accounts.roles import ROLE_LABELS, ROLE_ORDER, ROLES_FOR_KIND, OrgKind, Perm, Role
from vern.accounts.service import Actor
from vern.accounts.signin import (
    check_reset_email,
    clear_session_cookie,
    reset_rate_limit,
    send_reset_later,
    set_device_cookie,
    set_session_cookie,
    signin,
    signin_rate_limit,
)
from vern.console.forms import DEFAULT_NEXT, form_data, redirect, safe_next
from vern.console.templating import gettext, pick_locale, render
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.discover import domain_modules
from vern.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    Locked,
    NotFound,
    RateLimited,
    Unauthenticated,
    VernError,
)
from vern.core.i18n import N_

pages = APIRouter(tags=["accounts"], include_in_schema=False)

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
UsersReader = Annotated[Actor, Depends(require(Perm.USERS_READ))]
UsersManager = Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]
TenantsReader = Annotated[Actor, Depends(require(Perm.TENANTS_READ))]
TenantsManager = Annotated[Actor, Depends(require(Perm.TENANTS_MANAGE))]
TokensManager = Annotated[Actor, Depends(require(Perm.TOKENS_MANAGE))]



def roles_for(kind: str) -> list[tuple[str, str]]:
    allowed = ROLES_FOR_KIND[OrgKind(kind)]
    return [(r.value, ROLE_LABELS[r]) for r in ROLE_ORDER if r in allowed]


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


# -- users ---------------------------------------------------------------------------------------


def _user_rows(db: Session) -> list[dict[str, Any]]:
    rows = []
    for user, membership in service.list_members(db):
        view = service.user_view(user, membership)
        view["role_label"] = ROLE_LABELS.get(Role(membership.role), membership.role)
        rows.append(view)
    return rows


@pages.get("/console/users")
def users(request: Request, actor: UsersReader, db: TenantDB, done: str | None = None) -> Response:
    """The people of the current organisation and their roles."""
    org = service.get_organisation(db, actor.org_id)
    rows = _user_rows(db)
    # Vendor staff inside a customer cannot add people there; the first administrator is
    # invited from the vendor's organisation (``flows.create_first_admin``).
    hint = (not actor.home and actor.org_kind is OrgKind.TENANT and not any(
        u["role"] == Role.TENANT_ADMIN.value and not u["disabled"] for u in rows))
    return render(request, "accounts/users.html", {
        "users": rows, "org": org, "can_manage": actor.can(Perm.USERS_MANAGE),
        "done": done, "first_admin_hint": hint,
    })


def add_person(
    session: Session, settings: Settings, *, actor: Actor, email: str, name: str, role: str,
    password: str | None, need: str, locale: str | None, on_adding: bool = True,
) -> tuple[User, Membership | None, str | None]:
    """Add a person (console and API): a privileged role waits for a second administrator
    (``access.add_person``). A new account without a password is invited once it has a
    membership here - at once, or, for someone who holds none while the role waits, when the
    role is approved. Returns the person, their membership here (None while waiting without
    one) and the waiting request's id."""
    user, pending = access.add_person(session, settings, actor=actor, email=email, name=name,
                                      role=role, password=password, need=need)
    membership = session.scalar(select(Membership).where(
        Membership.user_id == user.id, Membership.org_id == actor.org_id))
    if password is None and user.password_hash is None and membership is not None:
        flows.send_invitation(session, settings, user=user, org_id=actor.org_id, actor=actor,
                              locale=locale, on_adding=on_adding)
    return user, membership, pending.id if pending is not None else None


def _new_user_page(request: Request, db: Session, actor: Actor, *, values: dict[str, str],
                   error: VernError | None = None, errors: dict[str, str] | None = None,
                   status: int = 200) -> Response:
    org = service.get_organisation(db, actor.org_id)
    ctx: dict[str, Any] = {"values": values, "roles": roles_for(org.kind), "org": org,
                           "error": error}
    if errors is not None:
        ctx["errors"] = errors
    return render(request, "accounts/user_new.html", ctx, status=status)


@pages.get("/console/users/new")
def user_new(request: Request, actor: UsersManager, db: TenantDB) -> Response:
    """Form: add a person to the current organisation."""
    return _new_user_page(request, db, actor, values={"role": Role.MEMBER.value
                                                      if actor.org_kind is OrgKind.TENANT
                                                      else Role.SUPPORT.value})


@pages.post("/console/users/new")
async def user_create(request: Request, actor: UsersManager, database: DatabaseDep,
                      settings: SettingsDep) -> Response:
    form = await form_data(request)
    values = {k: form.get(k, "").strip()[:254] for k in ("name", "email", "role")}
    values["need"] = form.get("need", "").strip()[:2000]
    password = form.get("password", "")[:4096] or None
    try:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            user, membership, pending = add_person(
                session, settings, actor=actor, email=values["email"], name=values["name"],
                role=values["role"], password=password, need=values["need"],
                locale=pick_locale(request))
            user_id = user.id
    except (InvalidInput, Conflict) as exc:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            return _new_user_page(request, session, actor, values=values, error=exc, status=422)
    if pending is not None and membership is None:
        return redirect("/console/access?done=person-waiting")
    done = "role-requested" if pending else "created" if password else "invited"
    return redirect(f"/console/users/{user_id}?done={done}")


def _user_page(request: Request, db: Session, actor: Actor, user_id: str, *,
               error: VernError | None = None, done: str | None = None,
               status: int = 200) -> Response:
    user, membership = service.get_member(db, user_id)
    org = service.get_organisation(db, actor.org_id)
    view = service.user_view(user, membership)
    view["role_label"] = ROLE_LABELS.get(Role(membership.role), membership.role)
    return render(request, "accounts/user.html", {
        "user": view, "roles": roles_for(org.kind), "can_manage": actor.can(Perm.USERS_MANAGE),
        "is_self": user.id == actor.user_id, "error": error, "done": done,
    }, status=status)


@pages.get("/console/users/{user_id}")
def user_detail(request: Request, user_id: str, actor: UsersReader, db: TenantDB,
                done: str | None = None) -> Response:
    """One person: role, status, two-step sign-in; the actions an administrator may take."""
    return _user_page(request, db, actor, user_id, done=done)


@pages.post("/console/users/{user_id}/role")
async def user_role(request: Request, user_id: str, actor: UsersManager,
                    database: DatabaseDep) -> Response:
    form = await form_data(request)
    try:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            service.get_member(session, user_id)
            if user_id == actor.user_id:
                raise Forbidden(detail="role: you cannot change your own role")
            pending = _role_change(session, actor, user_id, form.get("role", "")[:32],
                                   form.get("need", "")[:2000])
    except (InvalidInput, Conflict, Forbidden) as exc:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            return _user_page(request, session, actor, user_id, error=exc, status=exc.status)
    return redirect(f"/console/users/{user_id}?done={'role-requested' if pending else 'role'}")


def _role_change(session: Session, actor: Actor, user_id: str, role: str, need: str) -> bool:
    """Change the role now, or - for a privileged role - ask a second administrator (True)."""

    _user, membership = service.get_member(session, user_id)
    org = service.get_organisation(session, actor.org_id)
    wanted = next((r for r in Role if r.value == role), None)
    if wanted is not None and wanted.value != membership.role and service.needs_second_person(
            Role(membership.role), wanted, OrgKind(org.kind)):
        access.request_role(session, actor=actor, role=role, need=need, user_id=user_id)
        return True
    service.set_role(session, user_id=user_id, role=role, actor=actor)
    return False


# Actions that take effect only after a confirmation page (GET shows it, POST does it).
USER_ACTIONS: dict[str, dict[str, str]] = {
    "disable": {"title": N_("Disable this user?"), "button": N_("Disable"),
                "explain": N_("They are signed out at once and cannot sign in until enabled again."),
                "done": "disabled"},
    "enable": {"title": N_("Enable this user?"), "button": N_("Enable"),
               "explain": N_("They can sign in again with their password and second step."),
               "done": "enabled"},
    "reset-mfa": {"title": N_("Reset two-step sign-in?"), "button": N_("Reset two-step sign-in"),
                  "explain": N_("Their authenticator and recovery codes stop working; they set up "
                             "two-step sign-in again at their next sign-in."),
                  "done": "mfa-reset"},
    "remove": {"title": N_("Remove this user from the organisation?"), "button": N_("Remove"),
               "explain": N_("They lose access to this organisation. Their account and the audit "
                          "trail are kept."),
               "done": "removed"},
    "erase": {"title": N_("Erase this user's account?"), "button": N_("Erase"),
              "explain": N_("Their name, e-mail address and the personal details of their audit "
                         "records become unreadable for good, and they lose every access. This "
                         "cannot be undone."),
              "done": "erased"},
}


def _do_user_action(session: Session, action: str, user_id: str, actor: Actor) -> None:
    if action in ("disable", "remove", "erase") and user_id == actor.user_id:
        raise Forbidden(detail="user: you cannot disable or remove your own account")
    if action == "disable":
        service.disable_user(session, user_id=user_id, actor=actor)
    elif action == "enable":
        service.enable_user(session, user_id=user_id, actor=actor)
    elif action == "reset-mfa":
        service.reset_mfa(session, user_id=user_id, actor=actor)
    elif action == "erase":
        service.erase_user(session, user_id=user_id, actor=actor)
    else:
        service.remove_member(session, user_id=user_id, actor=actor)


def _register_user_action(action: str) -> None:
    texts = USER_ACTIONS[action]

    @pages.get(f"/console/users/{{user_id}}/{action}", name=f"user_{action}_confirm")
    def confirm(request: Request, user_id: str, actor: UsersManager, db: TenantDB) -> Response:
        user, membership = service.get_member(db, user_id)
        return render(request, "confirm.html", {
            "texts": texts, "action": f"/console/users/{user_id}/{action}",
            "cancel": f"/console/users/{user_id}", "subject": service.user_view(user, membership),
        })

    @pages.post(f"/console/users/{{user_id}}/{action}", name=f"user_{action}")
    def perform(request: Request, user_id: str, actor: UsersManager,
                database: DatabaseDep) -> Response:
        try:
            with database.transaction(Scope.tenant(actor.org_id)) as session:
                service.get_member(session, user_id)
                _do_user_action(session, action, user_id, actor)
        except (Conflict, Forbidden) as exc:
            with database.transaction(Scope.tenant(actor.org_id)) as session:
                return _user_page(request, session, actor, user_id, error=exc, status=exc.status)
        if action in ("remove", "erase"):
            return redirect(f"/console/users?done={texts['done']}")
        return redirect(f"/console/users/{user_id}?done={texts['done']}")


for _action in USER_ACTIONS:
    _register_user_action(_action)


# -- customer organisations (vendor staff) -------------------------------------------------------


def _tenants_page(request: Request, database: Any, actor: Actor, *, values: dict[str, str],
                  error: VernError | None = None, done: str | None = None,
                  status: int = 200) -> Response:
    with database.transaction(Scope.system("list tenants")) as session:
        tenants = [{"id": o.id, "name": o.name, "slug": o.slug, "org_number": o.org_number,
                    "created_at": o.created_at, "disabled": o.disabled_at is not None}
                   for o in service.list_tenants(session)]
    return render(request, "accounts/tenants.html", {
        "tenants": tenants, "values": values, "error": error, "done": done,
        "can_manage": actor.can(Perm.TENANTS_MANAGE),
    }, status=status)


@pages.get("/console/tenants")
def tenants(request: Request, actor: TenantsReader, database: DatabaseDep,
            done: str | None = None) -> Response:
    """The vendor's customers (each one a tenant with its own users and data)."""
    return _tenants_page(request, database, actor, values={}, done=done)


@pages.post("/console/tenants")
async def tenant_create(request: Request, actor: TenantsManager, database: DatabaseDep) -> Response:
    form = await form_data(request)
    values = {k: form.get(k, "").strip()[:200] for k in ("name", "slug", "org_number")}
    try:
        with database.transaction(Scope.system("create tenant")) as session:
            service.create_organisation(session, name=values["name"], slug=values["slug"],
                                        kind=OrgKind.TENANT, actor=actor,
                                        org_number=values["org_number"] or None)
    except (InvalidInput, Conflict) as exc:
        return _tenants_page(request, database, actor, values=values, error=exc, status=422)
    return redirect("/console/tenants?done=created")


# -- API tokens ----------------------------------------------------------------------------------


def _token_rows(db: Session) -> list[dict[str, Any]]:
    return [{"id": t.id, "name": t.name, "prefix": t.prefix, "role": t.role,
             "role_label": ROLE_LABELS.get(Role(t.role), t.role), "expires_at": t.expires_at,
             "last_used_at": t.last_used_at, "revoked": t.revoked_at is not None}
            for t in service.list_tokens(db)]


def _tokens_page(request: Request, db: Session, actor: Actor, *, values: dict[str, str],
                 error: VernError | None = None, new_token: str | None = None,
                 done: str | None = None, status: int = 200) -> Response:
    org = service.get_organisation(db, actor.org_id)
    settings = request.app.state.settings
    return render(request, "accounts/tokens.html", {
        "tokens": _token_rows(db), "roles": roles_for(org.kind), "values": values,
        "error": error, "new_token": new_token, "done": done,
        "max_days": settings.api_token_max_days,
    }, status=status)


@pages.get("/console/tokens")
def tokens(request: Request, actor: TokensManager, db: TenantDB, done: str | None = None) -> Response:
    """API tokens of the current organisation: for machines, scoped to a role, expiring."""
    return _tokens_page(request, db, actor, values={"days": "90"}, done=done)


@pages.post("/console/tokens")
async def token_create(request: Request, actor: TokensManager, database: DatabaseDep,
                       settings: SettingsDep) -> Response:
    form = await form_data(request)
    values = {k: form.get(k, "").strip()[:100] for k in ("name", "role", "days")}
    try:
        if not re.fullmatch(r"\d{1,5}", values["days"]):
            raise InvalidInput.on("days", "must be a whole number of days")
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            token, _row = service.create_token(session, settings, name=values["name"],
                                               role=values["role"], days=int(values["days"]),
                                               actor=actor)
    except (InvalidInput, Conflict, Forbidden) as exc:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            return _tokens_page(request, session, actor, values=values, error=exc, status=422)
    with database.transaction(Scope.tenant(actor.org_id)) as session:
        return _tokens_page(request, session, actor, values={"days": "90"}, new_token=token,
                            status=201)


def _token(db: Session, token_id: str) -> ApiToken:
    row = db.scalar(select(ApiToken).where(ApiToken.id == token_id))  # the scope filters it
    if row is None:
        raise NotFound()
    return row


@pages.get("/console/tokens/{token_id}/revoke")
def token_revoke_confirm(request: Request, token_id: str, actor: TokensManager,
                         db: TenantDB) -> Response:
    """Confirmation before a token stops working."""
    row = _token(db, token_id)
    texts = {"title": N_("Revoke this token?"), "button": N_("Revoke"),
             "explain": N_("Programs using it are refused from now on. This cannot be undone.")}
    return render(request, "confirm.html", {
        "texts": texts, "action": f"/console/tokens/{token_id}/revoke", "cancel": "/console/tokens",
        "subject": {"name": row.name, "email": row.prefix + "…"},
    })


@pages.post("/console/tokens/{token_id}/revoke")
def token_revoke(request: Request, token_id: str, actor: TokensManager, db: TenantDB) -> Response:
    service.revoke_token(db, token_id=token_id, actor=actor)
    return redirect("/console/tokens?done=revoked")


# -- forgotten password, reset and invitation links (before sign-in) ----------------------------


async def _anon_form(request: Request) -> dict[str, str]:
    """The form of a page shown before sign-in, after its double-submit CSRF check."""
    await check_anon_csrf(request)
    return await form_data(request)


def _anon_page(request: Request, template: str, ctx: dict[str, Any], status: int = 200
               ) -> Response:

    anon_csrf_token(request)
    response = render(request, template, ctx, status=status)
    error = ctx.get("error")
    if isinstance(error, VernError) and status >= 400:
        response.headers["X-Vern-Error"] = error.code
    if isinstance(error, RateLimited | Locked):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@pages.get("/password/forgot", dependencies=[Depends(public)])
def forgot_form(request: Request) -> Response:
    """Ask for a link to choose a new password."""
    return _anon_page(request, "accounts/password_forgot.html", {"email": "", "sent": False})


@pages.post("/password/forgot", dependencies=[Depends(public)])
async def forgot_submit(request: Request, background: BackgroundTasks, db: DatabaseDep,
                        settings: SettingsDep) -> Response:
    """The same answer whether or not the address has an account; the work is done after the
    answer is sent."""
    try:
        form = await _anon_form(request)
    except VernError as exc:
        return _anon_page(request, "accounts/password_forgot.html",
                          {"email": "", "sent": False, "error": exc}, status=403)
    email = form.get("email", "").strip()[:254]
    ctx: dict[str, Any] = {"email": email, "sent": False}
    try:
        email = check_reset_email(email)
        await reset_rate_limit(request, settings, email)
    except InvalidInput as exc:
        return _anon_page(request, "accounts/password_forgot.html", {**ctx, "error": exc}, 422)
    except RateLimited as exc:
        return _anon_page(request, "accounts/password_forgot.html", {**ctx, "error": exc}, 429)
    background.add_task(send_reset_later, db, settings, email, pick_locale(request))
    return _anon_page(request, "accounts/password_forgot.html", {"email": "", "sent": True})


LINK_PAGES = {
    "reset": {"template": "accounts/password_reset.html", "action": "/password/reset"},
    "invite": {"template": "accounts/invitation.html", "action": "/invitation"},
}


def _link_page(request: Request, purpose: str, token: str, *, user: User | None,
               error: VernError | None = None, errors: dict[str, str] | None = None,
               status: int = 200) -> Response:
    ctx: dict[str, Any] = {"token": token if user is not None else "", "valid": user is not None,
                           "name": str(user.name) if user is not None else "",
                           "email": str(user.email) if user is not None else "",
                           "error": error, "action": LINK_PAGES[purpose]["action"]}
    if errors is not None:
        ctx["errors"] = errors
    return _anon_page(request, LINK_PAGES[purpose]["template"], ctx, status)


def _link_user(db: Any, settings: Any, purpose: str, token: str) -> User | None:

    try:
        with db.transaction(Scope.system("check link"), keep_on=(InvalidInput,)) as session:
            user = flows.check_link(session, settings, token=token, purpose=purpose)
            session.expunge(user)
            return user
    except InvalidInput:
        return None


def _link_form(purpose: str) -> Any:
    def show(request: Request, db: DatabaseDep, settings: SettingsDep,
             token: str = "") -> Response:
        user = _link_user(db, settings, purpose, token[:200])
        return _link_page(request, purpose, token[:200], user=user,
                          status=200 if user is not None else 400)

    return show


pages.add_api_route("/password/reset", _link_form("reset"), methods=["GET"],
                    dependencies=[Depends(public)], name="password_reset_form")
pages.add_api_route("/invitation", _link_form("invite"), methods=["GET"],
                    dependencies=[Depends(public)], name="invitation_form")


async def _link_password(request: Request, purpose: str, db: Any, settings: Any
                         ) -> tuple[str, str] | Response:
    """(token, new password) from a link's form, or the page again with what is wrong."""
    try:
        form = await _anon_form(request)
    except VernError as exc:
        return _link_page(request, purpose, "", user=None, error=exc, status=403)
    token = form.get("token", "")[:200]
    new = form.get("new_password", "")[:4096]
    repeat = form.get("new_password_repeat", "")[:4096]
    errors: dict[str, str] = {}
    if not new:
        errors["new_password"] = "Choose a new password"  # noqa: S105 - a form message, not a password
    elif new != repeat:
        # S105 is wrong here: a form message, not a password
        errors["new_password_repeat"] = "The two new passwords are not the same"  # noqa: S105
    if errors:
        user = _link_user(db, settings, purpose, token)
        return _link_page(request, purpose, token, user=user, errors=errors,
                          status=422 if user is not None else 400)
    return token, new


def _link_refused(request: Request, purpose: str, exc: InvalidInput, db: Any, settings: Any,
                  *, token: str) -> Response:
    mapped = {("new_password" if e.field == "password" else e.field): e.message
              for e in exc.errors}
    user = None if "token" in mapped else _link_user(db, settings, purpose, token)
    return _link_page(request, purpose, token, user=user, error=exc, errors=mapped,
                      status=422 if user is not None else 400)


@pages.post("/password/reset", dependencies=[Depends(public)])
async def reset_submit(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    """Choose a new password from a reset link; every session of the account ends."""

    got = await _link_password(request, "reset", db, settings)
    if isinstance(got, Response):
        return got
    token, new = got
    try:
        with db.transaction(Scope.system("password reset"), keep_on=(InvalidInput,)) as session:
            flows.reset_password(session, settings, token=token, password=new)
    except InvalidInput as exc:
        return _link_refused(request, "reset", exc, db, settings, token=token)
    return redirect("/login?done=password-reset")


@pages.post("/invitation", dependencies=[Depends(public)])
async def invitation_submit(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    """Accept an invitation: choose a password, be signed in, set up two-step sign-in when the
    role requires it."""

    got = await _link_password(request, "invite", db, settings)
    if isinstance(got, Response):
        return got
    token, new = got
    try:
        with db.transaction(Scope.system("accept invitation"),
                            keep_on=(InvalidInput,)) as session:
            result = flows.accept_invitation(session, settings, token=token, password=new)
            session.flush()
            must_enrol, needs_mfa = result.must_enrol_mfa, result.needs_mfa
    except InvalidInput as exc:
        return _link_refused(request, "invite", exc, db, settings, token=token)
    target = ("/login/mfa" if needs_mfa else "/console/account/mfa" if must_enrol
              else DEFAULT_NEXT)
    response = redirect(target)
    set_session_cookie(response, settings, result.token)
    return response


# -- invitations and a customer's first administrator --------------------------------------------


@pages.post("/console/users/{user_id}/invite")
def user_invite(request: Request, user_id: str, actor: UsersManager, database: DatabaseDep,
                settings: SettingsDep) -> Response:
    """Mail a new invitation link (the earlier one stops working)."""

    try:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            flows.resend_invitation(session, settings, user_id=user_id, actor=actor,
                                    locale=pick_locale(request))
    except Conflict as exc:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            return _user_page(request, session, actor, user_id, error=exc, status=exc.status)
    return redirect(f"/console/users/{user_id}?done=invited")


def _first_admin_page(request: Request, database: Any, tenant_id: str, *,
                      values: dict[str, str], error: VernError | None = None,
                      status: int = 200) -> Response:

    with database.transaction(Scope.system("first customer admin")) as session:
        org = service.get_organisation(session, tenant_id)
        if org.kind != OrgKind.TENANT.value:
            raise NotFound()
        has_admin = flows.tenant_admins(session, org.id) > 0
        tenant = {"id": org.id, "name": org.name}
    return render(request, "accounts/tenant_admin.html", {
        "tenant": tenant, "has_admin": has_admin, "values": values, "error": error,
    }, status=status)


@pages.get("/console/tenants/{tenant_id}/admin")
def tenant_admin_form(request: Request, tenant_id: str, actor: TenantsManager,
                      database: DatabaseDep) -> Response:
    """Form: the first administrator of a customer organisation, invited by e-mail."""
    return _first_admin_page(request, database, tenant_id, values={})


@pages.post("/console/tenants/{tenant_id}/admin")
async def tenant_admin_create(request: Request, tenant_id: str, actor: TenantsManager,
                              database: DatabaseDep, settings: SettingsDep) -> Response:

    form = await form_data(request)
    values = {k: form.get(k, "").strip()[:254] for k in ("name", "email")}
    try:
        with database.transaction(Scope.system("first customer admin")) as session:
            flows.create_first_admin(session, settings, tenant_id=tenant_id,
                                     email=values["email"], name=values["name"], actor=actor,
                                     locale=pick_locale(request))
    except (InvalidInput, Conflict) as exc:
        return _first_admin_page(request, database, tenant_id, values=values, error=exc,
                                 status=exc.status)
    return redirect("/console/tenants?done=admin-invited")
