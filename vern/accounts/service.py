"""Accounts: the only place that writes organisations, users, memberships, sessions and tokens.

Each function takes the caller's session (one transaction per request or CLI command) and writes
its audit record in that same transaction.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from hashlib import sha256
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from stdnum.no import orgnr

from vern.access import grants
from vern.accounts import security
from vern.accounts.models import (
    AccountToken,
    ApiToken,
    AuthSession,
    AuthThrottle,
    Membership,
    Organisation,
    RecoveryCode,
    User,
)
from vern.accounts.roles import (
    MFA_REQUIRED,
    PRIVILEGED_ROLES,
    ROLE_LABELS,
    ROLES_FOR_KIND,
    VENDOR_ROLES,
    OrgKind,
    Perm,
    Role,
    permissions,
)
from vern.audit.service import record
from vern.core.config import Settings
from vern.core.crypto import PII, blind_index, keyring
from vern.core.db import utcnow
from vern.core.errors import Conflict, Forbidden, InvalidInput, Locked, NotFound, Unauthenticated
from vern.core.i18n import N_, gettext
from vern.core.ratelimit import network_of
from vern.notify import service as notify

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SESSION_TOUCH_SECONDS = 60

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
FAILURE_MEMORY = timedelta(hours=24)
# Second-factor guessing (NIST SP 800-63B 5.2.2) is limited per account the same way.
MFA_FAILURES_BEFORE_LOCK = 5
MFA_LOCK_BASE = timedelta(seconds=30)
MFA_LOCK_MAX = timedelta(minutes=15)


# -- who is acting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """The user or token behind a request, in one current organisation."""

    org_id: str
    org_kind: OrgKind
    role: Role
    perms: frozenset[Perm]
    user_id: str | None = None
    token_id: str | None = None
    session_id: str | None = None
    csrf_token: str | None = None
    home: bool = True  # False for vendor staff acting inside a customer's organisation
    # The customer's access grant in force for vendor staff acting inside its organisation.
    grant_id: str | None = None
    # The person acting: the user, or for an API token the user who created it (four-eyes
    # checks compare people, so a token cannot approve what its creator filed).
    person_id: str | None = None

    @property
    def is_vendor_staff(self) -> bool:
        return self.role in VENDOR_ROLES

    def can(self, perm: Perm) -> bool:
        return perm in self.perms


def _audit(session: Session, action: str, actor: Actor | None, **kwargs: object) -> None:
    record(
        session,
        action,
        org_id=kwargs.pop("org_id", actor.org_id if actor else None),  # type: ignore[arg-type]
        actor_user_id=actor.user_id if actor else None,
        actor_token_id=actor.token_id if actor else None,
        **kwargs,  # type: ignore[arg-type]
    )


# -- organisations -------------------------------------------------------------------------------


def create_organisation(
    session: Session,
    *,
    name: str,
    slug: str,
    kind: OrgKind,
    actor: Actor | None,
    org_number: str | None = None,
) -> Organisation:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput.on("name", "must be 1-200 characters")
    if not SLUG_RE.match(slug):
        raise InvalidInput.on("slug", "must be lowercase letters, digits and dashes")
    if org_number is not None:
        org_number = check_org_number(org_number)
    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)):
        raise Conflict(detail="slug: already in use", errors=[])
    if kind is OrgKind.VENDOR and session.scalar(
        select(Organisation.id).where(Organisation.kind == OrgKind.VENDOR.value)
    ):
        raise Conflict(detail="kind: there is already a vendor organisation")
    org = Organisation(name=name, slug=slug, kind=kind.value, org_number=org_number)
    session.add(org)
    session.flush()
    _audit(session, "org.created", actor, org_id=org.id, resource=f"org:{org.id}",
           details={"new": {"slug": slug, "kind": kind.value}})
    return org


def check_org_number(value: str) -> str:
    """A Norwegian organisation number: nine digits whose last is the mod-11 check digit
    (weights 3, 2, 7, 6, 5, 4, 3, 2; remainder 0 gives 0, remainder 1 is never issued), as the
    Brønnøysund Register Centre assigns them. Spaces between groups are allowed and dropped."""
    number = re.sub(r"\s", "", value)
    if not re.fullmatch(r"\d{9}", number):
        raise InvalidInput.on("org_number", "must be nine digits")
    if not orgnr.is_valid(number):
        raise InvalidInput.on("org_number", "is not a valid organisation number (check digit)",
                              "check-digit")
    return number


def get_organisation(session: Session, org_id: str) -> Organisation:
    org = session.get(Organisation, org_id)
    if org is None:
        raise NotFound()
    return org


def org_id_by_slug(session: Session, slug: str) -> str | None:
    """The id of the organisation with this slug (for commands that name it), or None."""
    return session.scalar(select(Organisation.id).where(Organisation.slug == slug))


def list_tenants(session: Session) -> list[Organisation]:
    return list(
        session.scalars(
            select(Organisation)
            .where(Organisation.kind == OrgKind.TENANT.value)
            .order_by(Organisation.name)
        )
    )


def vendor_org(session: Session) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.kind == OrgKind.VENDOR.value))


# -- users ---------------------------------------------------------------------------------------


def email_index(settings: Settings, email: str) -> str:
    return blind_index(settings.secret_bytes, email, "user-email")


def find_user_by_email(session: Session, settings: Settings, email: str) -> User | None:
    return session.scalar(select(User).where(User.email_index == email_index(settings, email)))


def _check_email(email: str) -> str:
    email = email.strip()
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise InvalidInput.on("email", "is not a valid e-mail address")
    return email


def _role_for(org: Organisation, role: str) -> Role:
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidInput.on("role", "unknown role %(role)s", role=repr(role)) from None
    if parsed not in ROLES_FOR_KIND[OrgKind(org.kind)]:
        raise InvalidInput.on("role", "%(role)s is not a role in a %(kind)s organisation",
                              role=role, kind=org.kind)
    return parsed


MEMBERSHIP_MAIL = (
    N_("You were added to %(org)s"),
    N_("%(org)s added you as a member in Vern (%(role)s). Sign in with the account you already "
       "have to see the organisation. If you did not expect this, contact %(org)s."),
)


def create_user(
    session: Session,
    settings: Settings,
    *,
    email: str,
    name: str,
    org_id: str,
    role: str,
    password: str | None,
    actor: Actor | None,
    hold: bool = False,
) -> User:
    """Add a person to an organisation: a new account with one membership, or - when the address
    already has an account (in another organisation) - a membership of that account, told to
    the person by e-mail. Both look the same to the organisation: the same answer and the same
    one record in its trail, ``membership.created`` (the person became a member; whether an
    account row was made with it is not told), so adding people does not tell whether an
    address has an account elsewhere. Only an address that is already a member *here* is
    refused (409). A password is used for a new account only; an existing one keeps its own.
    Without a password a new user cannot sign in until they accept an invitation
    (``vern.accounts.flows``) or reset their password by e-mail.

    A privileged role given by a person (``actor``) to someone in an organisation that already
    has a privileged member waits for a second person (``role_waits``): the caller passes
    ``hold`` and files the request (``vern.access.service.add_person``); meanwhile the person
    holds the organisation's unprivileged role (``HOLDING_ROLE``), or - where there is none, in
    the vendor's organisation - no membership at all. Without ``hold`` such a call is refused.
    Only an organisation's very first privileged member, and the operator's own set-up without
    an actor (``vern init``, the demo), take effect at once: nobody else could approve them."""
    email = _check_email(email)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput.on("name", "must be 1-200 characters")
    org = get_organisation(session, org_id)
    parsed_role = _role_for(org, role)
    waits = actor is not None and role_waits(session, org_id=org.id, role=parsed_role.value)
    if waits and not hold:
        raise SecondPersonConflict(
            detail="role: adding someone as %(role)s needs a second person's approval; ask for "
                   "it with a stated need", params={"role": parsed_role.value})
    held = HOLDING_ROLE.get(OrgKind(org.kind)) if waits else parsed_role
    if password is not None:
        security.check_password(settings, password, context=[name, email, org.name])
    user = find_user_by_email(session, settings, email)
    if user is not None:
        here = session.scalar(select(Membership.id).where(
            Membership.user_id == user.id, Membership.org_id == org.id))
        if here is not None:
            raise Conflict(detail="email: already a member of this organisation",
                           errors=[InvalidInput.on("email", "already a member").errors[0]])
        if held is not None:
            _tell_added(session, user, org, held)
    else:
        key_id = keyring().create(session)
        user = User(
            key_id=key_id,
            email=PII(key_id, email),
            email_index=email_index(settings, email),
            name=PII(key_id, name),
            password_hash=security.hash_password(settings, password) if password else None,
            password_changed_at=utcnow() if password else None,
        )
        session.add(user)
        session.flush()
    if held is not None:
        session.add(Membership(user_id=user.id, org_id=org.id, role=held.value))
        _audit(session, "membership.created", actor, org_id=org.id, resource=f"user:{user.id}",
               details={"new": {"role": held.value}}
               | ({"waiting": {"role": parsed_role.value}} if waits else {}))
    else:
        _audit(session, "membership.waiting", actor, org_id=org.id, resource=f"user:{user.id}",
               details={"waiting": {"role": parsed_role.value}})
    return user


# The role a person holds in an organisation of each kind while a privileged role given to them
# waits for a second person. The vendor's organisation has no unprivileged role: there the
# person holds no membership until the approval.
HOLDING_ROLE: dict[OrgKind, Role] = {OrgKind.TENANT: Role.MEMBER}


def role_waits(session: Session, *, org_id: str, role: str) -> bool:
    """Whether giving ``role`` to a new person in ``org_id`` must wait for a second person: a
    privileged role, in an organisation that already has an active privileged member (one who
    could approve). The very first privileged member of an organisation has nobody to ask."""
    org = get_organisation(session, org_id)
    parsed = _role_for(org, role)
    if parsed not in PRIVILEGED_ROLES:
        return False
    m, u = Membership.__table__, User.__table__
    approvers = session.scalar(
        select(func.count()).select_from(m.join(u, u.c.id == m.c.user_id))
        .where(m.c.org_id == org.id, m.c.role.in_([r.value for r in PRIVILEGED_ROLES]),
               u.c.disabled_at.is_(None))
        .execution_options(cross_tenant="who could approve a privileged role")) or 0
    return approvers > 0


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
    parsed = _role_for(org, role)
    session.add(Membership(user_id=user.id, org_id=org.id, role=parsed.value))
    _audit(session, "membership.created", actor, org_id=org.id, resource=f"user:{user.id}",
           details={"new": {"role": parsed.value}, "approved_by": approved_by})
    session.flush()
    if user.password_hash is None:
        from vern.accounts import flows  # flows builds on this module

        flows.send_invitation(session, settings, user=user, org_id=org.id, actor=actor,
                              on_adding=True)
    else:
        _tell_added(session, user, org, parsed)


def _tell_added(session: Session, user: User, org: Organisation, role: Role) -> None:

    address = user.email.value if user.email is not None else None
    if address is None:
        return  # the address was erased: nobody to tell
    locale = user.locale
    subject, body = MEMBERSHIP_MAIL
    role_name = gettext(locale, ROLE_LABELS.get(role, role.value))
    notify.queue(session, key_id=user.key_id, to=address, subject=gettext(locale, subject, org=org.name),
                 body=gettext(locale, body, org=org.name, role=role_name),
                 kind="accounts.membership_added", org_id=org.id)


def add_membership(
    session: Session, *, user_id: str, org_id: str, role: str, actor: Actor | None
) -> Membership:
    org = get_organisation(session, org_id)
    parsed = _role_for(org, role)
    if session.get(User, user_id) is None:
        raise NotFound()
    existing = session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.org_id == org_id)
    )
    if existing is not None:
        raise Conflict(detail="user is already a member of this organisation")
    membership = Membership(user_id=user_id, org_id=org_id, role=parsed.value)
    session.add(membership)
    _audit(session, "membership.created", actor, org_id=org_id, resource=f"user:{user_id}",
           details={"new": {"role": parsed.value}})
    return membership


def memberships_of(session: Session, user_id: str) -> list[tuple[Membership, Organisation]]:
    """All of a user's memberships (needs a system scope: it crosses organisations)."""
    rows = session.execute(
        select(Membership, Organisation)
        .join(Organisation, Organisation.id == Membership.org_id)
        .where(Membership.user_id == user_id)
        .order_by(Organisation.kind.desc(), Organisation.name)
    )
    return [(m, o) for m, o in rows]


