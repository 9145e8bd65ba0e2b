"""Small builders shared by the statistics tests."""

from __future__ import annotations

from vern.core.db import Database, Scope
from vern.stats import service

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def make_site(db: Database, org_id: str, domain: str = "www.fjellheim.example.com") -> str:
    with db.transaction(Scope.tenant(org_id)) as session:
        return service.create_site(session, org_id=org_id, name="Nettsiden", domain=domain,
                                   actor_user_id=None).id
