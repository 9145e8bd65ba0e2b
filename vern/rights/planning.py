"""Planning a request's writes in one product database: what to do with each of the person's rows
(``plan_rows``: read, delete, or the values to write), a set-based table's one statement, the
links an erasure clears, and the rows that store the plan - its tasks, sealed under the request's
key, and its erasure ledger entry.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from vern.core.crypto import PII
from vern.core.db import new_id
from vern.datamap.model import DatabaseDef, Strategy
from vern.datamap.model import Table as MapTable
from vern.rights.connectors import ProductDB, dumps
from vern.rights.discovery import Found, Subject, discover, set_based_once
from vern.rights.erase_values import ledger_hash, match_hash, new_value
from vern.rights.models import Kind
from vern.rights.run_state import READ_KINDS, WHOLE, WHOLE_OP, FreshPart, Job, rows_written


def plan_part(
    secret: bytes, definition: DatabaseDef, job: Job, fresh: FreshPart, *, pdb: ProductDB, conn: Connection
) -> None:
    """Find the person's rows in one database (in the product transaction ``conn``, which then
    writes them) and plan every table, in the order its writes must go."""
    erasure = job.kind == Kind.ERASURE.value
    job.searched[definition.qualified] = {
        t: sorted(col for kind, col in mt.identities.items() if kind in job.subject.identities)
        for t, mt in definition.tables.items()
        if any(kind in job.subject.identities for kind in mt.identities)
    }
    fresh.found, fresh.where = discover(
        pdb,
        job.subject,
        set_based=set_based_once(definition) if erasure else frozenset(),
        conn=conn,
        shared=fresh.shared,
    )
    # rows pointing at a row go first
    order = definition.erasure_order() if erasure else definition.dependency_order()
    cuts = cuts_of(pdb, definition, fresh, job, definition.qualified) if erasure else {}
    for tname in order:
        mt = definition.tables[tname]
        if tname in fresh.where:
            op, rows = set_based_plan(secret, mt, fresh.where[tname], job.subject)
            # counted now, in the transaction that writes them: kept with the plan
            count = pdb.count_where(conn, mt, job.subject.tenant_value, fresh.where[tname])
            rows[0]["count"] = fresh.counted[tname] = count
            fresh.planned.append((tname, op, rows, ""))
            continue
        op, rows = plan_rows(
            secret,
            pdb,
            mt,
            job.kind,
            found=fresh.found[tname],
            subject=job.subject,
            cut=cuts.get(tname) if erasure else None,
        )
        if rows and job.writes:
            fresh.planned.append((tname, op, rows, ""))


def set_based_plan(
    secret: bytes, mt: MapTable, conditions: list[tuple[str, list[Any]]], subject: Subject
) -> tuple[str, list[dict[str, Any]]]:
    """The one-statement erasure of a set-based table: (operation, [the statement's plan])."""
    if mt.delete_row:
        return "delete_where", [{"where": [[c, v] for c, v in conditions]}]
    values: dict[str, Any] = {}
    keep_null: list[str] = []
    for col, erase in mt.strategies().items():
        if erase.strategy is Strategy.PSEUDONYM:
            values[col] = new_value(secret, erase, "", subject.subject_ref)
            keep_null.append(col)  # as row by row: an empty field stays empty
        else:
            values[col] = new_value(secret, erase, None, subject.subject_ref)
    return "update_where", [{"where": [[c, v] for c, v in conditions], "set": values, "keep_null": keep_null}]


def plan_rows(
    secret: bytes,
    pdb: ProductDB,
    mt: MapTable,
    kind: str,
    *,
    found: list[Found],
    subject: Subject,
    cut: dict[str, set[Any]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(operation, rows) for one table: ``read``, ``delete`` or ``update`` with values to write.
    ``cut``: link columns of this table (outward) and the values whose link an erasure clears."""
    if kind in READ_KINDS:
        return "read", [f.row for f in found]
    keys = pdb.key_columns(mt)
    if kind == Kind.ERASURE.value and mt.delete_row:
        return "delete", [_address(keys, f) for f in found]
    rows: list[dict[str, Any]] = []
    for f in found:
        if kind == Kind.ERASURE.value:
            changes = {
                col: new_value(secret, erase, f.row.get(col), subject.subject_ref)
                for col, erase in mt.strategies().items()
                if col in f.row
            }
            for col, values in (cut or {}).items():
                if f.row.get(col) is not None and f.row.get(col) in values:
                    changes[col] = None  # the person's own link to a row kept or deleted
            changes = {c: v for c, v in changes.items() if v != f.row.get(c)}
        else:
            changes = _corrections(mt, f.row, subject.corrections)
        if not changes:
            continue
        item = _address(keys, f)
        item["set"] = changes
        if not keys:
            item["old"] = {c: f.row.get(c) for c in changes}
        rows.append(item)
    return "update", rows


def _address(keys: list[str], f: Found) -> dict[str, Any]:
    if keys:
        return {"key": {k: f.row[k] for k in keys}}
    return {"key": None, "match": [list(p) for p in f.pairs]}


def _corrections(mt: MapTable, row: dict[str, Any], corrections: dict[str, str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, fdef in mt.fields.items():
        for target in (f"{mt.name}.{name}", fdef.category):
            if target in corrections and name in row and row[name] != corrections[target]:
                changes[name] = corrections[target]
                break
    return changes


def cuts_of(
    pdb: ProductDB, definition: DatabaseDef, fresh: FreshPart, job: Job, qualified: str
) -> dict[str, dict[str, set[Any]]]:
    """The person's own outward links an erasure clears (table -> link column -> values): to a
    shared row that is kept, and to a row of theirs that is deleted - where the column may be
    empty. Notes what is kept, and why, for the outcome."""
    cuts: dict[str, dict[str, set[Any]]] = {}
    kept = job.kept.setdefault(qualified, [])
    for mt in definition.tables.values():
        for link in mt.refers_to:
            target = definition.tables[link.table]
            shared = {k.row.get(link.column) for k in fresh.shared.get(link.table, [])}
            deleted = (
                {f.row.get(link.column) for f in fresh.found.get(link.table, [])}
                if target.delete_row
                else set()
            )
            nullable = bool(pdb.table(mt.name).c[link.field].nullable)
            if nullable and (shared | deleted) - {None}:
                cuts.setdefault(mt.name, {})[link.field] = (shared | deleted) - {None}
            for k in fresh.shared.get(link.table, []):
                if k.row.get(link.column) is None:
                    continue
                kept.append(
                    {
                        "table": link.table,
                        "reason": k.reason,
                        "link": f"{mt.name}.{link.field} "
                        + ("cleared" if nullable else "kept (the column cannot be empty)"),
                    }
                )
    if not kept:
        job.kept.pop(qualified)
    return cuts


def task_rows(job: Job, fresh: FreshPart, now: Any, *, batch_rows: int) -> list[dict[str, Any]]:
    """The stored plan of one part: a plan that fits in one product transaction is one task
    (table ``*``, every table's writes in order); a bigger one is a task per table, run in
    chunks of ``batch_rows`` rows with a checkpoint after each."""
    base = {
        "request_id": job.request_id,
        "part_id": fresh.part_id,
        "org_id": job.org_id,
        "rows_done": 0,
        "status": "planned",
        "updated_at": now,
    }
    if fresh.rows_planned <= batch_rows:
        tables = [[tname, op, rows] for tname, op, rows, _id in fresh.planned]
        fresh.task_id = new_id()
        return [
            base
            | {
                "id": fresh.task_id,
                "table_name": WHOLE,
                "seq": 0,
                "plan": PII(job.key_id, dumps({"op": WHOLE_OP, "rows": tables})),
                "rows_total": fresh.rows_planned,
            }
        ]
    return [
        base
        | {
            "id": new_id(),
            "table_name": tname,
            "seq": seq,
            "plan": PII(job.key_id, dumps({"op": op, "rows": rows})),
            "rows_total": len(rows),
        }
        for seq, (tname, op, rows, _id) in enumerate(fresh.planned)
    ]


def ledger_entry(
    secret: bytes, job: Job, definition: DatabaseDef, fresh: FreshPart, *, now: Any
) -> dict[str, Any]:
    """One ledger entry per erased person and database: for every table, keyed hashes of the
    values that matched the person (``m:``) and of the values written instead (``w:``)."""
    tables: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    cut: dict[str, list[str]] = {}
    known: dict[tuple[str, str], str] = {}  # the same value in several tables is hashed once

    def hashed(mt: MapTable, col: str, value: Any) -> str:
        got = known.get((col, str(value)))
        if got is None:
            got = known[col, str(value)] = ledger_hash(secret, mt, col, value)
        return got

    for tname, op, rows, _id in fresh.planned:
        mt = definition.tables[tname]
        hashes = {"m:" + hashed(mt, col, val) for f in fresh.found[tname] for col, val in f.pairs}
        for row in rows:
            for col, values in row.get("where") or ():  # set-based: what its statement matches
                hashes.update("m:" + hashed(mt, col, val) for val in values)
            for col, value in (row.get("set") or {}).items():
                if value is not None:
                    hashes.add("w:" + match_hash(secret, col, value))
        tables[tname] = sorted(hashes)
        counts[tname] = rows_written(op, rows)  # a set-based table: the rows counted at planning
        cleared = sorted(
            {c for row in rows for c, v in (row.get("set") or {}).items() if v is None}
            & {link.field for link in definition.tables[tname].refers_to}
        )
        if cleared:
            cut[tname] = cleared  # the person's own links cleared, cleared again on a replay
    return {
        "id": new_id(),
        "request_id": job.request_id,
        "database": definition.qualified,
        "table_name": WHOLE,
        "tenant_value": job.subject.tenant_value,
        "subject_ref": job.subject.subject_ref,
        "match_hashes": {"tables": tables, "rows": counts} | ({"cut": cut} if cut else {}),
        "rows": sum(counts.values()),
        "org_id": job.org_id,
        "planned_at": now,
        "done_at": None,
    }