def list_members(session: Session) -> list[tuple[User, Membership]]:
    """Users of the session's current organisation (the tenant scope filters memberships)."""
    rows = session.execute(
        select(User, Membership).join(Membership, Membership.user_id == User.id)
        .order_by(Membership.created_at)
    )
    return [(u, m) for u, m in rows]


def get_member(session: Session, user_id: str) -> tuple[User, Membership]:
    """A user of the current organisation; 404 for anyone else, so existence does not leak."""
    row = session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(User.id == user_id)
    ).first()
    if row is None:
        raise NotFound()
    return row[0], row[1]


def _security_officers_left(session: Session, org_id: str, excluding_user: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.org_id == org_id,
            Membership.role == Role.SECURITY_OFFICER.value,
            Membership.user_id != excluding_user,
            User.disabled_at.is_(None),
        )
    ) or 0


def _guard_last_security_officer(session: Session, membership: Membership) -> None:
    if membership.role == Role.SECURITY_OFFICER.value and not _security_officers_left(
        session, membership.org_id, membership.user_id
    ):
        raise Conflict(
            detail="role: the vendor must always have a security officer; appoint another first"
        )


class SecondPersonConflict(Conflict):
    code = "second-person-required"
    title = "This change needs a second person's approval"


def needs_second_person(old: Role | None, new: Role, org_kind: OrgKind) -> bool:
    """Granting a privileged role counts only once another authorised person approved it;
    stepping down to a role with fewer permissions does not need one."""
    if new not in PRIVILEGED_ROLES:
        return False
    if old is None:
        return True
    return not permissions(new, org_kind=org_kind, home=True) <= permissions(
        old, org_kind=org_kind, home=True)


