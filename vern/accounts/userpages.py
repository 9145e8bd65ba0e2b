"""The console's pages for people: the users of an organisation, adding a person, roles, the
actions on an account (disable, enable, reset two-step sign-in, remove, erase) and invitations;
for the vendor's staff, the customer organisations and a customer's first administrator."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.access import service as access
from vern.accounts import flows, service
from vern.accounts.deps import DatabaseDep, SettingsDep, TenantDB, require
from vern.accounts.models import Membership, User
from vern.accounts.pagerouter import pages
from vern.accounts.roles import ROLE_LABELS, ROLE_ORDER, ROLES_FOR_KIND, OrgKind, Perm, Role
from vern.accounts.service import Actor
from vern.console.forms import form_data, redirect
from vern.console.templating import pick_locale, render
from vern.core.config import Settings
from vern.core.db import Scope
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound, VernError
from vern.core.i18n import N_

UsersReader = Annotated[Actor, Depends(require(Perm.USERS_READ))]
UsersManager = Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]
TenantsReader = Annotated[Actor, Depends(require(Perm.TENANTS_READ))]
TenantsManager = Annotated[Actor, Depends(require(Perm.TENANTS_MANAGE))]


def roles_for(kind: str) -> list[tuple[str, str]]:
    allowed = ROLES_FOR_KIND[OrgKind(kind)]
    return [(r.value, ROLE_LABELS[r]) for r in ROLE_ORDER if r in allowed]


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
