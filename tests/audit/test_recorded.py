"""The trail's bytes do not change: the append loop, canonical JSON and ids give what recorded
vectors say, and a trail recorded by an earlier version still verifies.

``recorded/vectors-v1.json`` holds the lines, sealed data, tree (frontier, root, tiles) and
ids that the append's loop gave for fixed drafts, ids, keys and nonces (built below, the same way
they were built when recording), the canonical JSON of ``details`` and of stored rows.
``recorded/trail-v1.json`` and ``trail-v1.jsonl`` are a SQLite trail's audit tables and its log
file, written (ingest, append, checkpoint) with the test settings' keys.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from tests.audit.helpers import audit_log
from tests.conftest import make_settings, sqlite_database
from vern.audit import chain, ingest, verify_fast
from vern.audit.chain import (
    _PERSONAL_AD,
    TILE_HEIGHTS,
    canonical,
    canonical_details,
    ids_from,
    now_us,
    seal_records,
)
from vern.audit.ingest import IngestEvent
from vern.audit.logfile import file_for
from vern.audit.merkle import Frontier, leaf_hash, root_of
from vern.audit.models import AuditEvent
from vern.core.db import Database, new_id

HERE = Path(__file__).parent / "recorded"
VECTORS = json.loads((HERE / "vectors-v1.json").read_text())

TEXTS = [None, "", "elev-1", 'q"uo\\te', "\x00\x1f\x7f", "\b\f\n\r\t", "æøå Ærlig", "\u2028",
         "\ud800", "a\udfffb", "\U0001f600", "\U0010ffff", "lesson:42", "Kari Nordmann", "x" * 300]


def _drafts(n: int, keyed: bool) -> list[tuple[Any, ...]]:
    """The drafts the vectors were recorded for: every odd text somewhere, three keys."""
    aeads = [AESGCM(bytes([k]) * 32) for k in range(3)]
    kids = [uuid.UUID(int=k + 1).bytes for k in range(3)]
    out = []
    for i in range(n):
        org, actor, action, resource, request, details, sealed = (
            TEXTS[(i * 7 + k * 3) % len(TEXTS)] for k in range(7))
        key = i % 3
        personal = None if sealed is None else (
            sealed.encode("utf-8", "surrogatepass") if keyed
            else bytes([i % 256]) + sealed.encode("utf-8", "surrogatepass"))
        draft = (1_700_000_000_000_000 + i * 7919, "ingest", org, None, None, actor,
                 None if personal is None else str(uuid.UUID(bytes=kids[key])), personal,
                 None if i % 4 else "a" * 32, None if i % 5 else "b" * 32, action or "x.read",
                 resource, "success", request, f"e{i}", details)
        out.append((*draft, aeads[key], kids[key]) if keyed else draft)
    return out


def _sealed(case: dict[str, Any]) -> tuple[int, Frontier, list[Any], list[bytes], list[Any]]:
    n, keyed, start = case["n"], case["keyed"], case["start"]
    rnd = hashlib.sha256(b"ids%d" % n).digest() * ((10 * n) // 32 + 1)
    ids = ids_from("0190a1b2-c3d4-7", rnd[:10 * n].hex())
    nonces = ((hashlib.sha256(b"nonces").digest() * ((12 * n) // 32 + 1))[:12 * n]
              if keyed else None)
    frontier = Frontier()
    for i in range(start):
        frontier.append(bytes([i % 256]) * 32)
    tiles: list[tuple[int, int, bytes]] = []
    lines: list[bytes] = []
    rows: list[tuple[Any, ...]] = []
    seq = seal_records(_drafts(n, keyed), ids, start, nonces, frontier, tiles, lines, rows.append)
    return seq, frontier, tiles, lines, rows


@pytest.mark.parametrize("case", VECTORS["seal"], ids=lambda c: f"{c['n']}-keyed-{c['keyed']}")
def test_the_append_loop_gives_the_recorded_lines_sealed_data_and_tree(case: dict[str, Any]) -> None:
    seq, frontier, tiles, lines, rows = _sealed(case)
    assert seq == case["next"]
    if case["lines"] is not None:
        assert [line.decode("ascii") for line in lines] == case["lines"]
        assert [None if r[9] is None else bytes(r[9]).hex() for r in rows] == case["personal"]
    assert hashlib.sha256(b"\n".join(lines)).hexdigest() == case["lines_sha256"]
    assert (frontier.size, frontier.heights, [x.hex() for x in frontier.nodes]) == (
        case["frontier"]["size"], case["frontier"]["heights"], case["frontier"]["nodes"])
    assert frontier.root().hex() == case["root"]
    assert [[h, i, x.hex()] for h, i, x in tiles] == case["tiles"]
    # Every line is the canonical form of the row handed on, as verify reads it back.
    assert [canonical(r) for r in rows] == lines


def test_the_recorded_vectors_have_tiles_and_odd_text() -> None:
    """The vectors cover what they should: tiles, sealed and pre-sealed data, escapes."""
    assert any(c["tiles"] for c in VECTORS["seal"])
    small = [line for c in VECTORS["seal"] if c["lines"] for line in c["lines"]]
    assert any("\\ud800" in line for line in small) and any("\\u2028" in line for line in small)
    assert {c["keyed"] for c in VECTORS["seal"]} == {True, False}


@pytest.mark.parametrize(("given_", "expected"), VECTORS["details"])
def test_details_are_written_as_recorded(given_: str, expected: str) -> None:
    assert canonical_details(json.loads(given_)) == expected


@pytest.mark.parametrize(("row", "expected"), VECTORS["rows"])
def test_a_stored_row_has_the_recorded_canonical_line(row: list[Any], expected: str) -> None:
    values = [bytes.fromhex(v) if i == chain.PERSONAL and v else v for i, v in enumerate(row)]
    assert canonical(values) == expected.encode()
    assert verify_fast._canonical_lines([tuple(values)]) == [expected.encode()]


def test_ids_are_made_as_recorded() -> None:
    found = VECTORS["ids"]
    ids = ids_from(found["prefix"], found["rnd"])
    assert ids == found["ids"]
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                          exclude_categories=()), max_size=40)


@given(any_text)
def test_strings_are_quoted_as_json_dumps_quotes_them(value: str) -> None:
    assert chain._quote(value) == json.dumps(value)


def test_tiles_of_both_watched_heights_are_the_subtrees_of_the_leaves() -> None:
    """65,536 + 300 records from position 100: tiles of height 8 and 16, each the root of its
    aligned subtree of leaf hashes."""
    n, start = 65_836, 100
    drafts = [(1, "ingest", "org", None, None, f"elev-{i % 7}", None, None, None, None,
               "lesson.viewed", f"lesson:{i}", "success", None, None, '{"k":1}') for i in range(n)]
    leaves = [bytes([i % 256]) * 32 for i in range(start)]
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    tiles: list[tuple[int, int, bytes]] = []
    lines: list[bytes] = []
    seal_records(drafts, [f"id-{i}" for i in range(n)], start, None, frontier, tiles, lines,
                 lambda _row: None)
    leaves += [leaf_hash(line) for line in lines]
    assert {h for h, _, _ in tiles} == TILE_HEIGHTS
    for h, idx, node in tiles:
        assert node == root_of(leaves[idx << h:(idx + 1) << h])
    assert len(tiles) == len(leaves) // 256 + len(leaves) // 65_536 - start // 256


def test_the_sealed_data_opens_with_the_key_and_its_column() -> None:
    aead = AESGCM(b"\x07" * 32)
    kid = uuid.UUID(int=9).bytes
    draft = (1, "ingest", None, None, None, "elev-1", str(uuid.UUID(bytes=kid)),
             b'{"ip":"192.0.2.1"}', None, None, "x.read", None, "success", None, None, None,
             aead, kid)
    rows: list[tuple[Any, ...]] = []
    nonce = b"\x01" * 12
    seal_records([draft], ["id-1"], 0, nonce, Frontier(), [], [], rows.append)
    blob = rows[0][9]
    assert blob[:1] == b"\x01" and blob[1:17] == kid and blob[17:29] == nonce
    assert aead.decrypt(nonce, blob[29:], _PERSONAL_AD + kid) == b'{"ip":"192.0.2.1"}'


@pytest.mark.parametrize(("index", "value", "field"), [
    (0, "1", "ts"), (0, True, "ts"), (10, 5, "action"), (11, b"r", "resource"),
    (15, {"a": 1}, "details"), (5, 7, "actor_ref"),
])
def test_a_draft_of_the_wrong_type_is_refused_naming_the_field(
    index: int, value: Any, field: str,
) -> None:
    draft = list(_drafts(1, keyed=False)[0])
    draft[index] = value
    rows: list[Any] = []
    with pytest.raises(TypeError, match=f"draft 0: {field} must be"):
        seal_records([tuple(draft)], ["id-1"], 0, None, Frontier(), [], [], rows.append)
    assert rows == []


def test_a_batch_with_a_bad_draft_stores_nothing(sqlite_db: Database, tmp_path: Path) -> None:
    settings_ = make_settings(sqlite_db.url, tmp_path)
    log = audit_log(sqlite_db, settings_)
    good = {"id": new_id(), "ts": now_us(), "source": "ingest", "org_id": None,
            "actor_user_id": None, "actor_token_id": None, "actor_ref": "elev-1", "key_id": None,
            "personal": None, "ip_index": None, "net_index": None, "action": "x.read",
            "resource": "r", "outcome": "success", "request_id": None, "client_event_id": None,
            "details": None}
    log.append([dict(good)])
    before = file_for(settings_.audit_log_dir).read_bytes()
    bad = dict(good, id=new_id(), resource=42)
    with pytest.raises(TypeError, match="resource"):
        log.append([dict(good, id=new_id()) for _ in range(300)] + [bad])
    with sqlite_db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AuditEvent)) == 1
    assert file_for(settings_.audit_log_dir).read_bytes() == before


def _recorded_trail(tmp_path: Path) -> tuple[Database, Any]:
    """The recorded trail in a fresh SQLite database of today's schema, its file beside it."""
    from vern.core.crypto import KeyRing, install_keyring

    db = sqlite_database(tmp_path / "recorded.db")
    tables = json.loads((HERE / "trail-v1.json").read_text())
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_head"))
        for name, table in tables.items():
            cols = table["columns"]
            sql = (f"INSERT INTO {name} ({', '.join(cols)}) "  # noqa: S608 - recorded names
                   f"VALUES ({', '.join(':' + c for c in cols)})")
            rows = [{c: bytes.fromhex(v["hex"]) if isinstance(v, dict) else v
                     for c, v in zip(cols, row, strict=True)} for row in table["rows"]]
            if rows:
                conn.execute(text(sql), rows)
    settings_ = make_settings(db.url, tmp_path)
    settings_.audit_log_dir.mkdir(parents=True)
    shutil.copy(HERE / "trail-v1.jsonl", settings_.audit_log_dir / "audit-2026-12-06.jsonl")
    install_keyring(KeyRing(db.engine, settings_.master_key_bytes))
    return db, settings_


