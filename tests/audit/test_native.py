"""The C loops (``vern.audit.native``) give byte for byte what the Python loops give.

The Python loops are the reference: the same drafts, ids and nonces go through both, and the
lines, rows, tree (frontier and tiles), drafts, ids and JSON must be equal. Without the C module
(no compiler or OpenSSL headers when installing) these tests are skipped with that reason, or
fail under ``VERN_REQUIRE_SERVICES=1``, where the module is expected to be built.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.audit.helpers import audit_log
from tests.conftest import make_settings
from tests.services import postgres_database, unavailable
from vern.audit import chain, ingest, native, verify_fast
from vern.audit.chain import (
    _PERSONAL_AD,
    _WATCH_MASK,
    Keys,
    canonical_details,
    datetime_to_us,
    ids_from,
    now_us,
    seal_records,
)
from vern.audit.ingest import IngestEvent
from vern.audit.logfile import file_for
from vern.audit.merkle import Frontier
from vern.audit.models import AuditEvent
from vern.db import Database, new_id


@pytest.fixture(scope="module")
def lib() -> ModuleType:
    if native.lib is None:
        unavailable("the audit trail's C module is not built (no compiler or OpenSSL headers "
                    "at install time) or VERN_AUDIT_NATIVE=0 is set")
    assert native.lib is not None
    return native.lib


any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                          exclude_categories=()), max_size=40)
maybe_text = st.one_of(st.none(), any_text)


@given(any_text)
def test_strings_are_quoted_as_json_quotes_them(lib: ModuleType, value: str) -> None:
    assert lib.quote(value) == json.encoder.encode_basestring_ascii(value)  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["", "plain ascii", 'q"uo\\te', "\x00\x1f\x7f", "\b\f\n\r\t",
                                   "æøå Ærlig", "\u2028", "\ud800", "a\udfffb", "\U0001f600",
                                   "\U0010ffff"])
def test_escapes_and_lone_surrogates_are_quoted_as_json_quotes_them(lib: ModuleType, value: str) -> None:
    assert lib.quote(value) == json.encoder.encode_basestring_ascii(value)  # type: ignore[attr-defined]


def _drafts(fields: list[tuple[Any, ...]], keyed: bool, gcm: bool = False) -> list[tuple[Any, ...]]:
    """Drafts under three keys; with ``gcm`` the C module's own AES-GCM for two of them (the
    third stays ``cryptography``'s, which the C loop calls)."""
    aeads: list[Any] = [AESGCM(bytes([k]) * 32) for k in range(3)]
    if gcm:
        assert native.lib is not None
        aeads[:2] = [native.lib.Gcm(bytes([k]) * 32) for k in range(2)]
    kids = [uuid.UUID(int=k + 1).bytes for k in range(3)]
    out = []
    for i, (org, actor, action, resource, request, details, sealed) in enumerate(fields):
        key = i % 3
        personal = None if sealed is None else (
            sealed.encode("utf-8", "surrogatepass") if keyed
            else bytes([i % 256]) + sealed.encode("utf-8", "surrogatepass"))
        draft: tuple[Any, ...] = (
            1_700_000_000_000_000 + i * 7919, "ingest", org, None, None, actor,
            None if personal is None else str(uuid.UUID(bytes=kids[key])), personal,
            None if i % 4 else "a" * 32, None if i % 5 else "b" * 32, action or "x.read",
            resource, "success", request, f"e{i}", details,
        )
        out.append((*draft, aeads[key], kids[key]) if keyed else draft)
    return out


draft_fields = st.lists(st.tuples(maybe_text, maybe_text, maybe_text, maybe_text, maybe_text,
                                  maybe_text, maybe_text), min_size=1, max_size=30)