def set_role(
    session: Session, *, user_id: str, role: str, actor: Actor, approved_by: str | None = None
) -> Membership:
    """Change a member's role. A privileged role needs ``approved_by``: the second person who
    approved the request (``vern.access.service.decide_role_request``), never the actor alone."""
    user, membership = get_member(session, user_id)
    org = get_organisation(session, membership.org_id)
    parsed = _role_for(org, role)
    if parsed.value == membership.role:
        return membership
    if parsed is not Role.SECURITY_OFFICER:
        _guard_last_security_officer(session, membership)
    if approved_by is None and needs_second_person(Role(membership.role), parsed,
                                                   OrgKind(org.kind)):
        raise SecondPersonConflict(
            detail="role: granting %(role)s needs a second person's approval; ask for it as an "
                   "access request", params={"role": parsed.value})
    old = membership.role
    membership.role = parsed.value
    if parsed in MFA_REQUIRED and user.mfa_enabled_at is None:
        _end_sessions(session, user.id)  # must enrol MFA at next sign-in
    details: dict[str, object] = {"old": {"role": old}, "new": {"role": parsed.value}}
    if approved_by is not None:
        details["approved_by"] = approved_by
    _audit(session, "membership.role_changed", actor, resource=f"user:{user.id}", details=details)
    return membership


