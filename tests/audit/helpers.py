"""Building audit trails for the tests."""

from __future__ import annotations

from typing import Any

from vern.audit.chain import AuditLog, canonical_details, now_us
from vern.core.config import AuditSettings, Settings
from vern.core.db import Database, Scope, new_id


def audit_log(db: Database, settings: Settings, **overrides: Any) -> AuditLog:
    values: dict[str, Any] = {"checkpoint_every": 50, "fsync_files": False}
    values.update(overrides)
    return AuditLog(db, settings, AuditSettings(**values))


def rows(log: AuditLog, db: Database, n: int, *, org_id: str | None = None,
         resource: str = "/console/rights", ip: str | None = "192.0.2.10") -> list[dict[str, Any]]:
    out = []
    with db.transaction(Scope.system("test rows")) as session:
        for i in range(n):
            ts = now_us()
            personal = log.sealer.personal_fields(
                session, ts=ts, actor_user_id=None, org_id=org_id, actor_ref=f"elev-{i % 3}",
                ip=ip, ua="Mozilla/5.0 (test)")
            out.append({
                "id": new_id(), "ts": ts, "source": "ingest", "org_id": org_id,
                "actor_user_id": None, "actor_token_id": None, "actor_ref": f"elev-{i % 3}",
                **personal, "action": "page.read", "resource": f"{resource}/{i % 5}",
                "outcome": "success", "request_id": None, "client_event_id": None,
                "details": canonical_details({"i": i}),
            })
    return out


def fill(log: AuditLog, db: Database, n: int, batch: int = 40, **kwargs: Any) -> None:
    done = 0
    while done < n:
        k = min(batch, n - done)
        log.append(rows(log, db, k, **kwargs))
        done += k
    log.seal_pending(force_checkpoint=True)