def _both(lib: ModuleType, drafts: list[tuple[Any, ...]], keyed: bool, start: int,
          seed: Frontier, *, c_drafts: list[tuple[Any, ...]] | None = None) -> tuple[Any, Any]:
    """The Python loop over ``drafts`` and the C loop over ``c_drafts`` (the same by default)."""
    n = len(drafts)
    ids = ids_from("0190a1b2-0000-7", os.urandom(10 * n).hex())
    nonces = os.urandom(12 * n) if keyed else None
    out = []
    for use_c in (False, True):
        frontier = seed.copy()
        tiles: list[tuple[int, int, bytes]] = []
        lines: list[bytes] = []
        rows: list[tuple[Any, ...]] = []
        if use_c:
            seq = lib.append(drafts if c_drafts is None else c_drafts, ids, start, nonces,
                             _PERSONAL_AD, lines, rows)
            frontier.size = lib.hash_chunk(lines[0], frontier.heights, frontier.nodes,
                                           frontier.size, _WATCH_MASK, tiles)
            lines = lines[0].split(b"\n")
        else:
            seq = seal_records(drafts, ids, start, nonces, frontier, tiles, lines, rows.append)
        out.append((seq, lines, rows, frontier.size, frontier.heights, frontier.nodes, tiles))
    return out[0], out[1]


@settings(max_examples=60, deadline=None)
@given(draft_fields, st.booleans(), st.integers(min_value=0, max_value=600), st.booleans())
def test_the_c_append_makes_the_lines_rows_and_tree_the_python_loop_makes(
    lib: ModuleType, fields: list[tuple[Any, ...]], keyed: bool, start: int, gcm: bool,
) -> None:
    """The reference seals with ``cryptography``; the C loop, with ``gcm``, mostly with its
    own AES-GCM: the same nonces give the same bytes."""
    seed = Frontier()
    for i in range(start):
        seed.append(bytes([i % 256]) * 32)
    python, c = _both(lib, _drafts(fields, keyed), keyed, start, seed,
                      c_drafts=_drafts(fields, keyed, gcm=gcm))
    assert c == python


keys = st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@settings(max_examples=200, deadline=None)
@given(keys, st.binary(min_size=12, max_size=12), st.binary(max_size=600),
       st.one_of(st.none(), st.binary(max_size=100)))
def test_the_c_aes_gcm_is_cryptographys(
    lib: ModuleType, key: bytes, nonce: bytes, data: bytes, ad: bytes | None,
) -> None:
    gcm = lib.Gcm(key)
    sealed = gcm.encrypt(nonce, data, ad)
    assert sealed == AESGCM(key).encrypt(nonce, data, ad)
    assert AESGCM(key).decrypt(nonce, sealed, ad) == data
    assert gcm.encrypt(nonce, data, ad) == sealed  # the context is reset for every message


def test_the_c_aes_gcm_refuses_bad_keys_and_nonces(lib: ModuleType) -> None:
    with pytest.raises(ValueError, match="128, 192, or 256 bits"):
        lib.Gcm(b"k" * 20)
    with pytest.raises(ValueError, match="12 bytes"):
        lib.Gcm(b"k" * 32).encrypt(b"n" * 8, b"data", None)
    with pytest.raises(TypeError):
        lib.Gcm("not bytes")


def test_tiles_of_both_watched_heights_come_out_alike(lib: ModuleType) -> None:
    """65,536 + 300 records from position 100: tiles of height 8 and 16, in order."""
    drafts = _drafts([("org", f"elev-{i % 7}", "lesson.viewed", f"lesson:{i}", None,
                       '{"k":1}', "x") for i in range(65_836)], keyed=False)
    seed = Frontier()
    for i in range(100):
        seed.append(bytes([i]) * 32)
    python, c = _both(lib, drafts, False, 100, seed)
    assert c == python
    heights = {h for h, _, _ in c[6]}
    assert heights == {8, 16}