def revoke_privileged(session: Session, *, user_id: str, actor: Actor) -> str:
    """Take a member's privileged role away at once (an access review's revocation): in a
    customer's organisation they stay a plain member, in the vendor's they leave it; their API
    tokens with a privileged role in it are revoked. Sessions read the role on every request,
    so the change holds from the next one. Returns the role taken away."""
    user, membership = get_member(session, user_id)
    old = membership.role
    org = get_organisation(session, membership.org_id)
    if OrgKind(org.kind) is OrgKind.TENANT:
        if old != Role.MEMBER.value:
            membership.role = Role.MEMBER.value
            _audit(session, "membership.role_changed", actor, resource=f"user:{user.id}",
                   details={"old": {"role": old}, "new": {"role": Role.MEMBER.value}})
    else:
        remove_member(session, user_id=user.id, actor=actor)
    for token in session.scalars(select(ApiToken).where(
            ApiToken.created_by == user.id, ApiToken.revoked_at.is_(None),
            ApiToken.role.in_([r.value for r in PRIVILEGED_ROLES]))):
        token.revoked_at = utcnow()
        _audit(session, "token.revoked", actor, resource=f"token:{token.id}",
               details={"reason": "access review"})
    return old


def remove_member(session: Session, *, user_id: str, actor: Actor) -> None:
    _user, membership = get_member(session, user_id)
    _guard_last_security_officer(session, membership)
    session.delete(membership)
    _audit(session, "membership.removed", actor, resource=f"user:{user_id}",
           details={"old": {"role": membership.role}})


def _all_memberships(session: Session, user_id: str) -> list[tuple[str, str]]:
    """(org_id, role) of every membership of a user, across organisations on purpose: it reads
    the table, not the ORM entity, so a tenant scope does not hide the others. Disabling an
    account is global, so it must see what the account is used for elsewhere."""
    table = Membership.__table__
    rows = session.execute(select(table.c.org_id, table.c.role).where(table.c.user_id == user_id)
                           .execution_options(cross_tenant="an account's every membership"))
    return [(row.org_id, row.role) for row in rows]


def _officers_left_anywhere(session: Session, org_id: str, excluding_user: str) -> int:
    """Active security officers of ``org_id`` other than ``excluding_user`` (any scope)."""
    m, u = Membership.__table__, User.__table__
    return session.scalar(
        select(func.count())
        .select_from(m.join(u, u.c.id == m.c.user_id))
        .where(m.c.org_id == org_id, m.c.role == Role.SECURITY_OFFICER.value,
               m.c.user_id != excluding_user, u.c.disabled_at.is_(None))
        .execution_options(cross_tenant="the vendor keeps a security officer")
    ) or 0


def _only_here(
    session: Session, user_id: str, org_id: str, actor: Actor | None
) -> list[tuple[str, str]]:
    """Account-wide changes (disable, enable, MFA reset) made by an organisation need the
    account to be used in that organisation alone; the operator's CLI (no actor) may."""
    everywhere = _all_memberships(session, user_id)
    if actor is not None and any(other != org_id for other, _role in everywhere):
        raise Conflict(detail="user: also belongs to another organisation; remove them from "
                              "this organisation instead")
    return everywhere


def disable_user(session: Session, *, user_id: str, actor: Actor | None) -> User:
    """Disable an account everywhere. An organisation may only disable accounts that are used
    in it alone (others it removes from itself); the vendor's last security officer stays."""
    user, membership = get_member(session, user_id)
    if user.disabled_at is not None:
        return user
    everywhere = _only_here(session, user.id, membership.org_id, actor)
    for org_id, role in everywhere:
        if role == Role.SECURITY_OFFICER.value and not _officers_left_anywhere(
            session, org_id, user.id
        ):
            raise Conflict(detail="role: the vendor must always have a security officer; "
                                  "appoint another first")
    user.disabled_at = utcnow()
    _end_sessions(session, user.id)
    _audit(session, "user.disabled", actor, org_id=membership.org_id, resource=f"user:{user.id}",
           details={"old": {"disabled": False}, "new": {"disabled": True}})
    return user


def _admins_left_anywhere(session: Session, org_id: str, excluding_user: str) -> int:
    """Active administrators of a customer organisation other than ``excluding_user``."""
    m, u = Membership.__table__, User.__table__
    return session.scalar(
        select(func.count())
        .select_from(m.join(u, u.c.id == m.c.user_id))
        .where(m.c.org_id == org_id, m.c.role == Role.TENANT_ADMIN.value,
               m.c.user_id != excluding_user, u.c.disabled_at.is_(None))
        .execution_options(cross_tenant="an organisation keeps an administrator")
    ) or 0


