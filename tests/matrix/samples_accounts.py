"""Sample objects in tenant A for the accounts routes' path parameters."""

from __future__ import annotations

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.accounts import service
from vern.accounts.roles import Role
from vern.core.config import Settings
from vern.core.db import Database, Scope, new_id


def user_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.system("matrix sample user")) as session:
        user = service.create_user(session, settings, email=f"ola.{new_id()[-12:]}@fjellheim.example.com",
                                   name="Ola Nordmann", org_id=personas.tenant_a,
                                   role=Role.MEMBER.value, password=None, actor=None)
        return Sample(user.id, personas.tenant_a)


def token_in_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    from tests.conftest import make_api_token
    from vern.accounts.models import ApiToken
    from vern.accounts.security import token_hash

    token = make_api_token(db, personas.tenant_a, Role.MEMBER)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        row = session.query(ApiToken).filter(ApiToken.token_hash == token_hash(token)).one()
        return Sample(row.id, personas.tenant_a)


def tenant_a(db: Database, personas: Personas, settings: Settings) -> Sample:
    """A customer organisation's id in the vendor's routes: known to the vendor's staff, so it
    belongs to no tenant's data (the access rule alone decides)."""
    return Sample(personas.tenant_a, None)


SAMPLES = {"user_id": user_in_a, "token_id": token_in_a, "tenant_id": tenant_a}
