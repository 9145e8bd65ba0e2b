"""Accounts API: sign-in and sessions, the current user, users and roles, tenants, API tokens."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from vern.access import service as access
from vern.accounts import flows, service
from vern.accounts.deps import Caller as CallerT
from vern.accounts.deps import (
    CallerDep,
    DatabaseDep,
    MfaEnrolmentRequired,
    MfaRequired,
    SettingsDep,
    TenantDB,
    public,
    require,
    require_session,
)
from vern.accounts.models import User
from vern.accounts.pages import NAV, add_person, pages
from vern.accounts.roles import OrgKind, Perm, Role
from vern.accounts.security import totp_uri
from vern.accounts.service import Actor
from vern.accounts.signin import (
    RESET_ANSWER,
    check_reset_email,
    clear_session_cookie,
    locale_of,
    reset_rate_limit,
    send_reset_later,
    set_device_cookie,
    set_session_cookie,
    signin,
    signin_rate_limit,
)
from vern.core.db import Scope
from vern.core.errors import InvalidInput, NotFound, Unauthenticated, VernError

router = APIRouter(prefix="/api/v1", tags=["accounts"])
# The console pages (vern.accounts.pages) are discovered here with the API router.
__all__ = ["NAV", "pages", "router"]
log = logging.getLogger(__name__)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class SignInBody(Strict):
    email: str = Field(max_length=254)
    password: str = Field(max_length=4096)


class CodeBody(Strict):
    code: str = Field(max_length=32)


class OrgBody(Strict):
    org_id: str = Field(max_length=36)


class NewUserBody(Strict):
    email: str = Field(max_length=254)
    name: str = Field(max_length=200)
    role: str = Field(max_length=32)
    password: str | None = Field(default=None, max_length=4096)
    # Why the person needs a privileged role (it waits for a second administrator).
    need: str | None = Field(default=None, max_length=2000)


class RoleBody(Strict):
    role: str = Field(max_length=32)
    # Why the person needs a privileged role (that change waits for a second person).
    need: str | None = Field(default=None, max_length=2000)


class PasswordBody(Strict):
    current_password: str = Field(max_length=4096)
    new_password: str = Field(max_length=4096)


class NewTenantBody(Strict):
    name: str = Field(max_length=200)
    slug: str = Field(max_length=63)
    org_number: str | None = Field(default=None, max_length=20)


class NewTokenBody(Strict):
    name: str = Field(max_length=100)
    role: str = Field(max_length=32)
    days: int = Field(default=90, ge=1, le=3650)


@router.post("/session", dependencies=[Depends(public), Depends(signin_rate_limit)])
def create_session(body: SignInBody, request: Request, response: Response, db: DatabaseDep,
                   settings: SettingsDep) -> dict[str, Any]:
    """Sign in with e-mail and password. Sets the session cookie; the MFA step may follow."""
    result = signin(db, settings, request, body.email, body.password)
    set_session_cookie(response, settings, result.token)
    if not result.needs_mfa:
        set_device_cookie(response, settings, result.user.id)
    return {
        "csrf_token": result.session.csrf_token,
        "mfa_required": result.needs_mfa,
        "mfa_enrolment_required": result.must_enrol_mfa,
        "password_change_required": result.password_expired,
    }


@router.post("/session/mfa", dependencies=[Depends(signin_rate_limit)])
def pass_mfa(body: CodeBody, response: Response, db: DatabaseDep, settings: SettingsDep,
             caller: Annotated[CallerT, Depends(require_session())]) -> dict[str, bool]:
    """The second step: a code from the authenticator, or a recovery code."""
    assert caller.auth_session is not None
    with db.transaction(Scope.system("mfa"), keep_on=(VernError,)) as session:
        auth_session = session.merge(caller.auth_session)
        service.verify_mfa(session, settings, auth_session=auth_session, code=body.code)
    set_device_cookie(response, settings, caller.auth_session.user_id)
    return {"mfa_verified": True}


@router.delete("/session", status_code=204)
def delete_session(response: Response, db: DatabaseDep, settings: SettingsDep,
                   caller: Annotated[CallerT, Depends(require_session())]) -> None:
    """Sign out (this session)."""
    assert caller.auth_session is not None
    with db.transaction(Scope.system("sign-out")) as session:
        service.end_session(session, session.merge(caller.auth_session))
    clear_session_cookie(response, settings)


@router.post("/session/everywhere", status_code=204)
def delete_all_sessions(response: Response, db: DatabaseDep, settings: SettingsDep,
                        actor: Annotated[Actor, Depends(require(Perm.SELF))]) -> None:
    """Sign out everywhere: every session of this user ends."""
    with db.transaction(Scope.system("sign-out everywhere")) as session:
        service.end_all_sessions(session, actor=actor)
    clear_session_cookie(response, settings)


@router.put("/session/org")
def switch_org(body: OrgBody, db: DatabaseDep,
               caller: Annotated[CallerT, Depends(require_session())]) -> dict[str, Any]:
    """Switch the session's current organisation."""
    assert caller.auth_session is not None
    if caller.mfa_pending:
        raise MfaRequired()
    with db.transaction(Scope.system("switch organisation")) as session:
        actor = service.switch_org(session, auth_session=session.merge(caller.auth_session),
                                   org_id=body.org_id)
    return {"org_id": actor.org_id, "role": actor.role.value}