@pytest.mark.parametrize("fast", [True, False])
def test_a_trail_recorded_before_still_verifies(tmp_path: Path, fast: bool) -> None:
    from vern.audit.verify import verify

    db, settings_ = _recorded_trail(tmp_path)
    try:
        report = verify(db, settings_, fast=fast)
        assert report.ok, report.problem
        with db.engine.connect() as conn:
            sealed = conn.execute(select(AuditEvent.personal).where(
                AuditEvent.personal.is_not(None)).order_by(AuditEvent.seq).limit(3)).scalars()
            opened = [chain.open_personal(p) for p in sealed]
        assert opened and all(isinstance(o, dict) for o in opened)
    finally:
        db.dispose()


def test_a_change_to_the_recorded_trail_is_found(tmp_path: Path) -> None:
    from vern.audit.verify import verify

    db, settings_ = _recorded_trail(tmp_path)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET resource = 'lesson:99' WHERE seq = 17"))
        report = verify(db, settings_)
        assert not report.ok and "17" in str(report.problem)
    finally:
        db.dispose()


def test_new_records_append_to_the_recorded_trail_and_verify(tmp_path: Path) -> None:
    from vern.audit.verify import verify

    db, settings_ = _recorded_trail(tmp_path)
    try:
        when = datetime.now(UTC) - timedelta(minutes=1)
        batch = [IngestEvent(id=f"ny-{i}", time=when, action="lesson.viewed", actor="elev-2",
                             ip="192.0.2.7", details={"i": i}) for i in range(40)]
        assert ingest.ingest(db, settings_, org_id="org-fjellheim", token_id=None,
                             events=batch)["accepted"] == 40
        chain.log_for(db, settings_).seal_pending(force_checkpoint=True)
        report = verify(db, settings_)
        assert report.ok, report.problem
    finally:
        db.dispose()