def accounts_of(session: Session, org_id: str) -> tuple[list[str], list[str]]:
    """The accounts of ``org_id``'s members: (used in this organisation alone, also used in
    another organisation), ids in a stable order. Reads every membership on purpose."""
    m = Membership.__table__
    why = "an organisation's accounts and where else they are used"
    here = set(session.scalars(select(m.c.user_id).where(m.c.org_id == org_id)
                               .execution_options(cross_tenant=why)))
    elsewhere = set(session.scalars(select(m.c.user_id).where(m.c.user_id.in_(here),
                                                              m.c.org_id != org_id)
                                    .execution_options(cross_tenant=why))) if here else set()
    return sorted(here - elsewhere), sorted(here & elsewhere)


def erase_user(session: Session, *, user_id: str, actor: Actor | None,
               org_ending: str | None = None) -> User:
    """Erase an account (Art. 17), not only disable it: its data key is destroyed, so its name,
    e-mail address, MFA secret, the personal fields of its audit records and every mail to it
    are unreadable at once; its sessions, sign-in links, recovery codes and memberships are
    deleted; the row stays as a tombstone (the audit trail refers to its id). Refused for the
    vendor's last security officer, an organisation's last administrator, one's own account, and
    (from an organisation) an account that is also used elsewhere. ``org_ending`` names an
    organisation whose contract has ended (offboarding): it needs no administrator any more."""
    from sqlalchemy import delete


    user, membership = get_member(session, user_id)
    if actor is not None and actor.user_id == user.id:
        raise Forbidden(detail="user: you cannot erase your own account")
    everywhere = _only_here(session, user.id, membership.org_id, actor)
    for org_id, role in everywhere:
        if role == Role.SECURITY_OFFICER.value and not _officers_left_anywhere(
                session, org_id, user.id):
            raise Conflict(detail="role: the vendor must always have a security officer; "
                                  "appoint another first")
        if (role == Role.TENANT_ADMIN.value and org_id != org_ending
                and not _admins_left_anywhere(session, org_id, user.id)):
            raise Conflict(detail="role: the organisation must always have an administrator; "
                                  "appoint another first")
    _end_sessions(session, user.id)
    why = "an erased account's every membership"
    for model in (RecoveryCode, AccountToken, AuthSession):
        session.execute(delete(model).where(model.user_id == user.id))
    m: Any = Membership.__table__
    session.execute(delete(m).where(m.c.user_id == user.id).execution_options(cross_tenant=why))
    keyring().shred(session, user.key_id)
    user.email_index = "erased:" + user.id
    user.password_hash = None
    user.mfa_secret = None
    user.mfa_enabled_at = None
    user.mfa_last_step = None
    user.locale = None
    user.disabled_at = user.disabled_at or utcnow()
    session.flush()
    _audit(session, "user.erased", actor, org_id=membership.org_id, resource=f"user:{user.id}",
           details={"old": {"memberships": len(everywhere)}, "new": {"erased": True}})
    return user


def enable_user(session: Session, *, user_id: str, actor: Actor | None) -> User:
    user, membership = get_member(session, user_id)
    if user.disabled_at is None:
        return user
    _only_here(session, user.id, membership.org_id, actor)
    user.disabled_at = None
    _audit(session, "user.enabled", actor, org_id=membership.org_id, resource=f"user:{user.id}",
           details={"old": {"disabled": True}, "new": {"disabled": False}})
    return user


