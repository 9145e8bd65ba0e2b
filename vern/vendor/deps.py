"""Who reaches the vendor registry over HTTP, and in which transaction.

Vendor staff read the registry (``vendor.read``) and change it (``vendor.manage``) in a
system-scoped transaction (``VendorDB``): a sub-processor change writes a notice into every
affected customer's rows at once. A customer's admins (``vendor.notices``) work in their own
tenant's scope (``TenantDB``), so a customer never reaches another's notices or objections.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from vern.accounts.deps import DatabaseDep, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.core.db import Scope

Reader = Annotated[Actor, Depends(require(Perm.VENDOR_READ))]
Manager = Annotated[Actor, Depends(require(Perm.VENDOR_MANAGE))]
Customer = Annotated[Actor, Depends(require(Perm.VENDOR_NOTICES))]


def vendor_db(_actor: Reader, db: DatabaseDep) -> Iterator[Session]:
    """The vendor staff's transaction: system scope (it reaches every customer's notices),
    only behind ``vendor.read``, which only the vendor's own staff hold."""
    with db.transaction(Scope.system("vendor registry: vendor staff")) as session:
        yield session


VendorDB = Annotated[Session, Depends(vendor_db, scope="function")]
