"""Self-service account flows by e-mail: invitations, password resets, a customer's first
administrator created by the vendor's staff.

Each flow mails a single-use link (``/invitation?token=…`` or ``/password/reset?token=…``) through
the outbox. Only a keyed hash of the token is stored (``account_tokens``); a link expires
(``VERN_INVITATION_VALID_HOURS``, ``VERN_PASSWORD_RESET_VALID_MINUTES``), works once, and a newer
link of the same kind replaces an older one. A reset request answers the same whether or not the
address has an account (the routes do the work after the answer is sent), and a reset ends every
session of the account. Every step is in the audit trail.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from hashlib import sha256

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from vern.accounts import security
from vern.accounts.actor import Actor, record_as
from vern.accounts.lockout import throttle_key
from vern.accounts.members import (
    all_memberships,
    create_user,
    find_user_by_email,
    get_member,
    memberships_of,
)
from vern.accounts.models import AccountToken, AuthThrottle, Membership, Organisation, User
from vern.accounts.orgs import get_organisation
from vern.accounts.roles import MFA_REQUIRED, OrgKind, Perm, Role
from vern.accounts.sessions import SignIn, end_user_sessions, start_session
from vern.audit.service import record
from vern.core import i18n
from vern.core.config import Settings
from vern.core.db import utcnow
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from vern.core.i18n import N_
from vern.notify import service as notify

INVITE = "invite"
RESET = "reset"
LOCALES = ("nb", "en")

INVITE_SUBJECT = N_("You are invited to Vern")
INVITE_BODY = N_(
    "Hello %(name)s,\n\n"
    "%(org)s has given you access to Vern. Open this link to choose your password:\n\n"
    "%(link)s\n\n"
    "The link works once and expires in %(hours)s hours. If you did not expect this message, "
    "you can ignore it.\n"
)
RESET_SUBJECT = N_("Reset your Vern password")
RESET_BODY = N_(
    "Hello %(name)s,\n\n"
    "Someone asked to reset the password of your Vern account. Open this link to choose a new "
    "password:\n\n"
    "%(link)s\n\n"
    "The link works once and expires in %(minutes)s minutes. When the new password is set, "
    "every session of the account is signed out. If you did not ask for this, ignore this "
    "message: your password stays as it is.\n"
)
BAD_LINK = N_("the link is not valid, was already used or has expired")


def token_hash(settings: Settings, token: str) -> str:
    """A keyed hash: a copy of the table alone does not let anyone test guessed tokens."""
    return hmac.new(settings.secret_bytes, b"account-token\x00" + token.encode(),
                    sha256).hexdigest()


def _text(locale: str, message: str, **params: object) -> str:
    return i18n.gettext(locale if locale in LOCALES else "nb", message, **params)


def _locale(user: User, asked: str | None, settings: Settings) -> str:
    for candidate in (user.locale, asked, settings.default_locale):
        if candidate in LOCALES:
            return str(candidate)
    return "nb"


def _issue(session: Session, settings: Settings, *, user: User, purpose: str,
           lifetime: timedelta, org_id: str | None) -> str:
    """A new link; earlier unused links of the same kind for this account stop working."""
    now = utcnow()
    session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user.id, AccountToken.purpose == purpose,
               AccountToken.used_at.is_(None))
        .values(used_at=now)
    )
    token = security.new_token("va")
    session.add(AccountToken(user_id=user.id, purpose=purpose,
                             token_hash=token_hash(settings, token), org_id=org_id,
                             created_at=now, expires_at=now + lifetime))
    return token


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}{path}?token={token}"


# -- invitations ----------------------------------------------------------------------------------


def send_invitation(
    session: Session, settings: Settings, *, user: User, org_id: str, actor: Actor | None,
    locale: str | None = None, on_adding: bool = False,
) -> None:
    """Mail ``user`` a link to choose their first password (a new link replaces the old).

    ``on_adding``: sent as a person is added to the organisation. The record then goes to the
    system's trail, not the organisation's: there it would tell a new account (invited) from
    an existing one (only told by mail), which adding people must not reveal."""
    if user.password_hash is not None:
        raise Conflict(detail="user: already has a password; they can reset it from the "
                              "sign-in page")
    if user.disabled_at is not None:
        raise Conflict(detail="user: the account is disabled")
    email = user.email.value if user.email is not None else None
    if email is None:
        raise Conflict(detail="user: the account's address is erased")
    org = get_organisation(session, org_id)
    hours = settings.invitation_valid_hours
    token = _issue(session, settings, user=user, purpose=INVITE,
                   lifetime=timedelta(hours=hours), org_id=org_id)
    lang = _locale(user, locale, settings)
    notify.queue(
        session, key_id=user.key_id, to=email, kind="accounts.invitation", org_id=org_id,
        subject=_text(lang, INVITE_SUBJECT),
        body=_text(lang, INVITE_BODY, name=str(user.name), org=org.name,
                   link=_link(settings, "/invitation", token), hours=hours),
    )
    record_as(session, "user.invited", actor, org_id=None if on_adding else org_id,
              resource=f"user:{user.id}", details={"new": {"valid_hours": hours}})


def invite_user(
    session: Session, settings: Settings, *, email: str, name: str, role: str, org_id: str,
    actor: Actor | None, locale: str | None = None,
) -> User:
    """A new account without a password, and the invitation that lets its owner choose one."""
    user = create_user(session, settings, email=email, name=name, org_id=org_id,
                       role=role, password=None, actor=actor)
    send_invitation(session, settings, user=user, org_id=org_id, actor=actor, locale=locale)
    return user


def resend_invitation(
    session: Session, settings: Settings, *, user_id: str, actor: Actor,
    locale: str | None = None,
) -> User:
    """A fresh invitation for a member of the current organisation who has no password yet."""
    user, membership = get_member(session, user_id)
    send_invitation(session, settings, user=user, org_id=membership.org_id, actor=actor,
                    locale=locale)
    return user


def _redeem(session: Session, settings: Settings, *, token: str, purpose: str) -> AccountToken:
    """The live link for ``token``, or a refusal naming the field ``token`` (recorded)."""
    row = None
    if 0 < len(token) <= 200:
        row = session.scalar(select(AccountToken).where(
            AccountToken.token_hash == token_hash(settings, token),
            AccountToken.purpose == purpose))
    user = session.get(User, row.user_id) if row is not None else None
    if (row is None or user is None or row.used_at is not None or row.expires_at <= utcnow()
            or user.disabled_at is not None):
        record(session, f"auth.{purpose}_link_refused", org_id=row.org_id if row else None,
               actor_user_id=user.id if user else None, outcome="denied",
               details={"reason": "unknown" if row is None else
                        "used" if row.used_at is not None else
                        "expired" if row.expires_at <= utcnow() else "disabled"})
        raise InvalidInput.on("token", BAD_LINK, "invalid-token")
    return row


def _use(session: Session, row: AccountToken) -> None:
    """Mark the link used; a second redemption racing this one finds it used and fails. The
    account's other open links (of either kind) end with it: the password they would set has
    just been chosen."""
    now = utcnow()
    result = session.execute(
        update(AccountToken).where(AccountToken.id == row.id, AccountToken.used_at.is_(None))
        .values(used_at=now)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        raise InvalidInput.on("token", BAD_LINK, "invalid-token")
    session.execute(
        update(AccountToken).where(AccountToken.user_id == row.user_id,
                                   AccountToken.used_at.is_(None))
        .values(used_at=now)
    )


def check_link(session: Session, settings: Settings, *, token: str, purpose: str) -> User:
    """Whether a link can still be used (for showing its form); nothing is consumed."""
    row = _redeem(session, settings, token=token, purpose=purpose)
    user = session.get(User, row.user_id)
    assert user is not None
    return user


def accept_invitation(
    session: Session, settings: Settings, *, token: str, password: str
) -> SignIn:
    """The invited person chooses a password and is signed in; MFA enrolment follows when
    their role requires it (the same flow as at any sign-in)."""
    row = _redeem(session, settings, token=token, purpose=INVITE)
    user = session.get(User, row.user_id)
    assert user is not None
    memberships = memberships_of(session, user.id)
    if not memberships:
        raise InvalidInput.on("token", BAD_LINK, "invalid-token")
    first_org = next((o for _m, o in memberships if o.id == row.org_id), memberships[0][1])
    security.check_password(settings, password,
                            context=[str(user.name), str(user.email), first_org.name])
    _use(session, row)
    user.password_hash = security.hash_password(settings, password)
    user.password_changed_at = utcnow()
    record(session, "user.invitation_accepted", org_id=first_org.id, actor_user_id=user.id,
           resource=f"user:{user.id}")
    auth_token, auth_session = start_session(session, user_id=user.id,
                                             org_id=first_org.id)
    roles = {Role(m.role) for m, _o in memberships}
    needs_mfa = user.mfa_enabled_at is not None
    must_enrol = not needs_mfa and bool(roles & MFA_REQUIRED)
    record(session, "auth.signin", org_id=first_org.id, actor_user_id=user.id,
           details={"via": "invitation", "mfa_pending": needs_mfa,
                    "must_enrol_mfa": must_enrol})
    user.last_sign_in_at = utcnow()
    return SignIn(user, auth_session, auth_token, needs_mfa, must_enrol, False)


# -- password reset -------------------------------------------------------------------------------


def request_password_reset(
    session: Session, settings: Settings, *, email: str, locale: str | None = None
) -> bool:
    """Mail a reset link if ``email`` belongs to an active account with an organisation.
    The caller must answer the same either way; the return value is for the audit trail's
    and tests' sake only."""
    user = find_user_by_email(session, settings, email)
    memberships = all_memberships(session, user.id) if user is not None else []
    address = user.email.value if user is not None and user.email is not None else None
    if user is None or user.disabled_at is not None or not memberships or address is None:
        record(session, "auth.password_reset_requested", org_id=None,
               actor_user_id=user.id if user else None, outcome="failure",
               details={"reason": "unknown" if user is None else "not-usable"})
        return False
    minutes = settings.password_reset_valid_minutes
    org_id = memberships[0][0]
    token = _issue(session, settings, user=user, purpose=RESET,
                   lifetime=timedelta(minutes=minutes), org_id=None)
    lang = _locale(user, locale, settings)
    notify.queue(
        session, key_id=user.key_id, to=address, kind="accounts.password_reset", org_id=None,
        subject=_text(lang, RESET_SUBJECT),
        body=_text(lang, RESET_BODY, name=str(user.name),
                   link=_link(settings, "/password/reset", token), minutes=minutes),
    )
    record(session, "auth.password_reset_requested", org_id=org_id, actor_user_id=user.id,
           resource=f"user:{user.id}", details={"valid_minutes": minutes})
    return True