@pytest.mark.parametrize("gcm", [False, True])
def test_the_sealed_data_opens_with_the_key_and_its_column(lib: ModuleType, gcm: bool) -> None:
    aead = AESGCM(b"\x07" * 32)
    kid = uuid.UUID(int=9).bytes
    draft = (1, "ingest", None, None, None, "elev-1", str(uuid.UUID(bytes=kid)), b'{"ip":"192.0.2.1"}',
             None, None, "x.read", None, "success", None, None, None,
             lib.Gcm(b"\x07" * 32) if gcm else aead, kid)
    rows: list[tuple[Any, ...]] = []
    nonce = b"\x01" * 12
    lib.append([draft], ["id-1"], 0, nonce, _PERSONAL_AD, [], rows)
    blob = rows[0][9]
    assert blob[:1] == b"\x01" and blob[1:17] == kid and blob[17:29] == nonce
    assert aead.decrypt(nonce, blob[29:], _PERSONAL_AD + kid) == b'{"ip":"192.0.2.1"}'


@pytest.mark.parametrize(("index", "value", "field"), [
    (0, "1", "ts"), (0, True, "ts"), (10, 5, "action"), (11, b"r", "resource"),
    (15, {"a": 1}, "details"),
])
def test_a_draft_of_the_wrong_type_is_refused_naming_the_field(
    lib: ModuleType, index: int, value: Any, field: str,
) -> None:
    draft = list(_drafts([("o", "a", "x.read", "r", None, None, None)], keyed=False)[0])
    draft[index] = value
    rows: list[Any] = []
    with pytest.raises(TypeError, match=field):
        lib.append([tuple(draft)], ["id-1"], 0, None, _PERSONAL_AD, [], rows)
    assert rows == []


def test_ids_are_made_alike(lib: ModuleType) -> None:
    rnd = os.urandom(10 * 500).hex()
    assert lib.ids("0190a1b2-c3d4-7", rnd) == ids_from("0190a1b2-c3d4-7", rnd)
    for value in lib.ids("0190a1b2-c3d4-7", rnd)[:50]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


simple = st.one_of(st.none(), st.booleans(), st.integers(), any_text,
                   st.floats(allow_nan=True, allow_infinity=True))
details = st.one_of(
    st.none(),
    st.dictionaries(any_text, simple, max_size=6),
    st.dictionaries(any_text, st.lists(simple, max_size=3), max_size=3),  # nested: the fallback
    st.dictionaries(st.integers(), simple, max_size=3),  # keys not str: the fallback
)
times = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                 timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1),
                 timezones=st.sampled_from([timezone(timedelta(hours=2)),
                                            timezone(timedelta(hours=-11, minutes=-30))])),
)
events = st.lists(st.builds(
    lambda n, t, ip, ua, actor, name, det, res: IngestEvent.model_construct(
        id=f"e{n}", time=t, action="lesson.viewed", actor=actor, actor_name=name, resource=res,
        outcome="success", ip=ip, user_agent=ua, request_id=None, details=det),
    st.integers(0, 10**6), times, st.sampled_from([None, "", "192.0.2.1", "2001:db8::1"]),
    st.sampled_from([None, "", "Firefox/130.0"]), st.sampled_from([None, "", "elev-1", "elev-2"]),
    st.sampled_from([None, "Kari Nordmann"]), details, maybe_text,
), min_size=1, max_size=20)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events)
def test_the_c_drafts_are_the_python_drafts(
    lib: ModuleType, sqlite_db: Database, tmp_path: Path, evs: list[IngestEvent],
) -> None:
    log = audit_log(sqlite_db, make_settings(sqlite_db.url, tmp_path))
    anon = ("m", "2026-12")
    keys = Keys()
    for ev in evs:
        subject = ("a", "org-1", ev.actor) if ev.actor else anon
        keys.by_subject[subject] = (f"key-{subject}", AESGCM(b"\x01" * 32), b"k" * 16)
    python = list(ingest._drafts(log, "org-1", "tok-1", evs, keys, anon))
    c = lib.drafts(evs, "org-1", "tok-1", keys.by_subject, anon, keys.payloads, keys.payload,
                   log.sealer._ips, log.sealer.indexes, datetime_to_us, canonical_details)
    assert c == python
    for draft, ev in zip(c, evs, strict=True):
        assert type(draft[0]) is int and draft[0] == datetime_to_us(ev.time)