def set_password(
    session: Session, settings: Settings, *, user: User, password: str, actor: Actor | None,
    org_name: str = "",
) -> None:
    security.check_password(
        settings, password, context=[str(user.name), str(user.email), org_name]
    )
    user.password_hash = security.hash_password(settings, password)
    user.password_changed_at = utcnow()
    _audit(session, "user.password_set", actor, resource=f"user:{user.id}")


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
        _audit(session, "user.password_change_locked", actor, resource=f"user:{user.id}",
               outcome="denied", details={"retry_after": wait})
        raise Locked(retry_after=wait, detail="Too many failed attempts; try again later")
    if not security.verify_password(settings, user.password_hash, current):
        rows = [(_register_failure(session, pair_key, ACCOUNT_FAILURES_BEFORE_LOCK,
                                   ACCOUNT_LOCK_BASE, ACCOUNT_LOCK_MAX), "account-network"),
                (_register_failure(session, ceiling_key, ACCOUNT_CEILING_FAILURES,
                                   ACCOUNT_CEILING_LOCK_BASE, ACCOUNT_CEILING_LOCK_MAX),
                 "account")]
        _audit(session, "user.password_change_failed", actor, resource=f"user:{user.id}",
               outcome="failure")
        for row, scope in rows:
            if row.failures == 0 and row.locked_until is not None:
                _audit(session, "auth.lock_started", actor, resource=f"user:{user.id}",
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


# -- throttling ----------------------------------------------------------------------------------


def _throttle_key(settings: Settings, kind: str, value: str) -> str:
    return f"{kind}:" + blind_index(settings.secret_bytes, value, f"throttle-{kind}")[:60]


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
    if row is None or row.locked_until is None:
        return 0
    left = (row.locked_until - utcnow()).total_seconds()
    return max(0, math.ceil(left))


def _register_failure(
    session: Session, key: str, threshold: int, base: timedelta, cap: timedelta
) -> AuthThrottle:
    row = session.get(AuthThrottle, key)
    now = utcnow()
    if row is None:
        row = AuthThrottle(key=key, failures=0, locks=0, updated_at=now)
        session.add(row)
    elif now - row.updated_at > FAILURE_MEMORY:
        row.failures, row.locks = 0, 0
    row.failures += 1
    row.updated_at = now
    if row.failures >= threshold:
        # The exponent is bounded: a long attack must not overflow the arithmetic (which
        # would fail the request before the lock is stored, and so switch locking off).
        row.locked_until = now + min(cap, base * (2 ** min(row.locks, 20)))
        row.locks += 1
        row.failures = 0
    return row


# -- sign-in -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    user: User
    session: AuthSession
    token: str
    needs_mfa: bool  # a code is still to be given
    must_enrol_mfa: bool  # the role requires MFA and none is set up
    password_expired: bool


def authenticate(
    session: Session, settings: Settings, *, email: str, password: str, source_ip: str | None,
    device_cookie: str | None = None,
) -> SignIn:
    """Check e-mail and password. Failures lead to temporary, growing locks, counted so that
    no one can lock another person out for good: per account and source network, per account
    over all networks (a higher ceiling), per source network, and — for a browser with a valid
    device cookie of the account — per device cookie alone, which none of the others stops.
    Every failure and lock is in the audit trail."""
    folded = email.strip().casefold()
    user = find_user_by_email(session, settings, email) if EMAIL_RE.match(email.strip()) else None
    device = trusted_device(settings, device_cookie, user)
    throttles: list[tuple[str, str, int, timedelta, timedelta]]
    if device is not None:
        throttles = [(_throttle_key(settings, "dev", device), "device",
                      DEVICE_FAILURES_BEFORE_LOCK, DEVICE_LOCK_BASE, DEVICE_LOCK_MAX)]
    else:
        throttles = [
            (account_network_key(settings, email, source_ip), "account-network",
             ACCOUNT_FAILURES_BEFORE_LOCK, ACCOUNT_LOCK_BASE, ACCOUNT_LOCK_MAX),
            (_throttle_key(settings, "ceil", folded), "account",
             ACCOUNT_CEILING_FAILURES, ACCOUNT_CEILING_LOCK_BASE, ACCOUNT_CEILING_LOCK_MAX),
            (_throttle_key(settings, "src", network_of(source_ip)), "source",
             SOURCE_FAILURES_BEFORE_LOCK, SOURCE_LOCK_BASE, SOURCE_LOCK_MAX),
        ]
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
        raise Unauthenticated(detail="Wrong e-mail address or password")
    # Success clears this network's (or this device's) count on the account; the ceiling keeps
    # counting, so that the person signing in does not give an attacker a fresh allowance.
    for key, scope, *_ in throttles:
        cleared = session.get(AuthThrottle, key)
        if cleared is not None and scope in ("account-network", "device"):
            session.delete(cleared)
    if user.password_hash and security.needs_rehash(settings, user.password_hash):
        user.password_hash = security.hash_password(settings, password)
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


def start_session(session: Session, *, user_id: str, org_id: str) -> tuple[str, AuthSession]:
    token = security.new_token("vs")
    auth_session = AuthSession(
        token_hash=security.token_hash(token),
        user_id=user_id,
        org_id=org_id,
        csrf_token=secrets.token_urlsafe(32),
        mfa_verified=False,
    )
    session.add(auth_session)
    session.flush()
    return token, auth_session


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


def end_session(session: Session, auth_session: AuthSession) -> None:
    auth_session.revoked_at = utcnow()
    record(session, "auth.signout", org_id=auth_session.org_id, actor_user_id=auth_session.user_id)


def _end_sessions(session: Session, user_id: str) -> int:
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def end_all_sessions(session: Session, *, actor: Actor) -> int:
    """Sign out everywhere."""
    if actor.user_id is None:
        raise Forbidden(detail="only a person can sign out")
    count = _end_sessions(session, actor.user_id)
    _audit(session, "auth.signout_everywhere", actor, resource=f"user:{actor.user_id}",
           details={"sessions": count})
    return count


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
        _audit(session, "auth.org_left", actor, org_id=old, resource=f"org:{old}",
               details={"old": {"org_id": old}})
    _audit(session, "auth.org_switched", actor, resource=f"org:{org_id}",
           details={"new": {"org_id": org_id}})
    return actor


# -- MFA -----------------------------------------------------------------------------------------


def begin_mfa_enrolment(session: Session, *, user: User) -> str:
    """A new secret, kept unconfirmed until a first code proves the authenticator has it."""
    if user.mfa_enabled_at is not None:
        raise Conflict(detail="MFA is already enabled")
    secret = security.new_totp_secret()
    user.mfa_secret = PII(user.key_id, secret)
    user.mfa_last_step = None
    return secret


def confirm_mfa_enrolment(
    session: Session, settings: Settings, *, user: User, auth_session: AuthSession, code: str
) -> list[str]:
    if user.mfa_secret is None or user.mfa_secret.value is None or user.mfa_enabled_at:
        raise Conflict(detail="start MFA enrolment first")
    step = security.totp_match(user.mfa_secret.value, code, last_step=user.mfa_last_step)
    if step is None:
        record(session, "auth.mfa_enrol_failed", org_id=auth_session.org_id,
               actor_user_id=user.id, outcome="failure")
        raise InvalidInput.on("code", "is not the current code from your authenticator", "wrong-code")
    user.mfa_last_step = step
    user.mfa_enabled_at = utcnow()
    auth_session.mfa_verified = True
    codes = _replace_recovery_codes(session, settings, user)
    record(session, "auth.mfa_enabled", org_id=auth_session.org_id, actor_user_id=user.id,
           resource=f"user:{user.id}")
    return codes


def _recovery_hash(settings: Settings, code: str) -> str:
    return hmac.new(settings.secret_bytes, security.normalise_recovery_code(code).encode(),
                    sha256).hexdigest()


def _replace_recovery_codes(session: Session, settings: Settings, user: User) -> list[str]:
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)
    codes = security.new_recovery_codes()
    for code in codes:
        session.add(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(settings, code)))
    return codes


