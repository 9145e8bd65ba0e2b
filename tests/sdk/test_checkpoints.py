"""The customer's side: the newest checkpoint kept in a file of their own, and each new one
checked against it with a consistency proof from Vern's API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update
from starlette.testclient import TestClient

from tests.audit.helpers import audit_log, fill
from tests.conftest import Personas
from vern.accounts.roles import Role
from vern.audit import service
from vern.audit.chain import AuditLog
from vern.audit.models import AuditCheckpoint, AuditEvent, AuditHead, AuditTile
from vern.core.config import Settings
from vern.core.db import Database
from vern.sdk.checkpoints import CheckpointKeeper, Fetch, TrailError


def via(client: TestClient) -> Fetch:
    def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        res = client.get(url.removeprefix("http://vern.test"), headers=headers)
        return res.status_code, res.content

    return get


def _wipe(db: Database) -> None:
    """Throw the whole trail away (what someone rebuilding it would do first)."""
    with db.engine.begin() as conn:
        for table in (AuditEvent, AuditCheckpoint, AuditTile):
            conn.execute(delete(table))
        conn.execute(update(AuditHead).values(tree_size=0, frontier=b"", checkpoint_size=0,
                                              checkpoint_ts=0, sealed_ts=0))


@pytest.fixture
def keeper(db: Database, client: TestClient, personas: Personas, api_token: Any,
           tmp_path: Path) -> CheckpointKeeper:
    # Checkpoints are the whole trail's: the vendor's auditors (audit.read_all) keep them; an
    # outside auditor gets such a token.
    token = api_token(personas.vendor, Role.SECURITY_OFFICER)
    return CheckpointKeeper("http://vern.test", token, tmp_path / "revisor" / "checkpoint.json",
                            fetch=via(client))


@pytest.fixture
def trail(db: Database, settings: Settings) -> AuditLog:
    log = audit_log(db, settings)
    fill(log, db, 230)
    return log


def test_the_kept_checkpoint_moves_on_with_a_verified_consistency_proof(
    db: Database, keeper: CheckpointKeeper, trail: AuditLog
) -> None:
    first = keeper.check()
    assert first["tree_size"] >= 230  # and the requests of the app's own writer
    assert keeper.kept()["checkpoint"] == first  # type: ignore[index]
    fill(trail, db, 90)
    second = keeper.check()
    assert second["tree_size"] >= 320
    assert keeper.kept()["checkpoint"]["tree_size"] == second["tree_size"]  # type: ignore[index]
    assert keeper.check()["tree_size"] >= second["tree_size"]  # same size or larger: fine


def test_a_rewritten_tree_is_detected_and_the_kept_checkpoint_stays(
    db: Database, settings: Settings, keeper: CheckpointKeeper, trail: AuditLog
) -> None:
    size = keeper.check()["tree_size"]
    kept = keeper.path.read_text()
    service.flush_writer()
    _wipe(db)  # rebuilt with other records, signed with the same key, to the same size
    log = audit_log(db, settings)
    fill(log, db, size)
    with pytest.raises(TrailError, match="another root"):
        keeper.check()
    fill(log, db, 90)
    with pytest.raises(TrailError, match="rewritten"):
        keeper.check()
    assert keeper.path.read_text() == kept


def test_a_truncated_tree_is_detected(
    db: Database, settings: Settings, keeper: CheckpointKeeper, trail: AuditLog
) -> None:
    size = keeper.check()["tree_size"]
    service.flush_writer()
    _wipe(db)
    fill(audit_log(db, settings), db, 120)
    with pytest.raises(TrailError, match=rf"records 120\.\.{size - 1} are missing"):
        keeper.check()


def test_a_checkpoint_not_signed_by_the_pinned_key_is_refused(
    db: Database, keeper: CheckpointKeeper, trail: AuditLog
) -> None:
    keeper.public_key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    with pytest.raises(TrailError, match="pinned public key"):
        keeper.check()
    assert keeper.kept() is None
    keeper.path.parent.mkdir(parents=True, exist_ok=True)
    keeper.path.write_text("not json")
    with pytest.raises(TrailError, match="cannot read"):
        keeper.check()
    assert keeper.path.read_text() == "not json"
