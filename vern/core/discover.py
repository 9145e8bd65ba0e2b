"""Discovery of the domains' conventional modules (``vern/<domain>/routes.py``, ``cli.py``,
``jobs.py``, ``demo.py``, ``models.py``).

A domain is a package directly under ``vern/``; the core, the application wiring and the data
folders are not domains and are never searched.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import vern

NOT_DOMAINS = frozenset({"core", "app", "migrations", "locale"})


def domain_names() -> list[str]:
    """Every domain package under ``vern/``, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules(vern.__path__)
                  if m.ispkg and m.name not in NOT_DOMAINS)


def domain_modules(name: str) -> list[ModuleType]:
    """``vern.<domain>.<name>`` of every domain that has one, in domain name order."""
    found = []
    for domain in domain_names():
        try:
            found.append(importlib.import_module(f"vern.{domain}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"vern.{domain}.{name}":
                raise
    return found