def verify_mfa(
    session: Session, settings: Settings, *, auth_session: AuthSession, code: str
) -> None:
    """The second factor: a TOTP code (never the same step twice) or an unused recovery code."""
    user = session.get(User, auth_session.user_id)
    if user is None or user.mfa_secret is None or user.mfa_secret.value is None:
        raise Conflict(detail="MFA is not set up")
    mfa_key = _throttle_key(settings, "mfa", user.id)
    wait = _locked_for(session.get(AuthThrottle, mfa_key))
    if wait:
        record(session, "auth.mfa_locked", org_id=auth_session.org_id, actor_user_id=user.id,
               outcome="denied", details={"retry_after": wait})
        raise Locked(retry_after=wait, detail="Too many wrong codes; try again later")
    step = security.totp_match(user.mfa_secret.value, code, last_step=user.mfa_last_step)
    if step is not None:
        user.mfa_last_step = step
        method = "totp"
    else:
        used = session.scalar(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _recovery_hash(settings, code),
                RecoveryCode.used_at.is_(None),
            )
        )
        if used is None:
            _mfa_failed(session, mfa_key, auth_session, user)
            raise InvalidInput.on("code", "is not valid or was already used", "wrong-code")
        used.used_at = utcnow()
        method = "recovery-code"
    throttle = session.get(AuthThrottle, mfa_key)
    if throttle is not None:
        session.delete(throttle)
    auth_session.mfa_verified = True
    record(session, "auth.mfa_passed", org_id=auth_session.org_id, actor_user_id=user.id,
           details={"method": method})


def _mfa_failed(session: Session, key: str, auth_session: AuthSession, user: User) -> None:
    row = _register_failure(session, key, MFA_FAILURES_BEFORE_LOCK, MFA_LOCK_BASE, MFA_LOCK_MAX)
    record(session, "auth.mfa_failed", org_id=auth_session.org_id, actor_user_id=user.id,
           outcome="failure")
    if row.failures == 0 and row.locked_until is not None:
        record(session, "auth.lock_started", org_id=auth_session.org_id, actor_user_id=user.id,
               outcome="denied", details={"scope": "mfa", "until": row.locked_until.isoformat()})


def regenerate_recovery_codes(session: Session, settings: Settings, *, actor: Actor) -> list[str]:
    user = session.get(User, actor.user_id)
    if user is None or user.mfa_enabled_at is None:
        raise Conflict(detail="MFA is not enabled")
    codes = _replace_recovery_codes(session, settings, user)
    _audit(session, "auth.recovery_codes_replaced", actor, resource=f"user:{user.id}")
    return codes


def reset_mfa(session: Session, *, user_id: str, actor: Actor) -> None:
    """An administrator clears a member's MFA (lost phone); they must enrol again."""
    user, membership = get_member(session, user_id)
    _only_here(session, user.id, membership.org_id, actor)
    user.mfa_secret = None
    user.mfa_enabled_at = None
    user.mfa_last_step = None
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)
    _end_sessions(session, user.id)
    _audit(session, "auth.mfa_reset", actor, resource=f"user:{user.id}")


# -- API tokens ----------------------------------------------------------------------------------


def create_token(
    session: Session, settings: Settings, *, name: str, role: str, days: int, actor: Actor
) -> tuple[str, ApiToken]:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput.on("name", "must be 1-100 characters")
    if not 1 <= days <= settings.api_token_max_days:
        raise InvalidInput.on("days", "must be 1-%(n)s", n=settings.api_token_max_days)
    org = get_organisation(session, actor.org_id)
    parsed = _role_for(org, role)
    # A token acts without SELF (it is nobody's account), so compare what it will really hold.
    granted = permissions(parsed, org_kind=OrgKind(org.kind), home=True) - {Perm.SELF}
    if not granted <= actor.perms:
        raise Forbidden(detail="role: a token cannot have more rights than its creator")
    expires_at = utcnow() + timedelta(days=days)
    if actor.token_id is not None:
        creator = session.get(ApiToken, actor.token_id)
        if creator is None or expires_at > creator.expires_at:
            raise InvalidInput.on("days", "must not outlast the token that creates it")
    token = security.new_token("vt")
    row = ApiToken(
        name=name,
        prefix=token[:10],
        token_hash=security.token_hash(token),
        role=parsed.value,
        created_by=actor.user_id,
        expires_at=expires_at,
        org_id=actor.org_id,
    )
    session.add(row)
    session.flush()
    _audit(session, "token.created", actor, resource=f"token:{row.id}",
           details={"new": {"role": parsed.value, "days": days}})
    return token, row


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))


