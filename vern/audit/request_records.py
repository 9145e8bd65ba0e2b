"""The records of HTTP requests: what the web middleware reports (``_Request``), the drafts the
background writer (``vern.audit.service.Writer``) appends for a batch of them, and the form in
which one the database refuses is set aside (``quarantined_record``, in the day's
``quarantine-*.jsonl`` file and ``write_quarantine``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vern.audit.canonical import canonical_details
from vern.audit.personal import Keys, Sealer, anon_key_subject, resolve_keys
from vern.core.db import Database
from vern.core.quarantine import storable


def outcome_of(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403):
        return "denied"
    if status < 500:
        return "failure"
    return "error"


@dataclass(frozen=True)
class _Request:
    """One HTTP request's record as the web middleware reports it, queued for the writer."""

    ts: int
    method: str
    path: str
    status: int
    actor_user_id: str | None
    actor_token_id: str | None
    org_id: str | None
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    duration_ms: float
    tags: dict[str, str] | None = None


def request_drafts(batch: list[_Request], sealer: Sealer, database: Database,
                   ) -> tuple[list[tuple[Any, ...]], Keys | None]:
    """Drafts for ``AuditLog.append_drafts``: the address and user agent are sealed under
    the user's key (the month's key for anonymous callers) under the append lock. Text is
    made storable here (``vern.core.quarantine.storable``: a NUL in a path is kept as ``%00``)."""
    if not batch:
        return [], None
    wanted = [(("u", r.actor_user_id) if r.actor_user_id else anon_key_subject(r.ts), r.ts)
              for r in batch if r.client_ip or r.user_agent]
    keys = resolve_keys(sealer, database, wanted)
    payload = keys.payload
    indexes = sealer.indexes
    clean = storable
    drafts = []
    for r in batch:
        plain = payload(r.client_ip, r.user_agent, None)
        if plain is None:
            subject = ip_index = net_index = None
        else:
            subject = ("u", r.actor_user_id) if r.actor_user_id else anon_key_subject(r.ts)
            ip_index, net_index = indexes(r.client_ip) if r.client_ip else (None, None)
        key_id, aead, kid = keys.for_subject(subject)
        drafts.append((
            r.ts, "request", r.org_id, r.actor_user_id, r.actor_token_id, None, key_id,
            plain, ip_index, net_index, "http.request", clean(r.path)[:200],
            outcome_of(r.status), clean(r.request_id) if r.request_id else None, None,
            canonical_details({"method": clean(r.method), "status": r.status,
                               "ms": r.duration_ms, **(r.tags or {})}),
            aead, kid,
        ))
    return drafts, keys


def quarantined_record(r: _Request, sealer: Sealer) -> dict[str, Any]:
    """What is kept of a request record the database refused: everything but the address and
    user agent (the address's blind index stands in for it)."""
    return {
        "ts": r.ts, "method": r.method, "path": r.path, "status": r.status,
        "actor_user_id": r.actor_user_id, "actor_token_id": r.actor_token_id,
        "org_id": r.org_id, "request_id": r.request_id, "ms": r.duration_ms,
        "ip_index": sealer.ip_index(r.client_ip) if r.client_ip else None,
    }


QUARANTINE_PREFIX = "quarantine-"


def quarantine_file(directory: Path) -> Path:
    """Today's file of quarantined request records (beside the trail's files, never read as
    part of the trail: its lines are not in the tree)."""
    return directory / f"{QUARANTINE_PREFIX}{time.strftime('%Y-%m-%d', time.gmtime())}.jsonl"
