"""People and their memberships: adding a person to an organisation (a privileged role waits for
a second person), roles, removal, and disabling, enabling and erasing an account - with the
guards that keep the vendor's security officer and a customer's administrator."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.accounts import security
from vern.accounts.actor import Actor, record_as
from vern.accounts.models import (
    AccountToken,
    ApiToken,
    AuthSession,
    Membership,
    Organisation,
    RecoveryCode,
    User,
)
from vern.accounts.orgs import get_organisation
from vern.accounts.roles import (
    MFA_REQUIRED,
    PRIVILEGED_ROLES,
    ROLE_LABELS,
    ROLES_FOR_KIND,
    OrgKind,
    Role,
    permissions,
)
from vern.accounts.sessions import end_user_sessions
from vern.core.config import Settings
from vern.core.crypto import PII, blind_index, keyring
from vern.core.db import utcnow
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from vern.core.i18n import N_, gettext
from vern.notify import service as notify

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def email_index(settings: Settings, email: str) -> str:
    return blind_index(settings.secret_bytes, email, "user-email")


def find_user_by_email(session: Session, settings: Settings, email: str) -> User | None:
    return session.scalar(select(User).where(User.email_index == email_index(settings, email)))


def check_email(email: str) -> str:
    email = email.strip()
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise InvalidInput.on("email", "is not a valid e-mail address")
    return email


def role_for(org: Organisation, role: str) -> Role:
    """``role`` parsed, refused unless it is a role in an organisation of ``org``'s kind."""
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
    email = check_email(email)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput.on("name", "must be 1-200 characters")
    org = get_organisation(session, org_id)
    parsed_role = role_for(org, role)
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
        _add_existing(session, user, org, held)
    else:
        user = _new_user(session, settings, email=email, name=name, password=password)
    if held is not None:
        session.add(Membership(user_id=user.id, org_id=org.id, role=held.value))
        record_as(session, "membership.created", actor, org_id=org.id, resource=f"user:{user.id}",
                  details={"new": {"role": held.value}}
                  | ({"waiting": {"role": parsed_role.value}} if waits else {}))
    else:
        record_as(session, "membership.waiting", actor, org_id=org.id, resource=f"user:{user.id}",
                  details={"waiting": {"role": parsed_role.value}})
    return user


def _add_existing(session: Session, user: User, org: Organisation, held: Role | None) -> None:
    """An account that exists already joins ``org``: refused if it is a member there; else the
    person is told by mail (once they hold a role, not while it waits)."""
    here = session.scalar(select(Membership.id).where(
        Membership.user_id == user.id, Membership.org_id == org.id))
    if here is not None:
        raise Conflict(detail="email: already a member of this organisation",
                       errors=[InvalidInput.on("email", "already a member").errors[0]])
    if held is not None:
        tell_added(session, user, org, held)


def _new_user(session: Session, settings: Settings, *, email: str, name: str,
              password: str | None) -> User:
    """A new account with its own data key; without a password it cannot sign in yet."""
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
    parsed = role_for(org, role)
    if parsed not in PRIVILEGED_ROLES:
        return False
    m, u = Membership.__table__, User.__table__
    approvers = session.scalar(
        select(func.count()).select_from(m.join(u, u.c.id == m.c.user_id))
        .where(m.c.org_id == org.id, m.c.role.in_([r.value for r in PRIVILEGED_ROLES]),
               u.c.disabled_at.is_(None))
        .execution_options(cross_tenant="who could approve a privileged role")) or 0
    return approvers > 0


