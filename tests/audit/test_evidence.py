"""Tampering the records and checkpoints alone cannot show: the newest records and checkpoint cut
from the database and the file (found against a witness), pending records inserted behind
Vern's back or with a time going backwards (quarantined, never sealed), and the C2SP note and
witness protocol formats."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, text, update

from tests.audit.helpers import audit_log, fill
from tests.audit.tlog_witness import Witness
from tests.conftest import Personas
from vern.audit import note, service, witness
from vern.audit.chain import FIELDS, AuditLog, now_us, pending_mac, pending_mac_key
from vern.audit.models import AuditCheckpoint, AuditEvent, AuditHead, AuditTile
from vern.audit.verify import verify
from vern.core.config import Settings, audit_settings
from vern.core.db import Database, Scope

# -- C2SP signed notes --------------------------------------------------------------------------

# The published example of golang.org/x/mod/sumdb/note (the signed-note specification's Go
# implementation): its signer key, verifier key and signed note. Ed25519 is deterministic, so
# the same seed and text must give the same bytes.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1" \
    "FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"


def test_a_note_signed_like_the_published_example_is_byte_for_byte_the_same() -> None:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])
    assert seed[0] == note.ED25519
    private = Ed25519PrivateKey.from_private_bytes(seed[1:])
    assert note.sign(GO_TEXT, "PeterNeumann", private) == GO_NOTE
    assert note.vkey("PeterNeumann", note.raw_public(private.public_key())) == GO_VKEY
    verifier = note.Verifier.parse(GO_VKEY)
    assert note.Note.parse(GO_NOTE).verified_by(verifier)
    with pytest.raises(note.NoteError):
        note.Note.parse(GO_NOTE.replace("cryptography", "cryptographY")).verified_by(verifier)
    with pytest.raises(note.NoteError):  # a key id that is not the key's
        note.Verifier.parse(GO_VKEY.replace("c74f20a3", "c74f20a4"))


def test_a_checkpoint_note_and_a_cosignature_round_trip() -> None:
    log_key, wit_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    root = bytes(range(32))
    text_ = note.checkpoint_text("vern.example.com/audit", 230, root)
    assert text_ == f"vern.example.com/audit\n230\n{base64.b64encode(root).decode()}\n"
    signed = note.sign(text_, "vern.example.com/audit", log_key)
    cosig = note.cosign(text_, "witness.example.com/w1", wit_key, 1_700_000_000)
    parsed = note.Note.parse(signed + cosig)
    assert note.parse_checkpoint(parsed.text) == note.CheckpointBody(
        "vern.example.com/audit", 230, root)
    log_v = note.Verifier.parse(note.vkey("vern.example.com/audit",
                                          note.raw_public(log_key.public_key())))
    wit_v = note.Verifier.parse(note.vkey("witness.example.com/w1",
                                          note.raw_public(wit_key.public_key()),
                                          note.COSIGNATURE_V1))
    assert parsed.verified_by(log_v) and parsed.verified_by(wit_v)
    # The key ids from first principles: SHA-256(name || 0x0A || type || key)[:4].
    import hashlib

    raw = note.raw_public(wit_key.public_key())
    assert wit_v.id == hashlib.sha256(b"witness.example.com/w1\n\x04" + raw).digest()[:4]
    assert parsed.signatures[1].body[:8] == (1_700_000_000).to_bytes(8, "big")
    # A cosignature over another size does not verify.
    other = note.Note.parse(signed.replace("\n230\n", "\n231\n") + cosig)
    with pytest.raises(note.NoteError):
        other.verified_by(wit_v)


# -- witnesses ----------------------------------------------------------------------------------


@pytest.fixture
def witness_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "witness"
    monkeypatch.setenv("VERN_AUDIT_WITNESS_DIR", str(path))
    audit_settings.cache_clear()
    yield path
    audit_settings.cache_clear()


def _files(settings: Settings) -> list[Path]:
    return sorted(Path(settings.audit_log_dir).glob("audit-*.jsonl"))


def _truncate(db: Database, settings: Settings, size: int) -> None:
    """Cut every record from ``size`` on and every later checkpoint, in the database and the
    file, leaving a trail that verifies on its own (what someone holding both would do)."""
    with db.engine.begin() as conn:
        cp = conn.execute(select(AuditCheckpoint).where(AuditCheckpoint.tree_size == size)).one()
        conn.execute(delete(AuditEvent).where(AuditEvent.seq >= size))
        conn.execute(delete(AuditCheckpoint).where(AuditCheckpoint.tree_size > size))
        for h in (8, 16):
            conn.execute(delete(AuditTile).where(AuditTile.height == h,
                                                 AuditTile.idx >= size >> h))
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(
            tree_size=size, frontier=cp.frontier, checkpoint_size=size, checkpoint_ts=cp.ts))
    path = _files(settings)[0]
    kept: list[str] = []
    for line in path.read_text().splitlines():
        kept.append(line)
        if line.startswith('{"checkpoint"') and json.loads(line)["checkpoint"]["size"] == size:
            break
    path.write_text("\n".join(kept) + "\n")


def test_cutting_the_newest_records_and_checkpoint_fails_against_the_witness(
    db: Database, settings: Settings, witness_dir: Path
) -> None:
    log = audit_log(db, settings, witness_dir=witness_dir)
    fill(log, db, 230)  # checkpoints at 40, 120, 200 and 230, each witnessed
    assert log.witness_error is None
    assert json.loads((witness_dir / "checkpoint.json").read_text())["size"] == 230
    assert [json.loads(line)["size"] for line in
            (witness_dir / "witnessed.jsonl").read_text().splitlines()] == [40, 120, 200, 230]
    report = verify(db, settings)
    assert report.ok, report.problem
    assert any("consistent with the checkpoint of 230 records witnessed" in n
               for n in report.notes)

    _truncate(db, settings, 200)
    audit_settings.cache_clear()
    with pytest.MonkeyPatch.context() as mp:  # without a witness the cut is invisible
        mp.delenv("VERN_AUDIT_WITNESS_DIR")
        blind = verify(db, settings)
        assert blind.ok and any("no witness directory" in n for n in blind.notes)
    audit_settings.cache_clear()
    problem = verify(db, settings).problem
    assert problem is not None
    assert "records 200..229 and the checkpoint at size 230 are missing" in problem.message

    # Appending on after the cut: the witness refuses the new tree, verify names the rewrite.
    fill(log, db, 120)
    assert log.witness_error is not None and "not consistent" in log.witness_error
    assert json.loads((witness_dir / "checkpoint.json").read_text())["size"] == 230
    problem = verify(db, settings).problem
    assert problem is not None and "not consistent with the checkpoint of 230" in problem.message


def test_a_tlog_witness_cosigns_each_checkpoint_and_refuses_a_cut_trail(
    db: Database, settings: Settings
) -> None:
    signer_log = audit_log(db, settings)
    origin = witness.origin(settings)
    w = Witness(signer_log.signer.vkey(origin))
    try:
        witness._url_sizes.clear()
        log = audit_log(db, settings, witness_url=w.url, witness_key=w.vkey)
        fill(log, db, 230)
        assert log.witness_error is None
        assert w.size == 230 and w.requests[0] == (0, 200)

        # A process that does not know the witness's size learns it from the 409.
        witness._url_sizes.clear()
        fill(log, db, 40)
        assert log.witness_error is None and w.size == 270
        assert (0, 409) in w.requests[-2:]

        # A witness whose key is not the one configured: the cosignature is refused.
        other = audit_log(db, settings, witness_url=w.url,
                          witness_key=note.vkey("witness.example.com/w1", bytes(32),
                                                note.COSIGNATURE_V1))
        fill(other, db, 40)
        assert other.witness_error is not None and "no cosignature" in other.witness_error

        _truncate(db, settings, 230)
        assert not log.witness_now()
        assert log.witness_error is not None
        assert "records 230..309 are missing" in log.witness_error
        fill(log, db, 120)
        assert log.witness_error is not None and "422" in log.witness_error
        assert w.size == 310
    finally:
        w.close()


# -- pending records ----------------------------------------------------------------------------


def _pending(db: Database, **changes: Any) -> str:
    """A record as ``service.record`` writes it (with its MAC), then ``changes`` applied."""
    with db.transaction(Scope.system("test")) as session:
        row = service.event_row(session, "elev.read", org_id=None, resource="elev:17")
    mac_again = changes.pop("mac_again", False)
    row.update(changes)
    if mac_again:  # a writer with the key whose clock is wrong
        row["mac"] = pending_mac(pending_mac_key(_secret()), [row[f] for f in FIELDS])
    with db.engine.begin() as conn:
        conn.execute(insert(AuditEvent).values(**row))
    return str(row["id"])


def _secret() -> bytes:
    from vern.core.config import get_settings

    return get_settings().secret_bytes


def _state(db: Database, rid: str) -> tuple[int | None, str | None]:
    with db.engine.connect() as conn:
        row = conn.execute(select(AuditEvent.seq, AuditEvent.quarantine)
                           .where(AuditEvent.id == rid)).one()
    return row.seq, row.quarantine


@pytest.fixture
def trail(db: Database, settings: Settings) -> AuditLog:
    log = audit_log(db, settings)
    fill(log, db, 60)
    return log


def test_a_record_inserted_without_a_mac_with_an_old_time_is_not_sealed_and_is_reported(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    old = now_us() - 3 * 86_400 * 1_000_000
    rid = _pending(db, ts=old, mac=None)
    result = trail.seal_pending(force_checkpoint=True)
    assert result.quarantined == 1
    seq, reason = _state(db, rid)
    assert seq is None and reason is not None and "no MAC" in reason
    problem = verify(db, settings).problem
    assert problem is not None and problem.record_id == rid and "quarantined" in problem.message
    assert verify(db, settings).pending == 0  # quarantined is not "waiting to be sealed"
    assert trail.seal_pending().quarantined == 0  # not looked at again


def test_a_pending_record_changed_after_it_was_written_is_not_sealed(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    good = _pending(db)
    changed = _pending(db, resource="elev:18")  # its MAC was made over elev:17
    trail.seal_pending(force_checkpoint=True)
    assert _state(db, good)[0] is not None
    seq, reason = _state(db, changed)
    assert seq is None and reason is not None and "does not verify" in reason


def test_a_time_going_backwards_beyond_the_skew_is_refused(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    first = _pending(db)
    trail.seal_pending()
    assert _state(db, first)[0] is not None
    with db.engine.connect() as conn:
        sealed_ts = conn.scalar(select(AuditHead.sealed_ts))
    assert sealed_ts is not None and sealed_ts > 0
    minute = 60 * 1_000_000
    within = _pending(db, ts=sealed_ts - 2 * minute, mac_again=True)  # skew is 5 minutes
    behind = _pending(db, ts=sealed_ts - 10 * minute, mac_again=True)
    ahead = _pending(db, ts=now_us() + 60 * minute, mac_again=True)
    result = trail.seal_pending(force_checkpoint=True)
    assert result.quarantined == 2
    assert _state(db, within)[0] is not None
    seq, reason = _state(db, behind)
    assert seq is None and reason is not None and "time goes backwards" in reason
    seq, reason = _state(db, ahead)
    assert seq is None and reason is not None and "future" in reason
    problem = verify(db, settings).problem
    assert problem is not None and "2 quarantined records" in problem.message


def test_records_of_a_callers_transaction_still_seal(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    with db.transaction(Scope.system("test")) as session:
        service.record(session, "samtykke.endret", org_id=None, details={"old": 1, "new": 2})
    result = trail.seal_pending(force_checkpoint=True)
    assert result.quarantined == 0 and result.last_seq == 60
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_events WHERE seq IS NULL")
                            ).scalar_one() == 0
    assert verify(db, settings).ok


# -- the API ------------------------------------------------------------------------------------


def test_the_api_serves_the_newest_checkpoint_as_a_signed_note(
    db: Database, settings: Settings, trail: AuditLog, personas: Personas, login: Any
) -> None:
    dave = login(personas.dave)
    meta = dave.get("/api/v1/audit/checkpoint").json()
    verifier = note.Verifier.parse(meta["verifier_key"])
    assert verifier.name == meta["origin"] == witness.origin(settings)
    for res in (dave.get("/api/v1/audit/checkpoint.note"),
                dave.get("/api/v1/audit/checkpoint", headers={"Accept": "text/plain"})):
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
        parsed = note.Note.parse(res.text)
        assert parsed.verified_by(verifier)
        body = note.parse_checkpoint(parsed.text)
        assert body.size == meta["checkpoint"]["tree_size"]
        assert body.root == base64.b64decode(meta["checkpoint"]["root"])
    # A checkpoint row changed in the database is never signed anew as a note.
    with db.engine.begin() as conn:
        conn.execute(update(AuditCheckpoint)
                     .where(AuditCheckpoint.tree_size == body.size)
                     .values(root=bytes(32)))
    res = dave.get("/api/v1/audit/checkpoint.note")
    assert res.status_code == 409 and res.headers["content-type"].startswith(
        "application/problem+json")
    assert dave.get("/api/v1/audit/checkpoint").json()["note"] is None


def test_a_quarantined_record_alerts_the_security_officer_once(
    db: Database, settings: Settings, personas: Personas
) -> None:
    from vern.audit import alerts
    from vern.notify.service import MemoryMailer, deliver_pending, install_mailer

    mailer = MemoryMailer()
    install_mailer(mailer)
    service.seal_now(db, settings)
    rid = _pending(db, mac=None)
    service.seal_now(db, settings)
    made = alerts.scan(db, settings)
    assert [(a.kind, a.subject) for a in made] == [("quarantined", rid)]
    assert alerts.scan(db, settings) == []  # not twice
    deliver_pending(db)
    mail = mailer.last_to(personas.dave.email)
    assert mail is not None and "quarantined" in mail.subject
