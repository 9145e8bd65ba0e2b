"""Accounts: the only place that writes organisations, users, memberships, sessions and tokens.

Each function takes the caller's session (one transaction per request or CLI command) and writes
its audit record in that same transaction.

This module is the domain's entry point for the others and holds sign-in itself: the password
check with its locks, the device cookies, the session check on every request, changing one's own
password, and switching organisation. The rest is in modules of their own, whose names this one
offers too: ``actor`` (who is acting), ``orgs`` (organisations), ``members`` (people, memberships
and roles), ``sessions``, ``lockout`` (counts of failures and their locks), ``mfa`` (the second
factor), ``tokens`` (API tokens) and ``directory`` (look-ups for notices).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vern.access import grants
from vern.accounts import flows, security
from vern.accounts.actor import Actor, record_as
from vern.accounts.directory import (
    active_admins,
    active_admins_by_org,
    active_users,
    active_with_roles,
    user_view,
)
from vern.accounts.lockout import FAILURE_MEMORY, locked_for, register_failure
from vern.accounts.lockout import throttle_key as _throttle_key
from vern.accounts.members import (
    EMAIL_RE,
    HOLDING_ROLE,
    MEMBERSHIP_MAIL,
    SecondPersonConflict,
    accounts_of,
    add_membership,
    create_user,
    disable_user,
    email_index,
    enable_user,
    erase_user,
    find_user_by_email,
    get_member,
    list_members,
    memberships_of,
    needs_second_person,
    remove_member,
    revoke_privileged,
    role_for,
    role_waits,
    set_role,
    tell_added,
)
from vern.accounts.mfa import (
    MFA_FAILURES_BEFORE_LOCK,
    MFA_LOCK_BASE,
    MFA_LOCK_MAX,
    begin_mfa_enrolment,
    confirm_mfa_enrolment,
    regenerate_recovery_codes,
    reset_mfa,
    verify_mfa,
)
from vern.accounts.models import AuthSession, AuthThrottle, Membership, Organisation, User
from vern.accounts.orgs import (
    SLUG_RE,
    check_org_number,
    create_organisation,
    get_organisation,
    list_tenants,
    org_id_by_slug,
    set_org_number,
    vendor_org,
)
from vern.accounts.roles import MFA_REQUIRED, OrgKind, Role, permissions
from vern.accounts.sessions import SESSION_TOUCH_SECONDS, SignIn, end_all_sessions, end_session, start_session
from vern.accounts.tokens import actor_for_token, create_token, list_tokens, revoke_token
from vern.audit.service import record
from vern.core.config import Settings
from vern.core.db import utcnow
from vern.core.errors import Conflict, Forbidden, InvalidInput, Locked, NotFound, Unauthenticated
from vern.core.ratelimit import network_of

# Defined in the modules named above and offered here, the domain's entry point:
__all__ = [
    "EMAIL_RE",
    "FAILURE_MEMORY",
    "HOLDING_ROLE",
    "MEMBERSHIP_MAIL",
    "MFA_FAILURES_BEFORE_LOCK",
    "MFA_LOCK_BASE",
    "MFA_LOCK_MAX",
    "SESSION_TOUCH_SECONDS",
    "SLUG_RE",
    "Actor",
    "SecondPersonConflict",
    "SignIn",
    "accounts_of",
    "active_admins",
    "active_admins_by_org",
    "active_users",
    "active_with_roles",
    "actor_for_token",
    "add_membership",
    "begin_mfa_enrolment",
    "check_org_number",
    "confirm_mfa_enrolment",
    "create_organisation",
    "create_token",
    "create_user",
    "disable_user",
    "email_index",
    "enable_user",
    "end_all_sessions",
    "end_session",
    "erase_user",
    "find_user_by_email",
    "get_member",
    "get_organisation",
    "list_members",
    "list_tenants",
    "list_tokens",
    "memberships_of",
    "needs_second_person",
    "org_id_by_slug",
    "regenerate_recovery_codes",
    "remove_member",
    "reset_mfa",
    "revoke_privileged",
    "revoke_token",
    "role_waits",
    "set_org_number",
    "set_role",
    "start_session",
    "user_view",
    "vendor_org",
    "verify_mfa",
]

# Brute-force protection (NIST SP 800-63B 5.2.2): temporary locks that grow, never permanent,
# kept so that nobody can lock another person out (issue 13):
# * one account from one source network (/64 for IPv6): the usual lock; someone guessing from
#   their own network locks only that network's attempts on the account;
ACCOUNT_FAILURES_BEFORE_LOCK = 5
ACCOUNT_LOCK_BASE = timedelta(seconds=30)
ACCOUNT_LOCK_MAX = timedelta(minutes=15)
# * one account from every network together (the ceiling against attackers with many
#   networks); a trickle below it never reaches it, a lock from it ends by itself;
ACCOUNT_CEILING_FAILURES = 50
ACCOUNT_CEILING_LOCK_BASE = timedelta(minutes=1)
ACCOUNT_CEILING_LOCK_MAX = timedelta(minutes=15)
# * one source network, whatever the accounts;
SOURCE_FAILURES_BEFORE_LOCK = 20
SOURCE_LOCK_BASE = timedelta(minutes=1)
SOURCE_LOCK_MAX = timedelta(hours=1)
# * one device cookie (a browser that signed in to the account before): its attempts count
#   here alone and none of the locks above stops them, so the real person still gets in.
DEVICE_FAILURES_BEFORE_LOCK = 5
DEVICE_LOCK_BASE = timedelta(seconds=30)
DEVICE_LOCK_MAX = timedelta(minutes=15)
DEVICE_COOKIE_MAX_AGE = timedelta(days=180)
# Failures older than lockout.FAILURE_MEMORY are forgotten; the second factor's locks are in
# vern.accounts.mfa.


def set_password(
    session: Session, settings: Settings, *, user: User, password: str, actor: Actor | None,
    org_name: str = "",
) -> None:
    security.check_password(
        settings, password, context=[str(user.name), str(user.email), org_name]
    )
    user.password_hash = security.hash_password(settings, password)
    user.password_changed_at = utcnow()
    record_as(session, "user.password_set", actor, resource=f"user:{user.id}")


def change_own_password(
    session: Session, settings: Settings, *, actor: Actor, current: str, new: str,
    source_ip: str | None = None,
) -> None:
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFound()
    # Guessing the current password from a signed-in session counts like failed sign-ins
    # from the session's network (and towards the account's ceiling).
    email = str(user.email)
    pair_key = account_network_key(settings, email, source_ip)
    ceiling_key = _throttle_key(settings, "ceil", email.strip().casefold())
    wait = max(_locked_for(session.get(AuthThrottle, pair_key)),
               _locked_for(session.get(AuthThrottle, ceiling_key)))
    if wait:
        record_as(session, "user.password_change_locked", actor, resource=f"user:{user.id}",
                  outcome="denied", details={"retry_after": wait})
        raise Locked(retry_after=wait, detail="Too many failed attempts; try again later")
    if not security.verify_password(settings, user.password_hash, current):
        rows = [(_register_failure(session, pair_key, ACCOUNT_FAILURES_BEFORE_LOCK,
                                   ACCOUNT_LOCK_BASE, ACCOUNT_LOCK_MAX), "account-network"),
                (_register_failure(session, ceiling_key, ACCOUNT_CEILING_FAILURES,
                                   ACCOUNT_CEILING_LOCK_BASE, ACCOUNT_CEILING_LOCK_MAX),
                 "account")]
        record_as(session, "user.password_change_failed", actor, resource=f"user:{user.id}",
                  outcome="failure")
        for row, scope in rows:
            if row.failures == 0 and row.locked_until is not None:
                record_as(session, "auth.lock_started", actor, resource=f"user:{user.id}",
                          outcome="denied",
                          details={"scope": scope, "until": row.locked_until.isoformat()})
        raise InvalidInput.on("current_password", "is not correct", "wrong-password")
    org = session.get(Organisation, actor.org_id)
    set_password(session, settings, user=user, password=new, actor=actor,
                 org_name=org.name if org else "")
    # Other sessions end: whoever knew the old password is signed out.
    session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.id != actor.session_id,
               AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def password_expired(settings: Settings, user: User) -> bool:
    if settings.password_max_age_days is None or user.password_changed_at is None:
        return False
    return utcnow() - user.password_changed_at > timedelta(days=settings.password_max_age_days)


def give_waiting_role(session: Session, settings: Settings, *, user_id: str, org_id: str,
                      role: str, actor: Actor, approved_by: str) -> None:
    """A privileged role a second person approved takes effect: the member's role changes, or -
    for someone added to the vendor's organisation, who held no membership while it waited -
    the membership is made, and the person is invited (no password yet) or told by mail."""
    here = session.scalar(select(Membership.id).where(
        Membership.user_id == user_id, Membership.org_id == org_id))
    if here is not None:
        set_role(session, user_id=user_id, role=role, actor=actor, approved_by=approved_by)
        return
    user = session.get(User, user_id)
    if user is None or user.disabled_at is not None:
        raise Conflict(detail="user_id: the account is disabled or gone")
    org = get_organisation(session, org_id)
    parsed = role_for(org, role)
    session.add(Membership(user_id=user.id, org_id=org.id, role=parsed.value))
    record_as(session, "membership.created", actor, org_id=org.id, resource=f"user:{user.id}",
              details={"new": {"role": parsed.value}, "approved_by": approved_by})
    session.flush()
    if user.password_hash is None:
        flows.send_invitation(session, settings, user=user, org_id=org.id, actor=actor,
                              on_adding=True)
    else:
        tell_added(session, user, org, parsed)


# -- throttling ----------------------------------------------------------------------------------


def account_network_key(settings: Settings, email: str, source_ip: str | None) -> str:
    """The throttle of one account (as typed, known or not) from one source network."""
    return _throttle_key(settings, "acct", f"{email.strip().casefold()}\n{network_of(source_ip)}")


def new_device_cookie(settings: Settings, user_id: str) -> str:
    """A device cookie for a browser that has just signed in to ``user_id`` completely."""
    return security.new_device_cookie(settings.secret_bytes, user_id,
                                      int(utcnow().timestamp()))


def trusted_device(settings: Settings, cookie: str | None, user: User | None) -> str | None:
    """The device id (the cookie's nonce) when ``cookie`` is a valid device cookie of ``user``."""
    if not cookie or user is None:
        return None
    return security.device_cookie_nonce(
        settings.secret_bytes, cookie, user.id, now=int(utcnow().timestamp()),
        max_age=int(DEVICE_COOKIE_MAX_AGE.total_seconds()),
    )


def _locked_for(row: AuthThrottle | None) -> int:
    """``lockout.locked_for`` now (the sign-in and password checks read this module's clock)."""
    return locked_for(row, utcnow())


def _register_failure(
    session: Session, key: str, threshold: int, base: timedelta, cap: timedelta
) -> AuthThrottle:
    """``lockout.register_failure`` now, by this module's clock."""
    return register_failure(session, key, threshold, base, cap, now=utcnow())


# -- sign-in -------------------------------------------------------------------------------------


# One count of failed sign-ins: (throttle key, scope named in the audit trail, failures before a
# lock, first lock, longest lock).
Throttle = tuple[str, str, int, timedelta, timedelta]


def _signin_throttles(settings: Settings, email: str, source_ip: str | None,
                      device: str | None) -> list[Throttle]:
    """The counts a sign-in attempt is held to: a trusted device's own, or else the account's
    from this network, the account's over all networks, and this network's."""
    if device is not None:
        return [(_throttle_key(settings, "dev", device), "device",
                 DEVICE_FAILURES_BEFORE_LOCK, DEVICE_LOCK_BASE, DEVICE_LOCK_MAX)]
    return [
        (account_network_key(settings, email, source_ip), "account-network",
         ACCOUNT_FAILURES_BEFORE_LOCK, ACCOUNT_LOCK_BASE, ACCOUNT_LOCK_MAX),
        (_throttle_key(settings, "ceil", email.strip().casefold()), "account",
         ACCOUNT_CEILING_FAILURES, ACCOUNT_CEILING_LOCK_BASE, ACCOUNT_CEILING_LOCK_MAX),
        (_throttle_key(settings, "src", network_of(source_ip)), "source",
         SOURCE_FAILURES_BEFORE_LOCK, SOURCE_LOCK_BASE, SOURCE_LOCK_MAX),
    ]


def _record_signin_failure(session: Session, user: User | None, *, ok: bool,
                           throttles: list[Throttle], trust: dict[str, bool],
                           typed: str | None) -> None:
    """Count a failed attempt in every throttle and record it, and each lock it starts."""
    rows = [(_register_failure(session, key, threshold, base, cap), scope)
            for key, scope, threshold, base, cap in throttles]
    record(session, "auth.signin_failed", org_id=None,
           actor_user_id=user.id if user else None, outcome="failure",
           details={"reason": "disabled" if ok and user else "bad-credentials", **trust},
           actor_name=typed)
    for row, scope in rows:
        if row.failures == 0 and row.locked_until is not None:
            record(session, "auth.lock_started", org_id=None,
                   actor_user_id=user.id if user and scope != "source" else None,
                   outcome="denied",
                   details={"scope": scope, "until": row.locked_until.isoformat()})


def _clear_after_success(session: Session, throttles: list[Throttle]) -> None:
    """Success clears this network's (or this device's) count on the account; the ceiling keeps
    counting, so that the person signing in does not give an attacker a fresh allowance."""
    for key, scope, *_ in throttles:
        cleared = session.get(AuthThrottle, key)
        if cleared is not None and scope in ("account-network", "device"):
            session.delete(cleared)


def _signed_in(session: Session, settings: Settings, user: User) -> SignIn:
    """The session of a person whose password was right, in their first organisation."""
    memberships = memberships_of(session, user.id)
    if not memberships:
        record(session, "auth.signin_failed", org_id=None, actor_user_id=user.id,
               outcome="failure", details={"reason": "no-membership"})
        raise Unauthenticated(detail="Wrong e-mail address or password")
    first_org = memberships[0][1]
    roles = {Role(m.role) for m, _ in memberships}
    token, auth_session = start_session(session, user_id=user.id, org_id=first_org.id)
    needs_mfa = user.mfa_enabled_at is not None
    must_enrol = not needs_mfa and bool(roles & MFA_REQUIRED)
    record(session, "auth.signin", org_id=first_org.id, actor_user_id=user.id,
           details={"mfa_pending": needs_mfa, "must_enrol_mfa": must_enrol})
    user.last_sign_in_at = utcnow()
    return SignIn(user, auth_session, token, needs_mfa, must_enrol, password_expired(settings, user))


def authenticate(
    session: Session, settings: Settings, *, email: str, password: str, source_ip: str | None,
    device_cookie: str | None = None,
) -> SignIn:
    """Check e-mail and password. Failures lead to temporary, growing locks, counted so that
    no one can lock another person out for good: per account and source network, per account
    over all networks (a higher ceiling), per source network, and — for a browser with a valid
    device cookie of the account — per device cookie alone, which none of the others stops.
    Every failure and lock is in the audit trail."""
    user = find_user_by_email(session, settings, email) if EMAIL_RE.match(email.strip()) else None
    device = trusted_device(settings, device_cookie, user)
    throttles = _signin_throttles(settings, email, source_ip, device)
    wait = max(_locked_for(session.get(AuthThrottle, key)) for key, *_ in throttles)
    # The name typed in is recorded (sealed) only when it is nobody's account.
    typed = None if user is not None else email.strip()[:200] or None
    trust = {"device": True} if device is not None else {}
    if wait:
        record(session, "auth.signin_locked", org_id=None,
               actor_user_id=user.id if user else None, outcome="denied",
               details={"retry_after": wait, **trust}, actor_name=typed)
        raise Locked(retry_after=wait, detail="Too many failed attempts; try again later")
    ok = security.verify_password(settings, user.password_hash if user else None, password)
    if not ok or user is None or user.disabled_at is not None:
        _record_signin_failure(session, user, ok=ok, throttles=throttles, trust=trust, typed=typed)
        raise Unauthenticated(detail="Wrong e-mail address or password")
    _clear_after_success(session, throttles)
    if user.password_hash and security.needs_rehash(settings, user.password_hash):
        user.password_hash = security.hash_password(settings, password)
    return _signed_in(session, settings, user)


def session_from_token(
    session: Session, settings: Settings, token: str
) -> tuple[AuthSession, User] | None:
    """The live session for a cookie value, or None (unknown, revoked, idle or too old)."""
    row = session.execute(
        select(AuthSession, User)
        .join(User, User.id == AuthSession.user_id)
        .where(AuthSession.token_hash == security.token_hash(token))
    ).first()
    if row is None:
        return None
    auth_session, user = row[0], row[1]
    now = utcnow()
    if (
        auth_session.revoked_at is not None
        or user.disabled_at is not None
        or now - auth_session.last_seen_at > timedelta(minutes=settings.session_idle_minutes)
        or now - auth_session.created_at > timedelta(hours=settings.session_absolute_hours)
    ):
        return None
    if (now - auth_session.last_seen_at).total_seconds() > SESSION_TOUCH_SECONDS:
        auth_session.last_seen_at = now
    return auth_session, user


def actor_for_session(
    session: Session,
    auth_session: AuthSession,
    user: User,
    memberships: list[tuple[Membership, Organisation]] | None = None,
) -> Actor | None:
    """The actor of a session in its current organisation, or None if that access is gone.
    ``memberships`` (from ``memberships_of``) saves the look-ups when the caller has them."""
    if auth_session.org_id is None:
        return None
    if memberships is None:
        memberships = memberships_of(session, user.id)
    found = next(((m, o) for m, o in memberships if o.id == auth_session.org_id), None)
    grant_id = None
    if found is not None:
        org, role, home = found[1], Role(found[0].role), True
    else:
        vendor_role = _vendor_role_in(memberships)
        other = session.get(Organisation, auth_session.org_id)
        if vendor_role is None or other is None or other.kind != OrgKind.TENANT.value:
            return None
        org, role, home = other, vendor_role, False
        # Checked on every request: a grant that ended or was revoked stops access at once.
        grant_id = _grant_in_force(session, org.id, user.id)
    if org.disabled_at is not None:
        return None
    kind = OrgKind(org.kind)
    return Actor(
        org_id=org.id,
        org_kind=kind,
        role=role,
        perms=permissions(role, org_kind=kind, home=home, granted=grant_id is not None),
        user_id=user.id,
        session_id=auth_session.id,
        csrf_token=auth_session.csrf_token,
        home=home,
        grant_id=grant_id,
        person_id=user.id,
    )


def _grant_in_force(session: Session, org_id: str, user_id: str) -> str | None:
    return grants.grant_in_force(session, org_id=org_id, user_id=user_id)


def _vendor_role_in(memberships: list[tuple[Membership, Organisation]]) -> Role | None:
    return next((Role(m.role) for m, o in memberships if o.kind == OrgKind.VENDOR.value), None)


def switchable_orgs(
    session: Session,
    user_id: str,
    memberships: list[tuple[Membership, Organisation]] | None = None,
) -> list[Organisation]:
    """Organisations a user may switch to: their own, and for vendor staff every customer whose
    administrator approved an access grant for them that is in force now."""
    if memberships is None:
        memberships = memberships_of(session, user_id)
    own = [org for _m, org in memberships]
    if _vendor_role_in(memberships) is None:
        return own
    seen = {o.id for o in own}
    granted = grants.orgs_granted(session, user_id=user_id)
    return own + [t for t in list_tenants(session)
                  if t.id in granted and t.id not in seen and t.disabled_at is None]


def switch_org(session: Session, *, auth_session: AuthSession, org_id: str) -> Actor:
    user = session.get(User, auth_session.user_id)
    if user is None:
        raise NotFound()
    memberships = memberships_of(session, user.id)
    if org_id not in {o.id for o in switchable_orgs(session, user.id, memberships)}:
        other = session.get(Organisation, org_id)
        if (_vendor_role_in(memberships) is not None and other is not None
                and other.kind == OrgKind.TENANT.value):
            raise Forbidden(detail="org_id: no access grant from this customer is in force; "
                                   "ask its administrator for one")
        raise NotFound()
    old = auth_session.org_id
    auth_session.org_id = org_id
    actor = actor_for_session(session, auth_session, user)
    if actor is None:
        raise NotFound()
    # Each organisation's trail names only itself: the one left gets ``auth.org_left``, the one
    # entered ``auth.org_switched`` - never the other's id (a customer must not learn which other
    # customers a consultant or the vendor's staff also work for).
    if old is not None and old != org_id:
        record_as(session, "auth.org_left", actor, org_id=old, resource=f"org:{old}",
                  details={"old": {"org_id": old}})
    record_as(session, "auth.org_switched", actor, resource=f"org:{org_id}",
              details={"new": {"org_id": org_id}})
    return actor