def _me(session: Session, actor: Actor) -> dict[str, Any]:
    user = session.get(User, actor.user_id) if actor.user_id else None
    org = service.get_organisation(session, actor.org_id)
    body: dict[str, Any] = {
        "organisation": {"id": org.id, "name": org.name, "slug": org.slug, "kind": org.kind},
        "role": actor.role.value,
        "permissions": sorted(p.value for p in actor.perms),
    }
    if user is not None:
        body["user"] = service.user_view(user)
        body["organisations"] = [
            {"id": o.id, "name": o.name, "kind": o.kind}
            for o in service.switchable_orgs(session, user.id)
        ]
    else:
        body["token_id"] = actor.token_id
    return body


@router.get("/me")
def me(db: DatabaseDep, caller: CallerDep,
       actor: Annotated[Actor, Depends(require(Perm.ORG_READ))]) -> dict[str, Any]:
    """Who am I: user (or token), current organisation, role and permissions."""
    if caller.org is not None and (caller.via == "token" or caller.user is not None):
        return _me_of_caller(db, caller, actor)
    with db.transaction(Scope.system("me")) as session:
        return _me(session, actor)


def _me_of_caller(db: DatabaseDep, caller: CallerT, actor: Actor) -> dict[str, Any]:
    """The same answer from what resolving the caller already read: no query for members of
    an organisation, one (the tenant list) for vendor staff."""
    org = caller.org
    assert org is not None
    body: dict[str, Any] = {
        "organisation": {"id": org.id, "name": org.name, "slug": org.slug, "kind": org.kind},
        "role": actor.role.value,
        "permissions": sorted(p.value for p in actor.perms),
    }
    if caller.user is None:
        body["token_id"] = actor.token_id
        return body
    body["user"] = service.user_view(caller.user)
    own = [o for _m, o in caller.memberships]
    if any(o.kind == OrgKind.VENDOR.value for o in own):
        with db.transaction(Scope.system("me")) as session:
            orgs = service.switchable_orgs(session, caller.user.id, caller.memberships)
    else:
        orgs = own
    body["organisations"] = [{"id": o.id, "name": o.name, "kind": o.kind} for o in orgs]
    return body


@router.post("/me/password", status_code=204)
def change_password(body: PasswordBody, request: Request, db: DatabaseDep, settings: SettingsDep,
                    caller: Annotated[CallerT, Depends(require_session())]) -> None:
    """Change one's own password; other sessions end."""
    actor = _actor_of(caller)
    # A refusal still commits its failure count and audit record (nothing else is written).
    with db.transaction(Scope.system("password change"), keep_on=(VernError,)) as session:
        service.change_own_password(session, settings, actor=actor,
                                    current=body.current_password, new=body.new_password,
                                    source_ip=getattr(request.state, "client_ip", None))


@router.post("/me/mfa")
def begin_mfa(db: DatabaseDep, caller: Annotated[CallerT, Depends(require_session())]
              ) -> dict[str, str]:
    """Start TOTP enrolment: returns the secret and an otpauth URI for the authenticator."""

    _actor_of(caller, allow_enrolment=True)
    with db.transaction(Scope.system("mfa enrolment")) as session:
        user = session.get(User, caller.user.id if caller.user else None)
        if user is None:
            raise NotFound()
        secret = service.begin_mfa_enrolment(session, user=user)
        return {"secret": secret, "otpauth_uri": totp_uri(secret, str(user.email))}