def tell_added(session: Session, user: User, org: Organisation, role: Role) -> None:
    """Mail a person with an account already that ``org`` made them a member (``role``)."""
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
    parsed = role_for(org, role)
    if session.get(User, user_id) is None:
        raise NotFound()
    existing = session.scalar(
        select(Membership).where(Membership.user_id == user_id, Membership.org_id == org_id)
    )
    if existing is not None:
        raise Conflict(detail="user is already a member of this organisation")
    membership = Membership(user_id=user_id, org_id=org_id, role=parsed.value)
    session.add(membership)
    record_as(session, "membership.created", actor, org_id=org_id, resource=f"user:{user_id}",
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


def list_members(session: Session, *, roles: Collection[Role] | None = None,
                 enabled_only: bool = False) -> list[tuple[User, Membership]]:
    """Users of the session's current organisation (the tenant scope filters memberships); only
    those holding one of ``roles`` when given, only accounts not disabled with ``enabled_only``.
    The filters run in the database: only the rows asked for are read and decrypted."""
    query = select(User, Membership).join(Membership, Membership.user_id == User.id)
    if roles is not None:
        query = query.where(Membership.role.in_([role.value for role in roles]))
    if enabled_only:
        query = query.where(User.disabled_at.is_(None))
    rows = session.execute(query.order_by(Membership.created_at))
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
    parsed = role_for(org, role)
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
        end_user_sessions(session, user.id)  # must enrol MFA at next sign-in
    details: dict[str, object] = {"old": {"role": old}, "new": {"role": parsed.value}}
    if approved_by is not None:
        details["approved_by"] = approved_by
    record_as(session, "membership.role_changed", actor, resource=f"user:{user.id}", details=details)
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
            record_as(session, "membership.role_changed", actor, resource=f"user:{user.id}",
                      details={"old": {"role": old}, "new": {"role": Role.MEMBER.value}})
    else:
        remove_member(session, user_id=user.id, actor=actor)
    for token in session.scalars(select(ApiToken).where(
            ApiToken.created_by == user.id, ApiToken.revoked_at.is_(None),
            ApiToken.role.in_([r.value for r in PRIVILEGED_ROLES]))):
        token.revoked_at = utcnow()
        record_as(session, "token.revoked", actor, resource=f"token:{token.id}",
                  details={"reason": "access review"})
    return old


def remove_member(session: Session, *, user_id: str, actor: Actor) -> None:
    _user, membership = get_member(session, user_id)
    _guard_last_security_officer(session, membership)
    session.delete(membership)
    record_as(session, "membership.removed", actor, resource=f"user:{user_id}",
              details={"old": {"role": membership.role}})


def all_memberships(session: Session, user_id: str) -> list[tuple[str, str]]:
    """(org_id, role) of every membership of a user, across organisations on purpose: it reads
    the table, not the ORM entity, so a tenant scope does not hide the others. Disabling an
    account is global, so it must see what the account is used for elsewhere."""
    table = Membership.__table__
    rows = session.execute(select(table.c.org_id, table.c.role).where(table.c.user_id == user_id)
                           .execution_options(cross_tenant="an account's every membership"))
    return [(row.org_id, row.role) for row in rows]


def _others_with_role(session: Session, org_id: str, role: Role, excluding_user: str,
                      why: str) -> int:
    """Active members of ``org_id`` holding ``role``, other than ``excluding_user`` (any scope:
    ``why`` says why the count reads across organisations)."""
    m, u = Membership.__table__, User.__table__
    return session.scalar(
        select(func.count())
        .select_from(m.join(u, u.c.id == m.c.user_id))
        .where(m.c.org_id == org_id, m.c.role == role.value,
               m.c.user_id != excluding_user, u.c.disabled_at.is_(None))
        .execution_options(cross_tenant=why)
    ) or 0


def _officers_left_anywhere(session: Session, org_id: str, excluding_user: str) -> int:
    return _others_with_role(session, org_id, Role.SECURITY_OFFICER, excluding_user,
                             "the vendor keeps a security officer")


def only_here(
    session: Session, user_id: str, org_id: str, actor: Actor | None
) -> list[tuple[str, str]]:
    """Account-wide changes (disable, enable, MFA reset) made by an organisation need the
    account to be used in that organisation alone; the operator's CLI (no actor) may."""
    everywhere = all_memberships(session, user_id)
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
    everywhere = only_here(session, user.id, membership.org_id, actor)
    for org_id, role in everywhere:
        if role == Role.SECURITY_OFFICER.value and not _officers_left_anywhere(
            session, org_id, user.id
        ):
            raise Conflict(detail="role: the vendor must always have a security officer; "
                                  "appoint another first")
    user.disabled_at = utcnow()
    end_user_sessions(session, user.id)
    record_as(session, "user.disabled", actor, org_id=membership.org_id, resource=f"user:{user.id}",
              details={"old": {"disabled": False}, "new": {"disabled": True}})
    return user


def _admins_left_anywhere(session: Session, org_id: str, excluding_user: str) -> int:
    return _others_with_role(session, org_id, Role.TENANT_ADMIN, excluding_user,
                             "an organisation keeps an administrator")


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
    everywhere = only_here(session, user.id, membership.org_id, actor)
    for org_id, role in everywhere:
        if role == Role.SECURITY_OFFICER.value and not _officers_left_anywhere(
                session, org_id, user.id):
            raise Conflict(detail="role: the vendor must always have a security officer; "
                                  "appoint another first")
        if (role == Role.TENANT_ADMIN.value and org_id != org_ending
                and not _admins_left_anywhere(session, org_id, user.id)):
            raise Conflict(detail="role: the organisation must always have an administrator; "
                                  "appoint another first")
    end_user_sessions(session, user.id)
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
    record_as(session, "user.erased", actor, org_id=membership.org_id, resource=f"user:{user.id}",
              details={"old": {"memberships": len(everywhere)}, "new": {"erased": True}})
    return user


def enable_user(session: Session, *, user_id: str, actor: Actor | None) -> User:
    user, membership = get_member(session, user_id)
    if user.disabled_at is None:
        return user
    only_here(session, user.id, membership.org_id, actor)
    user.disabled_at = None
    record_as(session, "user.enabled", actor, org_id=membership.org_id, resource=f"user:{user.id}",
              details={"old": {"disabled": True}, "new": {"disabled": False}})
    return user