def reset_password(session: Session, settings: Settings, *, token: str, password: str) -> None:
    """Set a new password from a reset link; every session of the account ends and a
    temporary sign-in lock on the account is lifted."""
    row = _redeem(session, settings, token=token, purpose=RESET)
    user = session.get(User, row.user_id)
    assert user is not None
    security.check_password(settings, password, context=[str(user.name), str(user.email)])
    _use(session, row)
    user.password_hash = security.hash_password(settings, password)
    user.password_changed_at = utcnow()
    ended = end_user_sessions(session, user.id)
    lock = session.get(AuthThrottle, throttle_key(
        settings, "acct", str(user.email).strip().casefold()))
    if lock is not None:
        session.delete(lock)
    memberships = all_memberships(session, user.id)
    record(session, "auth.password_reset", org_id=memberships[0][0] if memberships else None,
           actor_user_id=user.id, resource=f"user:{user.id}",
           details={"sessions_ended": ended})


# -- a customer's first administrator --------------------------------------------------------------


def tenant_admins(session: Session, org_id: str) -> int:
    """Active administrators of a customer organisation (read across scopes on purpose)."""
    m, u = Membership.__table__, User.__table__
    return session.scalar(
        select(func.count()).select_from(m.join(u, u.c.id == m.c.user_id))
        .where(m.c.org_id == org_id, m.c.role == Role.TENANT_ADMIN.value,
               u.c.disabled_at.is_(None))
    ) or 0


def create_first_admin(
    session: Session, settings: Settings, *, tenant_id: str, email: str, name: str,
    actor: Actor, locale: str | None = None,
) -> User:
    """Vendor staff who manage customers (``tenants.manage``, in the vendor's organisation)
    create the first administrator of a customer that has none, and invite them. Recorded in
    the vendor's trail and in the customer's."""
    if not (actor.home and actor.org_kind is OrgKind.VENDOR and actor.can(Perm.TENANTS_MANAGE)):
        raise Forbidden()
    org = session.get(Organisation, tenant_id)
    if org is None or org.kind != OrgKind.TENANT.value:
        raise NotFound()
    if org.disabled_at is not None:
        raise Conflict(detail="org: the customer organisation is disabled")
    if tenant_admins(session, org.id):
        raise Conflict(detail="org: this customer already has an administrator; they add "
                              "further people themselves")
    user = invite_user(session, settings, email=email, name=name, role=Role.TENANT_ADMIN.value,
                       org_id=org.id, actor=actor, locale=locale)
    for trail in (actor.org_id, org.id):
        record_as(session, "tenant.first_admin_created", actor, org_id=trail,
                  resource=f"user:{user.id}", details={"new": {"org_id": org.id}})
    return user
