"""The posture page's gathering: every domain's open items, found like jobs are.

A domain that has something to show on ``/console/posture`` provides ``vern/<domain>/posture.py``
with ``items(session, now) -> list[dict]``; each dict has ``kind`` (str), ``title`` (str, already
in the reader's language), ``due_at`` (an aware datetime or None), ``overdue`` (bool) and
``href`` (str). The session has a system scope (the vendor's view across customers) and carries
the reader's language in ``session.info["locale"]`` ("nb" or "en"). A provider reaches its own
domain's data only through that domain's service functions.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

import vern

log = logging.getLogger("vern.incidents")
KEYS = ("kind", "title", "due_at", "overdue", "href")
Provider = Callable[[Session, datetime], list[dict[str, Any]]]


@lru_cache(maxsize=1)
def providers() -> tuple[tuple[str, Provider], ...]:
    """(domain, items) of every domain with a ``posture`` module, in name order."""
    found: list[tuple[str, Provider]] = []
    for mod in sorted(pkgutil.iter_modules(vern.__path__), key=lambda m: m.name):
        if not mod.ispkg:
            continue
        try:
            module = importlib.import_module(f"vern.{mod.name}.posture")
        except ModuleNotFoundError as exc:
            if exc.name != f"vern.{mod.name}.posture":
                raise
            continue
        items = getattr(module, "items", None)
        if callable(items):
            found.append((mod.name, items))
    return tuple(found)


def _checked(domain: str, item: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in KEYS if k not in item]
    if missing:
        raise TypeError(f"vern.{domain}.posture item without {missing}")
    return {**{k: item[k] for k in KEYS}, "domain": domain}


def gather(session: Session, now: datetime, locale: str) -> list[dict[str, Any]]:
    """Every provider's items, overdue first, then by due time (none last)."""
    session.info["locale"] = locale
    out: list[dict[str, Any]] = []
    for domain, items in providers():
        out += [_checked(domain, item) for item in items(session, now)]
    far = datetime.max.replace(tzinfo=now.tzinfo)
    out.sort(key=lambda i: (not i["overdue"], i["due_at"] or far, i["kind"], i["title"]))
    return out


def item_view(item: dict[str, Any]) -> dict[str, Any]:
    due = item["due_at"]
    return {**item, "due_at": due.isoformat() if due is not None else None}