@router.post("/me/mfa/confirm")
def confirm_mfa(body: CodeBody, db: DatabaseDep, settings: SettingsDep,
                caller: Annotated[CallerT, Depends(require_session())]) -> dict[str, Any]:
    """Confirm enrolment with a first code; returns ten single-use recovery codes (shown once)."""
    _actor_of(caller, allow_enrolment=True)
    with db.transaction(Scope.system("mfa enrolment")) as session:
        user = session.get(User, caller.user.id if caller.user else None)
        if user is None or caller.auth_session is None:
            raise NotFound()
        codes = service.confirm_mfa_enrolment(
            session, settings, user=user, auth_session=session.merge(caller.auth_session),
            code=body.code,
        )
    return {"recovery_codes": codes}


def _actor_of(caller: CallerT, *, allow_enrolment: bool = False) -> Actor:

    if caller.mfa_pending:
        raise MfaRequired()
    if caller.must_enrol_mfa and not allow_enrolment:
        raise MfaEnrolmentRequired()
    if caller.actor is None:
        raise Unauthenticated()
    return caller.actor


# -- users of the current organisation ------------------------------------------------------------


@router.get("/users")
def list_users(db: TenantDB, _actor: Annotated[Actor, Depends(require(Perm.USERS_READ))]
               ) -> dict[str, Any]:
    """The members of the caller's organisation, with role, status, MFA and last sign-in."""
    return {"items": [service.user_view(u, m) for u, m in service.list_members(db)]}


_WAITS: dict[int | str, dict[str, Any]] = {202: {
    "description": "A privileged role waits for a second administrator's approval "
                   "(``pending_request``)."}}


@router.post("/users", status_code=201, responses=_WAITS)
def create_user(  # noqa: PLR0917 - FastAPI parameters
    body: NewUserBody, request: Request, response: Response, db: TenantDB,
    settings: SettingsDep, actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))],
) -> dict[str, Any]:
    """Add a person. The answer repeats what was asked (and the member's id), whether the
    address was new or already had an account elsewhere: it tells nothing about other
    organisations. A new account without a password is mailed an invitation to choose one.
    A privileged role answers 202: the person is added without it (``role`` is what they hold
    meanwhile) and it waits, with the stated ``need``, for a second administrator's approval
    (``pending_request``)."""
    user, membership, pending = add_person(
        db, settings, actor=actor, email=body.email, name=body.name, role=body.role,
        password=body.password, need=body.need or "", locale=locale_of(request))
    view: dict[str, Any] = {"id": user.id, "email": body.email.strip(),
                            "name": body.name.strip(), "role": body.role}
    if pending is not None:
        response.status_code = 202
        view.update(role=membership.role if membership else None, pending_role=body.role,
                    pending_request=pending)
    return view


@router.get("/users/{user_id}")
def get_user(user_id: str, db: TenantDB,
             _actor: Annotated[Actor, Depends(require(Perm.USERS_READ))]) -> dict[str, Any]:
    """One member of the caller's organisation (404 for anyone else)."""
    user, membership = service.get_member(db, user_id)
    return service.user_view(user, membership)