@settings(max_examples=80, deadline=None)
@given(events, st.booleans(), st.lists(st.integers(0, 4), min_size=20, max_size=20))
def test_the_c_scan_of_a_batch_is_the_python_scan(
    lib: ModuleType, evs: list[IngestEvent], clash: bool, numbers: list[int],
) -> None:
    """Distinct ids, the earliest time and the key subjects, with and without the C module
    (``clash``: ids drawn from five, so that some repeat)."""
    if clash:
        evs = [ev.model_copy(update={"id": f"e{n}"}) for ev, n in zip(evs, numbers, strict=False)]
    anon = ("m", "2026-12")
    c = ingest._scan(evs, "org-1", anon, 17)
    saved, native.lib = native.lib, None
    try:
        python = ingest._scan(evs, "org-1", anon, 17)
    finally:
        native.lib = saved
    assert c == python
    assert c[0] == (len({ev.id for ev in evs}) == len(evs))
    assert c[1] == min(ev.time for ev in evs)
    assert all(v == 17 for v in c[2].values())
    assert lib.scan([], "org-1", anon, 17) == (True, None, {})


def test_the_same_trail_is_written_with_and_without_the_c_loops(
    lib: ModuleType, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ingest through the C loops and one through the Python loops, with the same ids and
    nonces, on SQLite (``executemany``) and PostgreSQL (``COPY``): the same rows and the same
    record lines in the file, which verify."""
    from tests.conftest import _truncate_all
    from vern.audit.verify import verify
    from vern.crypto import KeyRing, install_keyring

    when = datetime.now(UTC) - timedelta(minutes=1)
    batch = [IngestEvent(id=f"e{i}", time=when + timedelta(microseconds=i), action="lesson.viewed",
                         actor=f"elev-{i % 4}", resource=f"lesson:{i}", ip=f"192.0.2.{i % 9 + 1}",
                         user_agent="Firefox/130.0", details={"i": i, "ok": i % 2 == 0})
             for i in range(300)]
    found = []
    for use_c in (True, False):
        if use_c or db.engine.dialect.name != "sqlite":
            trail = db
        else:
            trail = Database(f"sqlite:///{tmp_path / 'python.db'}")
            trail.create_all()
        settings_ = make_settings(trail.url, tmp_path / f"files-{use_c}")
        monkeypatch.setattr(chain.os, "urandom", random.Random(7).randbytes)
        monkeypatch.setattr(native, "lib", lib if use_c else None)
        install_keyring(KeyRing(trail.engine, settings_.master_key_bytes))
        ingest.ingest(trail, settings_, org_id="org-1", token_id=None, events=batch)
        with trail.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(select(*[AuditEvent.__table__.c[f]
                                                             for f in chain.FIELDS])
                                                   .order_by(AuditEvent.seq))]
        report = verify(trail, settings_)
        assert report.ok, report.problem
        lines = [line for line in file_for(settings_.audit_log_dir).read_bytes().splitlines()
                 if line.startswith(b"[")]
        found.append((rows, lines, [chain.open_personal(r[9]) for r in rows]))
        if trail is not db:
            trail.dispose()
        elif use_c and db.engine.dialect.name != "sqlite":
            _truncate_all(db)
    assert len(found[0][0]) == 300
    # Data keys (ids and keys) are made per trail: the sealed data is compared opened. The ids'
    # first 48 bits are the time of the append (the rest comes from the same random bytes).
    def same(values: Any) -> list[Any]:
        out = list(values)
        out[1] = out[1][14:]
        return out[:8] + out[10:]

    assert found[0][2] == found[1][2]
    assert found[0][2][0] == {"ip": "192.0.2.1", "ua": "Firefox/130.0"}
    pairs_c = zip(*found[0][:2], strict=True)
    pairs_p = zip(*found[1][:2], strict=True)
    for (row_c, line_c), (row_p, line_p) in zip(pairs_c, pairs_p, strict=True):
        assert same(row_c) == same(row_p)
        assert same(json.loads(line_c)) == same(json.loads(line_p)) == same(row_c)
        assert bytes(row_c[9]).hex() == json.loads(line_c)[9]
        assert bytes(row_p[9]).hex() == json.loads(line_p)[9]


def test_a_batch_with_a_bad_draft_stores_nothing(
    lib: ModuleType, sqlite_db: Database, tmp_path: Path,
) -> None:
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


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=80), st.integers(min_value=0, max_value=300),
       st.sets(st.integers(min_value=0, max_value=400)))
def test_verify_hashes_lines_as_the_frontier_does(
    lib: ModuleType, lines: list[bytes], start: int, wanted: set[int],
) -> None:
    from vern.audit.merkle import leaf_hash

    seed = Frontier()
    for i in range(start):
        seed.append(bytes([i % 256]) * 32)
    expected = seed.copy()
    at_expected = {}
    for line in lines:
        expected.append(leaf_hash(line))
        if expected.size in wanted:
            at_expected[expected.size] = list(expected.nodes)
    got = seed.copy()
    at: dict[int, list[bytes]] = {}
    assert lib.walk(lines, got.heights, got.nodes, start, wanted, at) == start + len(lines)
    assert (got.heights, got.nodes, at) == (expected.heights, expected.nodes, at_expected)


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


@settings(max_examples=60, deadline=None)
@given(stored_rows)
def test_verify_makes_the_canonical_line_of_a_row(lib: ModuleType, rows: list[tuple[Any, ...]]) -> None:
    assert lib.lines(rows) == [chain.canonical(r) for r in rows]
    assert verify_fast._canonical_lines(rows) == [chain.canonical(r) for r in rows]


def test_a_row_value_of_another_type_is_refused(lib: ModuleType) -> None:
    with pytest.raises(TypeError, match="column"):
        lib.lines([(1, "a", 1.5)])
    with pytest.raises(TypeError, match="sequence"):
        lib.lines([7])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored_rows)
def test_the_lines_sqlite_builds_are_the_canonical_lines(
    lib: ModuleType, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[Any, ...]]
) -> None:
    """SQLite's JSON of a row's columns, put together around the sealed bytes, is the row's
    canonical line - by the C joiner where every text is plain, by re-encoding where not."""
    con = sqlite3.connect(":memory:")
    con.execute(f"CREATE TABLE audit_events ({', '.join(chain.FIELDS)})")
    con.executemany(f"INSERT INTO audit_events VALUES ({', '.join('?' * len(chain.FIELDS))})",  # noqa: S608 - constants
                    rows)
    fetched = con.execute(verify_fast._select("sqlite") + "ORDER BY rowid").fetchall()
    expected = [chain.canonical(r) for r in rows]
    assert verify_fast._joined(fetched) == expected
    plain = lib.joined(fetched)
    assert plain is None or plain == expected
    if all(v.isascii() and v.isprintable() and "\\" not in v
           for r in rows for v in r if isinstance(v, str)):
        assert plain == expected  # the usual text takes the C path
    monkeypatch.setattr(native, "lib", None)
    assert verify_fast._joined(fetched) == expected


@pytest.fixture(scope="module")
def pg_copy() -> Iterator[Any]:
    """A PostgreSQL table of the audit trail's columns and types, for binary COPY output."""
    import psycopg

    with postgres_database("vern_test_copy") as url:
        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        types = {"seq": "bigint", "ts": "bigint", "personal": "bytea"}
        columns = ", ".join(f"{f} {types.get(f, 'text')}" for f in chain.FIELDS)
        conn.execute(f"CREATE TABLE audit_events ({columns})")
        conn.commit()
        try:
            yield conn
        finally:
            conn.close()


pg_text = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x10FFFF,
                                         exclude_categories=("Cs",)), max_size=40)
