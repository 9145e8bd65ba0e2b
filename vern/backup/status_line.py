"""The one line of backup state on every organisation's overview page (found by the accounts
pages through ``vern.core.discover``, so accounts need not import this domain)."""

from __future__ import annotations

from typing import Any

from vern.backup import service
from vern.core.db import Database


def line(database: Database) -> dict[str, Any]:
    return service.overview_line(database)
