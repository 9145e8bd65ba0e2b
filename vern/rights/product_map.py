"""The product data map as the rights domain reads it: the published one (a request that only
sets a flag needs none), and the product databases a restore covers."""

from __future__ import annotations

from sqlalchemy import select

from vern.core.db import Database, Scope
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.datamap.model import DataMap
from vern.datamap.service import current_map
from vern.rights.flags import FLAG_KINDS
from vern.rights.models import RightsRequest


def published_map(database: Database) -> DataMap:

    with database.transaction(Scope.system("read product map")) as session:
        found = current_map(session)
    if found is None:
        raise Conflict(detail="no product data map is published (vern datamap publish FILE)")
    return found


def published_map_or_none(database: Database) -> DataMap | None:
    try:
        return published_map(database)
    except Conflict:
        return None


def map_if_needed(database: Database, request_id: str) -> DataMap | None:
    with database.transaction(Scope.system("read rights request")) as session:
        kind = session.scalar(select(RightsRequest.kind).where(RightsRequest.id == request_id))
    if kind is None:
        raise NotFound(detail="no such request")
    return None if kind in FLAG_KINDS else published_map(database)


def replay_targets(database: Database, name: str) -> list[str]:
    """The product databases (``system.database``) a restore of ``name`` covers: a system of the
    published map (every database of it), or one database (``database`` or ``system.database``).
    Refused naming ``database`` when the map has neither."""
    with database.transaction(Scope.system("replay erasures")) as session:
        data_map = current_map(session)
    if data_map is None:
        raise InvalidInput.on("database", "no product data map is published")
    system = data_map.systems.get(name)
    if system is not None and system.databases:
        return [db.qualified for db in system.databases.values()]
    try:
        return [data_map.database(name).qualified]
    except KeyError:
        raise InvalidInput.on("database", "not a database of the published map") from None