def revoke_token(session: Session, *, token_id: str, actor: Actor) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.id == token_id))
    if row is None:
        raise NotFound()
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        _audit(session, "token.revoked", actor, resource=f"token:{row.id}")
    return row


def actor_for_token(session: Session, token: str) -> Actor | None:
    """Needs a system scope: the token says which organisation it belongs to."""
    # The token and its organisation in one query (every API request runs this).
    found = session.execute(
        select(ApiToken, Organisation).join(Organisation, Organisation.id == ApiToken.org_id)
        .where(ApiToken.token_hash == security.token_hash(token))
    ).first()
    now = utcnow()
    if found is None:
        return None
    row, org = found
    if row.revoked_at is not None or row.expires_at <= now:
        return None
    if org.disabled_at is not None:
        return None
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > SESSION_TOUCH_SECONDS:
        row.last_used_at = now
    kind = OrgKind(org.kind)
    role = Role(row.role)
    return Actor(org_id=org.id, org_kind=kind, role=role,
                 perms=permissions(role, org_kind=kind, home=True) - {Perm.SELF},
                 token_id=row.id, person_id=row.created_by)


def user_view(user: User, membership: Membership | None = None) -> dict[str, object]:
    return {
        "id": user.id,
        "email": str(user.email),
        "name": str(user.name),
        "role": membership.role if membership else None,
        "mfa_enabled": user.mfa_enabled_at is not None,
        "password_set": user.password_hash is not None,
        "disabled": user.disabled_at is not None,
        "created_at": user.created_at.isoformat(),
        "last_sign_in_at": user.last_sign_in_at.isoformat() if user.last_sign_in_at else None,
    }



# -- a customer's administrators, for other domains' notices -------------------------------------


def active_admins(session: Session, org_id: str) -> list[User]:
    """The active administrators of one customer organisation, for notices to it (the vendor's
    registry falls back to them when the customer named no contact). Reads the customer's
    memberships by its id on purpose, whatever the session's scope: callers check first that
    the reader may see that customer."""
    return active_admins_by_org(session, [org_id]).get(org_id, [])


def active_admins_by_org(session: Session, org_ids: list[str]) -> dict[str, list[User]]:
    """``active_admins`` for many customers at once (one query per 500 organisations)."""
    m = Membership.__table__
    found: dict[str, list[User]] = {}
    for start in range(0, len(org_ids), 500):
        rows = session.execute(
            select(m.c.org_id, User)
            .join(User, m.c.user_id == User.id)
            .where(m.c.org_id.in_(org_ids[start:start + 500]),
                   m.c.role == Role.TENANT_ADMIN.value, User.disabled_at.is_(None))
            .order_by(User.created_at)
            .execution_options(cross_tenant="customers' admins, for notices to the customers")
        )
        for org_id, user in rows:
            found.setdefault(org_id, []).append(user)
    return found


def active_users(session: Session) -> list[User]:
    """Every account holder who is not disabled, in every organisation (announcements that
    concern all of them, such as a new privacy statement), oldest first. Users carry no
    organisation, so this reads across organisations by nature: call it in a system scope."""
    scope = session.info.get("scope")
    if scope is None or not scope.is_system:
        raise RuntimeError("every account holder: system scope")
    return list(session.scalars(select(User).where(User.disabled_at.is_(None))
                                .order_by(User.created_at, User.id)))


def active_with_roles(session: Session, org_id: str, roles: tuple[str, ...]) -> list[User]:
    """The active members of one organisation holding one of ``roles`` (the vendor's staff who
    are told of a closed objection window, for instance), oldest account first."""
    m = Membership.__table__
    return list(session.scalars(
        select(User).join(m, m.c.user_id == User.id)
        .where(m.c.org_id == org_id, m.c.role.in_(roles), User.disabled_at.is_(None))
        .order_by(User.created_at, User.id)
        .execution_options(cross_tenant="one organisation's staff by role, for notices to them")))


def set_org_number(session: Session, *, org_id: str, org_number: str | None,
                   actor: Actor | None) -> Organisation:
    """Change an organisation's number (checked as ``check_org_number``); None clears it."""
    org = get_organisation(session, org_id)
    new = check_org_number(org_number) if org_number else None
    if new != org.org_number:
        old, org.org_number = org.org_number, new
        _audit(session, "org.number_changed", actor, org_id=org.id, resource=f"org:{org.id}",
               details={"old": {"org_number": old}, "new": {"org_number": new}})
    return org
