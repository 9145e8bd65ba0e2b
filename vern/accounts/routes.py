"""Accounts API: sign-in and sessions, the current user, users and roles, tenants, API tokens."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from limits import parse as parse_limit
from limits import storage as limit_storage
from limits import strategies
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from vern.accounts import service
from vern.accounts.deps import Caller as CallerT
from vern.accounts.deps import (
    CallerDep,
    DatabaseDep,
    SettingsDep,
    TenantDB,
    public,
    require,
    require_session,
    session_cookie_name,
)
from vern.accounts.models import User
from vern.accounts.roles import OrgKind, Perm
from vern.accounts.service import Actor
from vern.config import Settings
from vern.db import Scope
from vern.errors import NotFound, RateLimited, VernError

router = APIRouter(prefix="/api/v1", tags=["accounts"])


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


class RoleBody(Strict):
    role: str = Field(max_length=32)


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


@lru_cache(maxsize=4)
def _signin_limiter(storage_url: str) -> strategies.MovingWindowRateLimiter:
    return strategies.MovingWindowRateLimiter(limit_storage.storage_from_string(storage_url))


def signin_rate_limit(request: Request, settings: SettingsDep) -> None:
    """Per source address, on top of the per-account locks (DoS protection for Argon2id)."""
    limiter = _signin_limiter(settings.rate_limit_storage_url)
    limit = parse_limit(settings.rate_limit_signin)
    ip = getattr(request.state, "client_ip", None) or "unknown"
    if not limiter.hit(limit, "signin", ip):
        reset = limiter.get_window_stats(limit, "signin", ip).reset_time
        raise RateLimited(retry_after=max(1, int(reset - time.time())))


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        token,
        max_age=settings.session_absolute_hours * 3600,
        httponly=True,
        secure=settings.is_production,
        samesite="lax",
        path="/",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(session_cookie_name(settings), path="/", secure=settings.is_production,
                           httponly=True, samesite="lax")


def signin(db: DatabaseDep, settings: Settings, request: Request, email: str,
           password: str) -> service.SignIn:
    # A refused sign-in still commits its failure counters, locks and audit records.
    with db.transaction(Scope.system("sign-in"), keep_on=(VernError,)) as session:
        result = service.authenticate(
            session, settings, email=email, password=password,
            source_ip=getattr(request.state, "client_ip", None),
        )
        session.flush()
        session.expunge_all()
    return result


@router.post("/session", dependencies=[Depends(public), Depends(signin_rate_limit)])
def create_session(body: SignInBody, request: Request, response: Response, db: DatabaseDep,
                   settings: SettingsDep) -> dict[str, Any]:
    """Sign in with e-mail and password. Sets the session cookie; the MFA step may follow."""
    result = signin(db, settings, request, body.email, body.password)
    set_session_cookie(response, settings, result.token)
    return {
        "csrf_token": result.session.csrf_token,
        "mfa_required": result.needs_mfa,
        "mfa_enrolment_required": result.must_enrol_mfa,
        "password_change_required": result.password_expired,
    }


@router.post("/session/mfa", dependencies=[Depends(signin_rate_limit)])
def pass_mfa(body: CodeBody, db: DatabaseDep, settings: SettingsDep,
             caller: Annotated[CallerT, Depends(require_session())]) -> dict[str, bool]:
    """The second step: a code from the authenticator, or a recovery code."""
    assert caller.auth_session is not None
    with db.transaction(Scope.system("mfa"), keep_on=(VernError,)) as session:
        auth_session = session.merge(caller.auth_session)
        service.verify_mfa(session, settings, auth_session=auth_session, code=body.code)
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
        from vern.accounts.deps import MfaRequired

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
def change_password(body: PasswordBody, db: DatabaseDep, settings: SettingsDep,
                    caller: Annotated[CallerT, Depends(require_session())]) -> None:
    """Change one's own password; other sessions end."""
    actor = _actor_of(caller)
    # A refusal still commits its failure count and audit record (nothing else is written).
    with db.transaction(Scope.system("password change"), keep_on=(VernError,)) as session:
        service.change_own_password(session, settings, actor=actor,
                                    current=body.current_password, new=body.new_password)


@router.post("/me/mfa")
def begin_mfa(db: DatabaseDep, caller: Annotated[CallerT, Depends(require_session())]
              ) -> dict[str, str]:
    """Start TOTP enrolment: returns the secret and an otpauth URI for the authenticator."""
    from vern.accounts.security import totp_uri

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
    from vern.accounts.deps import MfaEnrolmentRequired, MfaRequired
    from vern.errors import Unauthenticated

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
    return {"items": [service.user_view(u, m) for u, m in service.list_members(db)]}


@router.post("/users", status_code=201)
def create_user(body: NewUserBody, db: TenantDB, settings: SettingsDep,
                actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> dict[str, Any]:
    """Add a person. The answer repeats what was asked (and the member's id), whether the
    address was new or already had an account elsewhere: it tells nothing about other
    organisations."""
    user = service.create_user(db, settings, email=body.email, name=body.name,
                               org_id=actor.org_id, role=body.role, password=body.password,
                               actor=actor)
    return {"id": user.id, "email": body.email.strip(), "name": body.name.strip(),
            "role": body.role}


@router.get("/users/{user_id}")
def get_user(user_id: str, db: TenantDB,
             _actor: Annotated[Actor, Depends(require(Perm.USERS_READ))]) -> dict[str, Any]:
    user, membership = service.get_member(db, user_id)
    return service.user_view(user, membership)


@router.put("/users/{user_id}/role")
def set_role(user_id: str, body: RoleBody, db: TenantDB,
             actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> dict[str, Any]:
    service.set_role(db, user_id=user_id, role=body.role, actor=actor)
    user, membership = service.get_member(db, user_id)
    return service.user_view(user, membership)


@router.post("/users/{user_id}/disable")
def disable_user(user_id: str, db: TenantDB,
                 actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> dict[str, Any]:
    user = service.disable_user(db, user_id=user_id, actor=actor)
    return service.user_view(user, service.get_member(db, user_id)[1])


@router.post("/users/{user_id}/enable")
def enable_user(user_id: str, db: TenantDB,
                actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> dict[str, Any]:
    user = service.enable_user(db, user_id=user_id, actor=actor)
    return service.user_view(user, service.get_member(db, user_id)[1])


@router.post("/users/{user_id}/reset-mfa", status_code=204)
def reset_mfa(user_id: str, db: TenantDB,
              actor: Annotated[Actor, Depends(require(Perm.USERS_MANAGE))]) -> None:
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
    with db.transaction(Scope.system("list tenants")) as session:
        return {"items": [_org_view(o) for o in service.list_tenants(session)]}


@router.post("/tenants", status_code=201)
def create_tenant(body: NewTenantBody, db: DatabaseDep,
                  actor: Annotated[Actor, Depends(require(Perm.TENANTS_MANAGE))]
                  ) -> dict[str, Any]:
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
    service.revoke_token(db, token_id=token_id, actor=actor)


CallerUsed = CallerDep  # re-exported for pages