# A stored record's columns, as a database gives them back: integers, text (any a database holds
# - no lone surrogates - also what JSON must escape), NULL, and the sealed bytes.
stored_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                             exclude_categories=("Cs",)), max_size=40)
maybe_stored = st.one_of(st.none(), stored_text, st.sampled_from(["lesson:1", "elev-7", "ok"]))
stored_rows = st.lists(st.tuples(
    st.integers(min_value=0, max_value=2**62), stored_text,
    st.integers(min_value=-2**62, max_value=2**62), *[maybe_stored] * 6,
    st.one_of(st.none(), st.binary(max_size=80)), *[maybe_stored] * 8,
), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored_rows)
def test_the_lines_sqlite_builds_are_the_canonical_lines(rows: list[tuple[Any, ...]]) -> None:
    """SQLite's JSON of a row's columns, put together around the sealed bytes, is the row's
    canonical line - as it is where every text is plain, re-encoded where not."""
    con = sqlite3.connect(":memory:")
    con.execute(f"CREATE TABLE audit_events ({', '.join(chain.FIELDS)})")
    con.executemany(f"INSERT INTO audit_events VALUES ({', '.join('?' * len(chain.FIELDS))})",  # noqa: S608 - constants
                    rows)
    fetched = con.execute(verify_fast._select("sqlite") + "ORDER BY rowid").fetchall()
    assert verify_fast._joined(fetched) == [chain.canonical(r) for r in rows]