maybe_pg = st.one_of(st.none(), pg_text, st.sampled_from(["lesson:1", "elev-7", "ok"]))
pg_rows = st.lists(st.tuples(
    st.integers(min_value=-2**63, max_value=2**63 - 1), *[maybe_pg] * 7,
    st.one_of(st.none(), st.binary(max_size=80)), *[maybe_pg] * 8,
), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pg_rows, st.randoms(use_true_random=False))
def test_the_lines_of_a_binary_copy_are_the_canonical_lines(
    lib: ModuleType, pg_copy: Any, rows: list[tuple[Any, ...]], rnd: random.Random,
) -> None:
    """PostgreSQL's binary COPY of stored rows (any text, NULL anywhere, any bytes, the whole
    range of int8), parsed by ``copy_lines`` - also when the data arrives cut at any point -
    gives each row's canonical line."""
    conn = pg_copy
    conn.execute("DELETE FROM audit_events")
    with conn.cursor() as cur:
        # seq is the row's place (the order), ts the drawn integer; id any text.
        cur.executemany(f"INSERT INTO audit_events ({', '.join(chain.FIELDS)}) VALUES "  # noqa: S608 - constants
                        f"({', '.join(['%s'] * len(chain.FIELDS))})",
                        [(i, r[1] if r[1] is not None else "", r[0], *r[2:]) for i, r in enumerate(rows)])
    conn.commit()
    expected = [chain.canonical(r) for r in conn.execute(
        f"SELECT {', '.join(chain.FIELDS)} FROM audit_events ORDER BY seq").fetchall()]  # noqa: S608
    for chunk_bytes in (verify_fast.COPY_CHUNK, 1):  # at the end, and after every message
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(verify_fast, "COPY_CHUNK", chunk_bytes)
            got = [line for chunk in verify_fast._pg_copy_lines(conn, "ORDER BY seq")
                   for line in chunk]
        assert got == expected
    # The raw COPY data, fed in pieces: a row cut anywhere waits for the rest.
    with conn.cursor() as cur, cur.copy(
            f"COPY (SELECT {', '.join(chain.FIELDS)} FROM audit_events ORDER BY seq) "  # noqa: S608
            "TO STDOUT (FORMAT binary)") as copy:
        data = b"".join(bytes(d) for d in copy)
    conn.rollback()
    buf = bytearray()
    pos, lines, done = verify_fast._copy_header(bytearray(data)), [], False
    cuts = [*sorted(rnd.sample(range(len(data) + 1), min(6, len(data) + 1))), len(data)]
    sent = 0
    for cut in cuts:
        buf += data[sent:cut]
        sent = cut
        if len(buf) < pos:
            continue
        part, end, ended = lib.copy_lines(buf, pos, verify_fast._PG_TYPES)
        done = done or ended
        lines += part
        del buf[:end]
        pos = 0
    assert done and not buf and lines == expected


def test_a_copy_row_of_another_shape_is_refused(lib: ModuleType) -> None:
    with pytest.raises(ValueError, match="columns"):
        lib.copy_lines(b"\x00\x02\x00\x00\x00\x01a\x00\x00\x00\x01b", 0, b"t")
    with pytest.raises(ValueError, match="int8"):
        lib.copy_lines(b"\x00\x01\x00\x00\x00\x01a", 0, b"i")
    assert lib.copy_lines(b"\x00\x01\x00\x00\x00\x05ab", 0, b"t") == ([], 0, False)  # waits
    assert lib.copy_lines(b"\x00\x01\xff\xff\xff\xff\xff\xff", 0, b"t") == ([b"[null]"], 8, True)
