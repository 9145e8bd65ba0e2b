"""Sample objects in tenant A for the access routes' path parameters, and the helpers the access
tests share (actors as the services see them, an approved grant)."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Persona, Personas
from tests.matrix.samples import Sample
from vern.access import service
from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind, Role, permissions
from vern.core.config import Settings
from vern.core.db import Database, Scope, new_id, utcnow


def actor_of(persona: Persona, kind: OrgKind) -> accounts.Actor:
    """The actor a persona is in their own organisation."""
    return accounts.Actor(org_id=persona.org_id, org_kind=kind, role=persona.role,
                          perms=permissions(persona.role, org_kind=kind, home=True),
                          user_id=persona.user_id, person_id=persona.user_id)


def vendor_actor(db: Database, personas: Personas, settings: Settings) -> accounts.Actor:
    """A vendor support person of their own (so that no persona's grant list shows samples)."""
    with db.transaction(Scope.system("matrix sample vendor staff")) as session:
        user = accounts.create_user(session, settings,
                                    email=f"siri.{new_id()[-12:]}@solstrand.example.com",
                                    name="Siri Solberg", org_id=personas.vendor,
                                    role=Role.SUPPORT.value, password=None, actor=None)
        user_id = user.id
    return accounts.Actor(org_id=personas.vendor, org_kind=OrgKind.VENDOR, role=Role.SUPPORT,
                          perms=permissions(Role.SUPPORT, org_kind=OrgKind.VENDOR, home=True),
                          user_id=user_id, person_id=user_id)


def grant(db: Database, personas: Personas, staff: accounts.Actor, org_id: str, *,
          approve_by: Persona | None = None, hours: float = 2) -> str:
    """A grant ``staff`` asked ``org_id`` for (now, for ``hours``), approved by ``approve_by``."""
    with db.transaction(Scope.tenant(org_id)) as session:
        row = service.request_grant(session, actor=staff, org_id=org_id, purpose="support",
                                    reason="Feilsøking av innlogging, sak 4711",
                                    ends_at=utcnow() + timedelta(hours=hours))
        grant_id = row.id
    if approve_by is not None:
        with db.transaction(Scope.tenant(org_id)) as session:
            service.decide_grant(session, grant_id, approve=True,
                                 actor=actor_of(approve_by, OrgKind.TENANT))
    return grant_id


def access_grant_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A pending grant a vendor support person asked tenant A for."""
    return Sample(grant(db, personas, vendor_actor(db, personas, settings), personas.tenant_a),
                  personas.tenant_a)


def access_request_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A member of tenant A asking to become an administrator."""
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        user = accounts.create_user(session, settings,
                                    email=f"nils.{new_id()[-12:]}@fjellheim.example.com",
                                    name="Nils Nygård", org_id=personas.tenant_a,
                                    role=Role.MEMBER.value, password=None, actor=None)
        me = accounts.Actor(org_id=personas.tenant_a, org_kind=OrgKind.TENANT, role=Role.MEMBER,
                            perms=permissions(Role.MEMBER, org_kind=OrgKind.TENANT, home=True),
                            user_id=user.id, person_id=user.id)
        row = service.request_role(session, actor=me, role=Role.TENANT_ADMIN.value,
                                   need="Skal administrere brukere for avdelingen")
        return Sample(row.id, personas.tenant_a)


def customer_request_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A pending role request of tenant A, as the vendor's staff who administer customers decide
    it across customers: its organisation is found from the id, so the access rule alone
    decides (like ``tenant_id``)."""
    return Sample(access_request_in_a(db, personas, settings).value, None)


_LAST_REVIEW: dict[str, tuple[str, str]] = {}


def access_review_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    """An open review of tenant A listing (besides alice) a second administrator, whose item
    ``access_review_item_id`` names (the path's item belongs to the path's review)."""
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        other = accounts.create_user(session, settings,
                                     email=f"tone.{new_id()[-12:]}@fjellheim.example.com",
                                     name="Tone Tangen", org_id=personas.tenant_a,
                                     role=Role.TENANT_ADMIN.value, password=None, actor=None)
        review = service.open_review(session, actor=actor_of(personas.alice, OrgKind.TENANT))
        item = next(i for i in service.review_items(session, review.id) if i.user_id == other.id)
        _LAST_REVIEW[personas.tenant_a] = (review.id, item.id)
        return Sample(review.id, personas.tenant_a)


def access_review_item_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    if personas.tenant_a not in _LAST_REVIEW:
        access_review_in_a(db, personas, settings)
    return Sample(_LAST_REVIEW[personas.tenant_a][1], personas.tenant_a)


SAMPLES = {
    "access_grant_id": access_grant_in_a,
    "access_request_id": access_request_in_a,
    "customer_request_id": customer_request_in_a,
    "access_review_id": access_review_in_a,
    "access_review_item_id": access_review_item_in_a,
}