@router.put("/users/{user_id}/role", responses=_WAITS)
def set_role(user_id: str, body: RoleBody, db: TenantDB, response: Response,
             actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> dict[str, Any]:
    """Change a member's role. Privileged roles need MFA from the next sign-in; nobody changes their
    own role. Granting a privileged role answers 202: it waits, with the stated ``need``, for a
    second administrator's approval (``/api/v1/access/requests``)."""

    user, membership = service.get_member(db, user_id)
    org = service.get_organisation(db, actor.org_id)
    try:
        wanted = Role(body.role)
    except ValueError:
        wanted = None
    if wanted is not None and wanted.value != membership.role and service.needs_second_person(
            Role(membership.role), wanted, OrgKind(org.kind)):
        pending = access.request_role(db, actor=actor, role=body.role, need=body.need or "",
                                      user_id=user_id)
        response.status_code = 202
        return {**service.user_view(user, membership), "pending_request": pending.id}
    service.set_role(db, user_id=user_id, role=body.role, actor=actor)
    user, membership = service.get_member(db, user_id)
    return service.user_view(user, membership)


@router.post("/users/{user_id}/disable")
def disable_user(user_id: str, db: TenantDB,
                 actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> dict[str, Any]:
    """Disable a member: their sessions and tokens stop working at once."""
    user = service.disable_user(db, user_id=user_id, actor=actor)
    return service.user_view(user, service.get_member(db, user_id)[1])


@router.post("/users/{user_id}/erase")
def erase_user(user_id: str, db: TenantDB,
               actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> dict[str, Any]:
    """Erase a member's account: its data key is destroyed (name, e-mail, the personal fields of
    its audit records become unreadable), sessions and memberships are deleted. The last
    security officer and an organisation's last administrator are refused with the reason."""
    user = service.erase_user(db, user_id=user_id, actor=actor)
    return {"id": user.id, "erased": True}


@router.post("/users/{user_id}/enable")
def enable_user(user_id: str, db: TenantDB,
                actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> dict[str, Any]:
    """Enable a disabled member again."""
    user = service.enable_user(db, user_id=user_id, actor=actor)
    return service.user_view(user, service.get_member(db, user_id)[1])


@router.post("/users/{user_id}/reset-mfa", status_code=204)
def reset_mfa(user_id: str, db: TenantDB,
              actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> None:
    """Remove a member's two-step sign-in so they enrol again at the next sign-in (when they lost
    their device)."""
    service.reset_mfa(db, user_id=user_id, actor=actor)


@router.delete("/users/{user_id}", status_code=204)
def remove_user(user_id: str, db: TenantDB,
                actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> None:
    """Remove the user from the current organisation."""
    service.remove_member(db, user_id=user_id, actor=actor)


# -- tenants (vendor staff) -----------------------------------------------------------------------


def _org_view(org: Any) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "slug": org.slug, "kind": org.kind,
            "org_number": org.org_number, "created_at": org.created_at.isoformat()}


@router.get("/tenants")
def list_tenants(db: DatabaseDep, _actor: Annotated[Actor, Depends(require(Perm.TENANTS_READ))]
                 ) -> dict[str, Any]:
    """The customer organisations (controllers), for the vendor's staff."""
    with db.transaction(Scope.system("list tenants")) as session:
        return {"items": [_org_view(o) for o in service.list_tenants(session)]}


@router.post("/tenants", status_code=201)
def create_tenant(body: NewTenantBody, db: DatabaseDep,
                  actor: Annotated[Actor, Depends(require(Perm.TENANTS_MANAGE))]
                  ) -> dict[str, Any]:
    """Create a customer organisation. The organisation number must have a valid check digit."""
    with db.transaction(Scope.system("create tenant")) as session:
        org = service.create_organisation(session, name=body.name, slug=body.slug,
                                          kind=OrgKind.TENANT, actor=actor,
                                          org_number=body.org_number)
        return _org_view(org)


# -- API tokens -----------------------------------------------------------------------------------


def _token_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "role": row.role,
            "created_at": row.created_at.isoformat(), "expires_at": row.expires_at.isoformat(),
            "revoked": row.revoked_at is not None,
            "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None}


@router.get("/tokens")
def list_tokens(db: TenantDB, _actor: Annotated[Actor, Depends(require(Perm.TOKENS_MANAGE))]
                ) -> dict[str, Any]:
    """The API tokens of the caller's organisation (never the secrets: a prefix and a fingerprint)."""
    return {"items": [_token_view(t) for t in service.list_tokens(db)]}


@router.post("/tokens", status_code=201)
def create_token(body: NewTokenBody, db: TenantDB, settings: SettingsDep,
                 actor: Annotated[Actor, Depends(require(Perm.TOKENS_MANAGE))]) -> dict[str, Any]:
    """Returns the token once; only its hash is kept."""
    token, row = service.create_token(db, settings, name=body.name, role=body.role,
                                      days=body.days, actor=actor)
    return {**_token_view(row), "token": token}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, db: TenantDB,
                 actor: Annotated[Actor, Depends(require(Perm.TOKENS_MANAGE))]) -> None:
    """Revoke an API token of the caller's organisation; it stops working at once."""
    service.revoke_token(db, token_id=token_id, actor=actor)


# -- invitations, password reset, a customer's first administrator ------------------------------


class EmailBody(Strict):
    email: str = Field(max_length=254)


class LinkPasswordBody(Strict):
    token: str = Field(max_length=200)
    password: str = Field(max_length=4096)


class InviteBody(Strict):
    email: str = Field(max_length=254)
    name: str = Field(max_length=200)
    role: str = Field(max_length=32)
    need: str | None = Field(default=None, max_length=2000)


class FirstAdminBody(Strict):
    email: str = Field(max_length=254)
    name: str = Field(max_length=200)


@router.post("/password-reset", status_code=202,
             dependencies=[Depends(public)])
async def request_password_reset(body: EmailBody, request: Request, background: BackgroundTasks,
                                 db: DatabaseDep, settings: SettingsDep) -> dict[str, str]:
    """Ask for a password-reset link by e-mail. The answer is the same whether or not the
    address has an account; rate limited per address and per source."""
    email = check_reset_email(body.email)
    await reset_rate_limit(request, settings, email)
    background.add_task(send_reset_later, db, settings, email, locale_of(request))
    return {"detail": RESET_ANSWER}


@router.post("/password-reset/confirm", status_code=204, dependencies=[Depends(public)])
def confirm_password_reset(body: LinkPasswordBody, db: DatabaseDep,
                           settings: SettingsDep) -> None:
    """Choose a new password with the link's token. Every session of the account ends."""

    with db.transaction(Scope.system("password reset"), keep_on=(InvalidInput,)) as session:
        flows.reset_password(session, settings, token=body.token, password=body.password)


@router.post("/invitations/accept", dependencies=[Depends(public)])
def accept_invitation(body: LinkPasswordBody, request: Request, response: Response,
                      db: DatabaseDep, settings: SettingsDep) -> dict[str, Any]:
    """Accept an invitation: choose a password and be signed in (the MFA enrolment step
    follows when the role requires it)."""

    with db.transaction(Scope.system("accept invitation"), keep_on=(InvalidInput,)) as session:
        result = flows.accept_invitation(session, settings, token=body.token,
                                         password=body.password)
        session.flush()
        session.expunge_all()
    set_session_cookie(response, settings, result.token)
    return {
        "csrf_token": result.session.csrf_token,
        "mfa_required": result.needs_mfa,
        "mfa_enrolment_required": result.must_enrol_mfa,
        "password_change_required": False,
    }


@router.post("/invitations", status_code=201, responses=_WAITS)
def invite_user(  # noqa: PLR0917 - FastAPI parameters
    body: InviteBody, request: Request, response: Response, db: TenantDB,
    settings: SettingsDep, actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))],
) -> dict[str, Any]:
    """Add a person to the current organisation and mail them an invitation link. A
    privileged role answers 202 and waits for a second administrator, as for ``/users``
    (someone who holds no role meanwhile is invited once it is approved)."""

    user, membership, pending = add_person(
        db, settings, actor=actor, email=body.email, name=body.name, role=body.role,
        password=None, need=body.need or "", locale=locale_of(request), on_adding=False)
    view = service.user_view(user, membership)
    if pending is not None:
        response.status_code = 202
        view.update(pending_role=body.role, pending_request=pending)
    return view


@router.post("/users/{user_id}/invitation", status_code=202)
def resend_invitation(user_id: str, request: Request, db: TenantDB, settings: SettingsDep,
                      actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]
                      ) -> dict[str, Any]:
    """Mail a new invitation link to a member who has no password yet (the old link stops
    working)."""

    user = flows.resend_invitation(db, settings, user_id=user_id, actor=actor,
                                   locale=locale_of(request))
    return service.user_view(user, service.get_member(db, user_id)[1])


@router.post("/tenants/{tenant_id}/admins", status_code=201)
def create_first_admin(  # noqa: PLR0917 - FastAPI parameters
    tenant_id: str, body: FirstAdminBody, request: Request, db: DatabaseDep,
                       settings: SettingsDep,
                       actor: Annotated[Actor, Depends(require(Perm.TENANTS_MANAGE))]
                       ) -> dict[str, Any]:
    """The first administrator of a customer organisation that has none, invited by e-mail
    (vendor staff who manage customers, in the vendor's organisation)."""

    with db.transaction(Scope.system("first customer admin")) as session:
        user = flows.create_first_admin(session, settings, tenant_id=tenant_id, email=body.email,
                                        name=body.name, actor=actor, locale=locale_of(request))
        view = service.user_view(user)
        view["role"] = "tenant_admin"
        view["org_id"] = tenant_id
        return view


CallerUsed = CallerDep  # re-exported for pages
