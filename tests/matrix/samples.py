"""What a sample factory returns: the value for a path parameter and the organisation that owns
it (None when the value belongs to no tenant, e.g. a public slug)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    value: str
    org_id: str | None
