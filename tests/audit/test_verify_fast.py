"""The fast pass of ``vern audit verify``: it accepts every intact trail (so the exact pass is only
needed when something is wrong) and gives up on every kind of tampering, in parallel blocks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete, text

from tests.audit.helpers import audit_log, fill, rows
from vern.audit import retention, verify_fast
from vern.audit.chain import AuditLog, canonical
from vern.audit.models import AuditEvent
from vern.audit.verify import _fast, verify
from vern.core.config import Settings
from vern.core.db import Database, utcnow


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 16 records per task and a pool from 2 tasks on: every test crosses block boundaries and
    # checkpoints inside blocks, in worker processes.
    monkeypatch.setattr(verify_fast, "BLOCK_BITS", 4)
    monkeypatch.setattr(verify_fast, "MIN_PARALLEL_BLOCKS", 2)


@pytest.fixture
def trail(db: Database, settings: Settings) -> AuditLog:
    log = audit_log(db, settings, checkpoint_every=37)
    fill(log, db, 150)
    fill(log, db, 30, resource='/elevar/Åse Ødegård "x"\\ \u2028\x7f\x01\t')
    fill(log, db, 41)
    return log


def _files(settings: Settings) -> list[Path]:
    return sorted(Path(settings.audit_log_dir).glob("audit-*.jsonl"))


def test_an_intact_trail_passes_the_fast_pass_with_the_exact_figures(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    fast = _fast(db, settings, True)
    assert fast is not None
    exact = verify(db, settings, fast=False)
    assert exact.ok, exact.problem
    assert (fast.checked, fast.checkpoints, fast.unsigned, fast.tree_size) == (
        exact.checked, exact.checkpoints, exact.unsigned, exact.tree_size)
    assert fast.tree_size == fast.checked == 221 and fast.unsigned == 0
    assert _fast(db, settings, False) is not None


def test_the_fast_pass_starts_from_the_retention_anchor(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    later = utcnow() + timedelta(days=settings.audit_retention_days, seconds=1)
    fill(trail, db, 20)
    result = retention.expire(db, settings, now=later)
    assert result.boundary > 0
    assert _fast(db, settings, True) is not None
    report = verify(db, settings)
    assert report.ok and report.start == result.boundary


def _db(sql: str) -> Callable[[Database, Settings], None]:
    def change(db: Database, settings: Settings) -> None:
        with db.engine.begin() as conn:
            for statement in sql.split(";"):
                conn.execute(text(statement))
    return change


def _file(change: Callable[[list[str]], list[str]]) -> Callable[[Database, Settings], None]:
    def apply(db: Database, settings: Settings) -> None:
        path = _files(settings)[0]
        path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")
    return apply


def _swap(lines: list[str]) -> list[str]:
    i = next(n for n, ln in enumerate(lines) if ln.startswith("[20,"))
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return lines


TAMPERING = {
    "db changed": _db("UPDATE audit_events SET outcome = 'failure' WHERE seq = 77"),
    "db changed in the unsigned tail": _db("UPDATE audit_events SET outcome = 'x' WHERE seq = 220"),
    "db removed": _db("DELETE FROM audit_events WHERE seq = 120"),
    # SQLite keeps text in a BLOB column as text: a value of another type than the column's.
    "db sealed data replaced by text": _db("UPDATE audit_events SET personal = 'abc' WHERE seq = 60"),
    "db swapped": _db("UPDATE audit_events SET seq = -1 WHERE seq = 30;"
                      "UPDATE audit_events SET seq = 30 WHERE seq = 31;"
                      "UPDATE audit_events SET seq = 31 WHERE seq = -1"),
    "db inserted beyond the tree": _db("UPDATE audit_events SET seq = 5000 WHERE seq = 220"),
    "checkpoint removed from the db": _db(
        "DELETE FROM audit_checkpoints WHERE tree_size = (SELECT min(tree_size) FROM "
        "audit_checkpoints)"),
    "file changed": _file(lambda ls: [ln.replace("page.read", "page.none") if ln.startswith("[42,")
                                      else ln for ln in ls]),
    "file line removed": _file(lambda ls: [ln for ln in ls if not ln.startswith("[99,")]),
    "file lines swapped": _file(_swap),
    "file line duplicated at the end": _file(lambda ls: [*ls, ls[0]]),
    "file line forged after the end": _file(lambda ls: [*ls, "[221" + ls[0][2:]]),
    "file checkpoint changed": _file(lambda ls: [ln.replace('"ts":', '"ts":1', 1)
                                                 if ln.startswith("{") else ln for ln in ls]),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_the_fast_pass_gives_up_on_every_kind_of_tampering(
    db: Database, settings: Settings, trail: AuditLog, how: str
) -> None:
    TAMPERING[how](db, settings)
    assert _fast(db, settings, True) is None
    assert verify(db, settings).problem is not None


@pytest.mark.parametrize("pg_raw", [True, False])
@hsettings(max_examples=30, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=4))
def test_the_databases_own_json_line_is_the_canonical_line_or_is_made_so(
    db: Database, settings: Settings, pg_raw: bool, texts: list[str]
) -> None:
    verify_fast.PG_RAW = pg_raw  # PostgreSQL: columns encoded here, or the server's JSON text
    try:
        _check_lines(db, settings, texts)
    finally:
        verify_fast.PG_RAW = True


def _check_lines(db: Database, settings: Settings, texts: list[str]) -> None:
    log = audit_log(db, settings)
    batch = rows(log, db, len(texts))
    for r, value in zip(batch, texts, strict=True):
        clean = value.replace("\x00", "")  # PostgreSQL text cannot hold NUL
        r["resource"] = clean[:200]
        r["actor_ref"] = clean[:128] or None
        r["details"] = '{"v":' + f'"{clean.encode("unicode_escape").decode()}"' + "}"
    result = log.append(batch)
    lines = [line for chunk in verify_fast._lines(db.url, result.first_seq, result.last_seq + 1)
             for line in chunk]
    with db.engine.connect() as conn:
        from vern.audit.chain import FIELDS

        stored = conn.execute(text(
            f"SELECT {', '.join(FIELDS)} FROM audit_events WHERE seq >= :a ORDER BY seq"),  # noqa: S608
            {"a": result.first_seq}).all()
    assert lines == [canonical(r) for r in stored]
    with db.engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq >= result.first_seq))


def _line_by_line(paths: list[str], firsts: list[int], lo: int) -> list[tuple[str, bytes]]:
    """The files read line by line from the one that holds record ``lo`` (small files: the
    reader starts at their beginning): empty lines and records before ``lo`` left out,
    checkpoint lines kept."""
    out = []
    for path in paths[max(sum(1 for f in firsts if f <= lo) - 1, 0):]:
        for raw in Path(path).read_bytes().split(b"\n"):
            if raw and not (raw[:1] == b"[" and int(raw[1:raw.index(b",")]) < lo):
                out.append((Path(path).name, raw))
    return out


@hsettings(max_examples=150, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(["rec", "rec", "rec", "cp", "empty"]), max_size=30),
                min_size=1, max_size=3),
       st.integers(min_value=0, max_value=60), st.lists(st.integers(1, 9), min_size=1, max_size=8),
       st.booleans())
def test_the_block_reader_gives_the_lines_the_line_reader_gives(
    tmp_path_factory: pytest.TempPathFactory, layout: list[list[str]], lo: int, takes: list[int],
    newline_at_end: bool,
) -> None:
    """The block reader (``_Cursor``) against reading the files line by line: the same lines in
    the same order, checkpoint lines at the same places, whatever the chunk sizes."""
    directory = tmp_path_factory.mktemp("files")
    seq = 0
    paths, firsts = [], []
    for n, kinds in enumerate(layout):
        lines = []
        first = -1
        for kind in kinds:
            if kind == "rec":
                lines.append(f'[{seq},"r{seq}"]')
                first = seq if first < 0 else first
                seq += 1
            elif kind == "cp":
                lines.append(f'{{"checkpoint":{{"size":{seq}}}}}')
            else:
                lines.append("")
        path = directory / f"audit-2026-01-0{n + 1}.jsonl"
        path.write_bytes(("\n".join(lines) + ("\n" if newline_at_end else "")).encode())
        if first >= 0:
            paths.append(str(path))
            firsts.append(first)
    if not paths:
        return
    files = verify_fast._Files(paths, firsts)
    expected = _line_by_line(paths, firsts, lo)
    cursor = verify_fast._Cursor(files, lo)
    got: list[tuple[str, bytes]] = []
    base = lo
    for k in takes:
        records, marks = cursor.take(k, base)
        assert len(records) <= k
        at = iter(marks)
        pending = next(at, None)
        for j, record in enumerate(records):
            while pending is not None and pending[1] == base + j:
                got.append((pending[0], pending[2]))
                pending = next(at, None)
            got.append(("?", record))
        while pending is not None:
            assert pending[1] == base + len(records)
            got.append((pending[0], pending[2]))
            pending = next(at, None)
        base += len(records)
    got += [(name, line) for name, _n, line in cursor]
    assert [line for _, line in got] == [line for _, line in expected]
    # Checkpoint lines and the lines read after the chunks carry their file's name.
    assert all(mine in ("?", theirs) for (mine, _), (theirs, _) in zip(got, expected, strict=True))
